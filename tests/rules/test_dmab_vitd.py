"""DMAB-VITD-DEFICIENCY and DMAB-VITD-NOT-CHECKED (RULES.md §3, D5, §7 exclusive pair)."""

from __future__ import annotations

import pytest

from tests.factory import DMAB60, VITD, draft, evaluate_rules, observation, patient, rule_ids

from ._dmab_helpers import (HOOKS, ago, continuation, override_codes, resource_codes, run,
                            suggestion_resources)

DEF = "DMAB-VITD-DEFICIENCY"
NOT = "DMAB-VITD-NOT-CHECKED"


def _vitd(value, unit: str = "ng/mL", days_ago: int = 30, **kw):
    return observation(VITD, value, unit, ago(days_ago), **kw)


# ---- DMAB-VITD-DEFICIENCY ------------------------------------------------------------------

@pytest.mark.parametrize("value, unit, fires", [
    (19.9, "ng/mL", True), (19.95, "ng/mL", False), (20.0, "ng/mL", False), (20.1, "ng/mL", False),
    (49.7, "nmol/L", True),    # 19.9 ng/mL
    (49.8, "nmol/L", False),   # 19.95 → 20.0: exactly 20.0 does not fire
    (50, "nmol/L", False), (30, "nmol/L", True),
])
def test_dmab_vitd_deficiency_threshold_in_both_units(value: float, unit: str, fires: bool) -> None:
    card = run(DEF, [patient(), _vitd(value, unit)], drafts=[draft()])
    assert (card is not None) is fires


@pytest.mark.parametrize("hook", HOOKS)
def test_dmab_vitd_deficiency_initiation_is_warning_with_value_and_date(hook: str) -> None:
    card = run(DEF, [patient(), _vitd(15.2, days_ago=40)], hook=hook, drafts=[draft()])
    assert card is not None
    assert card["indicator"] == "warning"
    assert card["summary"] == (f"25-OH vitamin D 15 ng/mL on {ago(40).isoformat()}: correct deficiency "
                               "before starting denosumab")
    assert override_codes(card) == ["repletion-in-progress", "recent-result-elsewhere"]
    chole, recheck = suggestion_resources(card)
    assert chole["resourceType"] == "MedicationRequest" and resource_codes(chole) == ["2418"]
    assert recheck["resourceType"] == "ServiceRequest" and resource_codes(recheck) == ["62292-8"]
    assert recheck["occurrencePeriod"]["start"] == "2027-01-18"   # 8 weeks after 2026-11-23


def test_dmab_vitd_deficiency_continuation_is_info_unless_severe() -> None:
    card = run(DEF, [patient(), *continuation(), _vitd(15)], drafts=[draft(DMAB60)])
    assert card is not None and card["indicator"] == "info"
    assert "alongside denosumab" in card["summary"]
    card = run(DEF, [patient(), *continuation(), _vitd(11.9)], drafts=[draft(DMAB60)])
    assert card is not None and card["indicator"] == "warning"
    card = run(DEF, [patient(), *continuation(), _vitd(12.0)], drafts=[draft(DMAB60)])
    assert card is not None and card["indicator"] == "info"


def test_dmab_vitd_deficiency_si_value_shown_as_measured_and_converted() -> None:
    card = run(DEF, [patient(), _vitd(25, "nmol/L")], drafts=[draft()])
    assert card is not None
    assert "25-OH vitamin D 10 ng/mL" in card["summary"]   # A40: an integer
    assert "25 nmol/L" in card["detail"]


def test_dmab_vitd_deficiency_comparator_less_than() -> None:
    card = run(DEF, [patient(), _vitd(8, comparator="<")], drafts=[draft()])
    assert card is not None and "<8" in card["summary"] and card["indicator"] == "warning"


@pytest.mark.parametrize("days_ago, fires", [(365, True), (366, False)])
def test_dmab_vitd_deficiency_look_back_365_days(days_ago: int, fires: bool) -> None:
    assert (run(DEF, [patient(), _vitd(10, days_ago=days_ago)], drafts=[draft()]) is not None) is fires


@pytest.mark.parametrize("status", ["entered-in-error", "cancelled"])
def test_dmab_vitd_deficiency_ignored_status(status: str) -> None:
    assert run(DEF, [patient(), _vitd(9, status=status)], drafts=[draft()]) is None


def test_dmab_vitd_deficiency_latest_result_wins() -> None:
    assert run(DEF, [patient(), _vitd(12, days_ago=200), _vitd(32, days_ago=20)], drafts=[draft()]) is None
    resources = [patient(), _vitd(32, days_ago=200), _vitd(12, days_ago=20)]
    assert run(DEF, resources, drafts=[draft()]) is not None


def test_dmab_vitd_deficiency_not_on_patient_view_or_unselected_draft() -> None:
    assert run(DEF, [patient(), _vitd(10)], hook="patient-view") is None
    d = draft()
    assert run(DEF, [patient(), _vitd(10)], hook="order-select", drafts=[d], selections=[]) is None


# ---- DMAB-VITD-NOT-CHECKED -----------------------------------------------------------------

@pytest.mark.parametrize("hook", HOOKS)
def test_dmab_vitd_not_checked_fires_at_initiation_without_result(hook: str) -> None:
    card = run(NOT, [patient()], hook=hook, drafts=[draft()])
    assert card is not None
    assert card["indicator"] == "info"
    assert card["summary"] == "No 25-OH vitamin D result in the last 12 months before starting denosumab"
    assert "of any age is on record" in card["detail"] and "2025-11-23" in card["detail"]
    assert override_codes(card) == ["result-elsewhere", "supplemented-empirically"]
    [lab] = suggestion_resources(card)
    assert resource_codes(lab) == ["62292-8"]


