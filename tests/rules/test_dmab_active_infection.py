"""DMAB-ACTIVE-INFECTION (RULES.md §3, D2, D6): active, onset or recordedDate within 30 days."""

from __future__ import annotations

import pytest

from cards.thresholds import Thresholds
from tests.factory import DMAB60, condition, draft, patient

from ._dmab_helpers import HOOKS, ICD10, ago, continuation, override_codes, run

RULE = "DMAB-ACTIVE-INFECTION"


def _uti(**kw):
    kw.setdefault("text", "Acute cystitis")
    return condition("68226007", **kw)


@pytest.mark.parametrize("hook", HOOKS)
def test_dmab_active_infection_card(hook: str) -> None:
    card = run(RULE, [patient(), _uti(onset=ago(6))], hook=hook, drafts=[draft()])
    assert card is not None
    assert card["indicator"] == "info"
    assert card["summary"] == (f"Active infection on record (Acute cystitis since {ago(6).isoformat()}): "
                               "consider resolving it before denosumab")
    assert override_codes(card) == ["infection-resolved", "benefit-outweighs-risk"]


@pytest.mark.parametrize("days_ago, fires", [(29, True), (30, True), (31, False)])
def test_dmab_active_infection_onset_window(days_ago: int, fires: bool) -> None:
    assert (run(RULE, [patient(), _uti(onset=ago(days_ago))], drafts=[draft()]) is not None) is fires


def test_dmab_active_infection_recorded_date_is_enough() -> None:
    card = run(RULE, [patient(), _uti(onset=ago(90), recorded=ago(4))], drafts=[draft()])
    assert card is not None
    card = run(RULE, [patient(), _uti(recorded=ago(4))], drafts=[draft()])
    assert card is not None and ago(4).isoformat() in card["summary"]


def test_dmab_active_infection_stale_active_entry_is_ignored() -> None:
    assert run(RULE, [patient(), _uti(onset=ago(200), recorded=ago(200))], drafts=[draft()]) is None
    assert run(RULE, [patient(), _uti()], drafts=[draft()]) is None       # no date at all


@pytest.mark.parametrize("kw", [{"clinical": "resolved"}, {"clinical": "inactive"},
                                {"verification": "refuted"}, {"verification": "entered-in-error"},
                                {"clinical": None, "abatement": "2026-11-20"}])
def test_dmab_active_infection_not_active(kw) -> None:
    assert run(RULE, [patient(), _uti(onset=ago(5), **kw)], drafts=[draft()]) is None


def test_dmab_active_infection_codes_and_suspected() -> None:
    cond = condition("J18.9", ICD10, text="Pneumonia", onset=ago(3), verification="provisional")
    card = run(RULE, [patient(), cond], drafts=[draft()])
    assert card is not None and "(suspected)" in card["summary"]


def test_dmab_active_infection_continuation_and_threshold_and_hooks() -> None:
    assert run(RULE, [patient(), *continuation(), _uti(onset=ago(2))], drafts=[draft(DMAB60)]) is not None
    assert run(RULE, [patient(), _uti(onset=ago(10))], drafts=[draft()],
               thresholds=Thresholds(infection_recent_days=7)) is None
    assert run(RULE, [patient(), _uti(onset=ago(2))], hook="patient-view") is None
    d = draft()
    assert run(RULE, [patient(), _uti(onset=ago(2))], hook="order-select", drafts=[d], selections=[]) is None
