"""DMAB-ONCOLOGY-INTERVAL (RULES.md §3): 120 mg last dose L, 35 < days_between(L, today) ≤ 180, unless a
later dose, a planned order or a deliberate stop; GCTB/HCM loading-phase expectations (D9)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from cards.thresholds import Thresholds
from tests import factory as f
from tests.rules._dmab_dosing_helpers import (DOSE_RECORDS, ICD10, TODAY, codes_of, ids, normal_labs,
                                              override_codes, pv)

RULE = "DMAB-ONCOLOGY-INTERVAL"
METS = lambda: f.condition("C79.51", ICD10, onset="2025-01-10")  # noqa: E731
GCTB = lambda: f.condition("D48.0", ICD10, text="Giant cell tumour of bone, left femur", onset="2026-10-01")  # E1: named   # noqa: E731
HCM = lambda: f.condition(None, text="Hypercalcemia of malignancy", onset="2026-10-01")  # noqa: E731


def ago(n: int):
    return TODAY - timedelta(days=n)


def _cards(days: int, *extra, record=None, **kw):
    dose = record(f.DMAB120, ago(days)) if record else f.administration(f.DMAB120, ago(days))
    return pv([dose, METS(), *normal_labs(), *extra], **kw)


@pytest.mark.parametrize("days, fires", [(35, False), (36, True), (180, True), (181, False), (28, False)])
def test_dmab_oncology_interval_borderlines(days, fires):
    """DMAB-ONCOLOGY-INTERVAL: 35 < days ≤ 180 (28-day interval + 7-day grace; 180-day horizon)."""
    assert (RULE in ids(_cards(days))) is fires


@pytest.mark.parametrize("name, record", DOSE_RECORDS)
def test_dmab_oncology_interval_each_record_type(name, record):
    """DMAB-ONCOLOGY-INTERVAL: the 120 mg dose may come from any record type."""
    card = f.card_for(_cards(40, record=record), RULE)
    assert card is not None, name
    assert card["summary"] == (f"Denosumab 120 mg: last dose {ago(40).isoformat()}, 40 days ago (schedule "
                               "every 4 weeks). Check whether a dose was missed")
    assert ("low confidence" in card["detail"]) is (name == "completed-request")


@pytest.mark.parametrize("blocker", [
    lambda: f.request(f.DMAB120, ago(5), status="stopped", status_reason="Stopped: hospice"),
    lambda: f.statement(f.DMAB120, ago(60), status="stopped", end=ago(10)),
    lambda: f.request(f.DMAB120, ago(3), status="active"),
    lambda: f.administration(f.ZOL4, ago(10)),
])
def test_dmab_oncology_interval_silenced(blocker):
    """DMAB-ONCOLOGY-INTERVAL: deliberate stop (silences for 120 mg), planned order, switch to zoledronic acid."""
    assert RULE not in ids(_cards(50, blocker()))


@pytest.mark.parametrize("void", [
    lambda: f.request(f.DMAB120, ago(5), status="cancelled"),
    lambda: f.administration(f.DMAB120, ago(5), status="entered-in-error"),
    lambda: f.request(f.DMAB120, ago(70), status="stopped"),     # stopped before the last dose
])
def test_dmab_oncology_interval_void_records(void):
    """DMAB-ONCOLOGY-INTERVAL: cancelled/entered-in-error records and earlier stops do not silence it."""
    assert RULE in ids(_cards(50, void()))


def test_dmab_oncology_interval_later_dose_resets():
    """DMAB-ONCOLOGY-INTERVAL: the latest dose is L."""
    assert RULE not in ids(_cards(60, f.dispense(f.DMAB120, ago(20))))


def test_dmab_oncology_interval_regimen():
    """DMAB-ONCOLOGY-INTERVAL: 60 mg or unknown regimen → not this rule; text '120 mg' → 120 mg, by name."""
    assert RULE not in ids(pv([f.administration(f.DMAB60, ago(50)), *normal_labs()]))
    assert RULE not in ids(pv([f.administration(f.DMAB_IN, ago(50)), *normal_labs()]))
    card = f.card_for(pv([f.administration(None, ago(50), text="Xgeva 120 mg SC"), *normal_labs()]), RULE)
    assert card and "identified by name, not code" in card["detail"]
    assert RULE in ids(pv([f.administration(f.DMAB_IN, ago(50), dose_mg=120), *normal_labs()]))


@pytest.mark.parametrize("condition", [GCTB, HCM])
def test_dmab_oncology_interval_loading_phase_day8(condition):
    """DMAB-ONCOLOGY-INTERVAL: loading phase — day-8 dose expected 7 days after the first; late after 7 more."""
    first = lambda n: f.administration(f.DMAB120, ago(n))  # noqa: E731
    assert RULE not in ids(pv([first(14), condition(), *normal_labs()]))
    card = f.card_for(pv([first(15), condition(), *normal_labs()]), RULE)
    assert card is not None
    assert f"dose expected {ago(8).isoformat()}" in card["summary"]
    # without GCTB/HCM the ordinary 35-day rule applies
    assert RULE not in ids(pv([first(15), METS(), *normal_labs()]))


def test_dmab_oncology_interval_loading_phase_day15_and_day29():
    """DMAB-ONCOLOGY-INTERVAL: after the day-8 dose the day-15 dose is expected; after day 15, day 29."""
    res = lambda *d: [f.administration(f.DMAB120, ago(n)) for n in d]  # noqa: E731
    assert RULE not in ids(pv([*res(21, 14), GCTB(), *normal_labs()]))      # day 15 expected ago(7): 7 days late
    assert RULE in ids(pv([*res(22, 15), GCTB(), *normal_labs()]))          # 8 days late
    assert RULE not in ids(pv([*res(35, 28, 21), GCTB(), *normal_labs()]))  # day 29 = ago(7)
    assert RULE in ids(pv([*res(36, 29, 22), GCTB(), *normal_labs()]))      # day 29 = ago(8)


def test_dmab_oncology_interval_card_shape():
    """DMAB-ONCOLOGY-INTERVAL: info, denosumab 120 mg suggestion (1046398), override codes."""
    card = f.card_for(_cards(40), RULE)
    assert card["indicator"] == "info"
    assert codes_of(card) == ["1046398"]
    dose = card["suggestions"][0]["actions"][0]["resource"]["dosageInstruction"][0]
    assert dose["doseAndRate"][0]["doseQuantity"]["value"] == 120
    assert override_codes(card) == ["intentional-deescalation", "dose-given-elsewhere", "therapy-stopped"]


def test_dmab_oncology_interval_thresholds():
    """DMAB-ONCOLOGY-INTERVAL: grace and horizon come from the thresholds."""
    assert RULE not in ids(_cards(40, thresholds=Thresholds(dmab120_grace_days=14)))
    assert RULE not in ids(_cards(100, thresholds=Thresholds(dmab120_stop_horizon_days=90)))


@pytest.mark.parametrize("hook", ["order-select", "order-sign"])
def test_dmab_oncology_interval_not_on_order_hooks(hook):
    """DMAB-ONCOLOGY-INTERVAL: patient-view only."""
    cards = f.evaluate_rules([f.patient(), f.administration(f.DMAB120, ago(50)), METS(), *normal_labs()],
                             hook=hook, drafts=[f.draft(f.DMAB120)])
    assert RULE not in ids(cards)