def test_dmab_vitd_not_checked_stale_result_fires_and_is_named() -> None:
    card = run(NOT, [patient(), _vitd(35, days_ago=366)], drafts=[draft()])
    assert card is not None and ago(366).isoformat() in card["detail"] and "stale" in card["detail"]
    assert run(NOT, [patient(), _vitd(35, days_ago=365)], drafts=[draft()]) is None


def test_dmab_vitd_not_checked_unknown_unit_fires() -> None:
    card = run(NOT, [patient(), _vitd(35, unit="ug/dL")], drafts=[draft()])
    assert card is not None and "unit not recognised" in card["detail"]


def test_dmab_vitd_not_checked_entered_in_error_result_does_not_count() -> None:
    assert run(NOT, [patient(), _vitd(35, status="entered-in-error")], drafts=[draft()]) is not None


def test_dmab_vitd_not_checked_continuation_never_fires() -> None:
    assert run(NOT, [patient(), *continuation()], drafts=[draft(DMAB60)]) is None


def test_dmab_vitd_rules_are_exclusive_in_the_engine() -> None:
    low = rule_ids(evaluate_rules([patient(), _vitd(10)], drafts=[draft()]))
    assert DEF in low and NOT not in low
    none = rule_ids(evaluate_rules([patient()], drafts=[draft()]))
    assert NOT in none and DEF not in none
    normal = rule_ids(evaluate_rules([patient(), _vitd(20)], drafts=[draft()]))
    assert DEF not in normal and NOT not in normal


# ---- A39: the latest 25-OH vitamin D in the window decides, usable or not ---------------------

def _no_value(days_ago: int):
    obs = observation(VITD, None, None, ago(days_ago))
    obs["dataAbsentReason"] = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/data-absent-reason",
                                           "code": "not-performed", "display": "Not Performed"}]}
    return obs


_LATEST = [
    (lambda: _vitd(35.4, unit="ug/dL", days_ago=5),
     f'25-OH vitamin D 35 on {ago(5).isoformat()}: unit not recognised ("ug/dL")', "unit not recognised"),
    (lambda: _no_value(5), f"25-OH vitamin D on {ago(5).isoformat()}: no value (Not Performed)", "no value"),
    (lambda: _vitd(None, unit=None, days_ago=5, value_string="pending"),
     f'25-OH vitamin D on {ago(5).isoformat()}: no numeric value ("pending")', "no numeric value"),
]


@pytest.mark.parametrize("latest, words, reason", _LATEST)
@pytest.mark.parametrize("older", [10.0, 35.0])
def test_a39_unusable_latest_vitd_at_initiation_falls_back_to_not_checked(latest, words, reason, older) -> None:
    res = [patient(), latest(), _vitd(older, days_ago=100)]
    card = run(NOT, res, drafts=[draft()])
    assert card is not None
    assert card["summary"] == (f"No usable 25-OH vitamin D in the last 12 months (latest {ago(5).isoformat()}: "
                               f"{reason}) before starting denosumab")
    assert words in card["detail"].split("\n")[0]
    assert (f"Previous usable result: 25-OH vitamin D {older:.0f} ng/mL on {ago(100).isoformat()} — "
            "not used: a newer result exists") in card["detail"]
    ids = rule_ids(evaluate_rules(res, drafts=[draft()]))
    assert NOT in ids and DEF not in ids                 # the older 10.0 is not judged


@pytest.mark.parametrize("latest, words, reason", _LATEST)
def test_a39_unusable_latest_vitd_at_continuation_gives_no_card(latest, words, reason) -> None:
    """DMAB-VITD-NOT-CHECKED fires at initiation only, and DMAB-VITD-DEFICIENCY has no fallback:
    an unusable latest result at a continuation dose gives neither card, whatever came before."""
    res = [patient(), *continuation(), latest(), _vitd(10.0, days_ago=100)]
    ids = rule_ids(evaluate_rules(res, drafts=[draft(DMAB60)]))
    assert NOT not in ids and DEF not in ids


def test_a39_vitd_same_date_usable_result_decides_and_older_unusable_changes_nothing() -> None:
    same_day = [patient(), _no_value(5), _vitd(15.0, days_ago=5)]
    assert run(DEF, same_day, drafts=[draft()]) is not None and run(NOT, same_day, drafts=[draft()]) is None
    older_bad = [patient(), _vitd(15.0, days_ago=5), _no_value(50)]
    assert run(DEF, older_bad, drafts=[draft()]) is not None and run(NOT, older_bad, drafts=[draft()]) is None


def test_a39_vitd_window_first_and_entered_in_error() -> None:
    stale_bad = [patient(), _no_value(400), _vitd(35, days_ago=500)]
    card = run(NOT, stale_bad, drafts=[draft()])
    assert card["summary"] == "No 25-OH vitamin D result in the last 12 months before starting denosumab"
    assert f"25-OH vitamin D on {ago(400).isoformat()}: no value (Not Performed) — stale" in card["detail"]
    erroneous = _no_value(5)
    erroneous["status"] = "entered-in-error"
    res = [patient(), erroneous, _vitd(12.0, days_ago=100)]
    assert run(NOT, res, drafts=[draft()]) is None and run(DEF, res, drafts=[draft()]) is not None
