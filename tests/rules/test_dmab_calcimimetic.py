"""DMAB-CALCIMIMETIC (RULES.md §3, D2, D3 text fallback)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.factory import DMAB60, administration, dispense, draft, patient, request, statement

from ._dmab_helpers import (CINACALCET_30, HOOKS, TODAY, ago, override_codes, resource_codes, run,
                            suggestion_resources)

RULE = "DMAB-CALCIMIMETIC"


@pytest.mark.parametrize("hook", HOOKS)
def test_dmab_calcimimetic_card(hook: str) -> None:
    rec = request(None, ago(60), text="Cinacalcet 30 mg tablet")
    card = run(RULE, [patient(), rec], hook=hook, drafts=[draft(DMAB60)])
    assert card is not None
    assert card["indicator"] == "warning"
    assert card["summary"] == ("Patient takes Cinacalcet 30 mg tablet: with denosumab the risk of severe "
                               "hypocalcemia rises; monitor calcium closely")
    assert "identified by name, not code" in card["detail"]
    assert override_codes(card) == ["nephrology-supervised", "monitoring-arranged"]
    [weekly] = suggestion_resources(card)
    assert resource_codes(weekly) == ["17861-6"]
    assert weekly["occurrenceTiming"]["repeat"]["count"] == 4
    start = weekly["occurrenceTiming"]["repeat"]["boundsPeriod"]["start"]
    assert start == (TODAY + timedelta(days=7)).isoformat()


@pytest.mark.parametrize("record, fires", [
    (lambda: statement(CINACALCET_30, ago(300)), True),
    (lambda: request(CINACALCET_30, ago(30), status="stopped"), False),
    (lambda: request(CINACALCET_30, ago(30), status="completed"), False),
    (lambda: request(CINACALCET_30, ago(30), status="cancelled"), False),
    (lambda: request(CINACALCET_30, ago(30), status="entered-in-error"), False),
    (lambda: statement(CINACALCET_30, ago(30), status="entered-in-error"), False),
    (lambda: dispense(CINACALCET_30, ago(120)), True),
    (lambda: dispense(CINACALCET_30, ago(121)), False),
    (lambda: dispense(CINACALCET_30, ago(10), status="cancelled"), False),
    (lambda: dispense(None, ago(20), text="Sensipar 60 mg"), True),
    (lambda: administration(None, ago(3), text="Etelcalcetide (Parsabiv) 5 mg IV"), True),
    (lambda: administration(None, ago(3), text="Parsabiv 5 mg IV", status="not-done"), False),
    (lambda: administration(None, ago(130), text="Parsabiv 5 mg IV"), False),
])
def test_dmab_calcimimetic_which_records_count(record, fires: bool) -> None:
    assert (run(RULE, [patient(), record()], drafts=[draft()]) is not None) is fires


def test_dmab_calcimimetic_coded_record_without_text_is_named_by_class() -> None:
    card = run(RULE, [patient(), statement(CINACALCET_30, ago(30))], drafts=[draft()])
    assert card is not None and card["summary"].startswith("Patient takes a calcimimetic:")


def test_dmab_calcimimetic_long_name_keeps_summary_short() -> None:
    rec = request(None, ago(5),
                  text="Cinacalcet hydrochloride 90 mg film-coated tablet, take with food daily")
    card = run(RULE, [patient(), rec], drafts=[draft()])
    assert card is not None and len(card["summary"]) < 140


def test_dmab_calcimimetic_drafted_in_same_session() -> None:
    d = draft(DMAB60)
    cin = draft(CINACALCET_30)
    assert run(RULE, [patient()], drafts=[d, cin]) is not None


def test_dmab_calcimimetic_hooks() -> None:
    rec = statement(CINACALCET_30, ago(30))
    assert run(RULE, [patient(), rec], hook="patient-view") is None
    d = draft()
    assert run(RULE, [patient(), rec], hook="order-select", drafts=[d], selections=[]) is None
    assert run(RULE, [patient(), rec], drafts=[draft("705824")]) is None
    assert run(RULE, [patient()], drafts=[draft()]) is None
