"""DMAB-CKD-CALCIUM-MONITORING (RULES.md §3, D9 "Advanced CKD")."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.factory import DMAB120, DMAB60, EGFR, condition, draft, observation, patient, procedure

from ._dmab_helpers import (EGFR_UNIT, HOOKS, ICD10, SNOMED, TODAY, ago, override_codes,
                            resource_codes, run, suggestion_resources)

RULE = "DMAB-CKD-CALCIUM-MONITORING"


def _egfr(value, days_ago: int = 20, **kw):
    return observation(EGFR, value, EGFR_UNIT, ago(days_ago), **kw)


@pytest.mark.parametrize("value, fires", [(29, True), (29.4, True), (29.5, False), (30, False), (31, False)])
def test_dmab_ckd_egfr_strictly_below_30_after_rounding(value: float, fires: bool) -> None:
    card = run(RULE, [patient(), _egfr(value)], drafts=[draft()])
    assert (card is not None) is fires


@pytest.mark.parametrize("hook", HOOKS)
def test_dmab_ckd_card_shape_and_weekly_calcium_suggestion(hook: str) -> None:
    card = run(RULE, [patient(), _egfr(22, 15)], hook=hook, drafts=[draft(DMAB60)])
    assert card is not None
    assert card["indicator"] == "warning"
    assert card["summary"] == (f"Advanced CKD (eGFR 22 on {ago(15).isoformat()}): high risk of severe "
                               "hypocalcemia with denosumab")
    assert card["source"]["label"] == "FDA label: Prolia (2024 boxed warning)"
    assert override_codes(card) == ["nephrology-supervised", "monitoring-arranged", "benefit-outweighs-risk"]
    assert card["selectionBehavior"] == "any"
    weekly, pth, phos, vitd = suggestion_resources(card)
    assert resource_codes(weekly) == ["17861-6"]
    assert weekly["occurrenceTiming"]["repeat"] == {
        "frequency": 1, "period": 1, "periodUnit": "wk", "count": 4,
        "boundsPeriod": {"start": (TODAY + timedelta(days=7)).isoformat()}}
    assert [resource_codes(r) for r in (pth, phos, vitd)] == [["2731-8"], ["2777-1"], ["62292-8"]]
    assert all(r["resourceType"] == "ServiceRequest" and r["status"] == "draft" for r in (weekly, pth))


def test_dmab_ckd_comparator_less_than_15_fires_and_greater_than_60_does_not() -> None:
    assert run(RULE, [patient(), _egfr(15, comparator="<")], drafts=[draft()]) is not None
    assert run(RULE, [patient(), _egfr(None, value_string=">60")], drafts=[draft()]) is None


def test_dmab_ckd_stale_egfr_outside_365_days_is_not_used() -> None:
    assert run(RULE, [patient(), _egfr(20, 366)], drafts=[draft()]) is None
    assert run(RULE, [patient(), _egfr(20, 365)], drafts=[draft()]) is not None


@pytest.mark.parametrize("status", ["entered-in-error", "cancelled", "registered"])
def test_dmab_ckd_ignored_observation_status(status: str) -> None:
    assert run(RULE, [patient(), _egfr(18, status=status)], drafts=[draft()]) is None


def test_dmab_ckd_latest_egfr_decides() -> None:
    resources = [patient(), _egfr(25, 100), _egfr(41, 10)]
    assert run(RULE, resources, drafts=[draft()]) is None
    resources = [patient(), _egfr(41, 100), _egfr(25, 10)]
    assert run(RULE, resources, drafts=[draft()]) is not None


def test_dmab_ckd_unknown_unit_is_not_used() -> None:
    assert run(RULE, [patient(), observation(EGFR, 20, "furlongs", ago(5))], drafts=[draft()]) is None


def test_dmab_ckd_diagnosis_wins_over_normal_egfr() -> None:
    resources = [patient(), _egfr(45, 10), condition("431857002", text="Chronic kidney disease stage 4")]
    card = run(RULE, resources, drafts=[draft()])
    assert card is not None
    assert "CKD stage 4/5" in card["summary"]
    assert "the diagnosis on record is used" in card["detail"] and "45" in card["detail"]


@pytest.mark.parametrize("code, system", [("N18.5", ICD10), ("N18.6", ICD10), ("46177005", SNOMED)])
def test_dmab_ckd_stage_5_and_esrd_conditions(code: str, system: str) -> None:
    assert run(RULE, [patient(), condition(code, system)], drafts=[draft()]) is not None


def test_dmab_ckd_resolved_or_refuted_condition_does_not_count() -> None:
    assert run(RULE, [patient(), condition("431857002", clinical="resolved")], drafts=[draft()]) is None
    assert run(RULE, [patient(), condition("431857002", verification="refuted")], drafts=[draft()]) is None
    assert run(RULE, [patient(), condition("431857002", verification="entered-in-error")],
               drafts=[draft()]) is None


def test_dmab_ckd_dialysis_condition_names_dialysis() -> None:
    card = run(RULE, [patient(), condition("Z99.2", ICD10, text="Dependence on renal dialysis")],
               drafts=[draft()])
    assert card is not None and "(dialysis)" in card["summary"]


@pytest.mark.parametrize("days_ago, fires", [(89, True), (90, True), (91, False)])
def test_dmab_ckd_dialysis_procedure_within_90_days(days_ago: int, fires: bool) -> None:
    card = run(RULE, [patient(), procedure("302497006", SNOMED, ago(days_ago))], drafts=[draft()])
    assert (card is not None) is fires
    if fires:
        assert f"dialysis {ago(days_ago).isoformat()}" in card["summary"]


def test_dmab_ckd_not_done_dialysis_procedure_does_not_count() -> None:
    assert run(RULE, [patient(), procedure("302497006", SNOMED, ago(5), status="not-done")],
               drafts=[draft()]) is None


def test_dmab_ckd_missing_egfr_and_no_diagnosis_is_not_this_rule() -> None:
    assert run(RULE, [patient()], drafts=[draft()]) is None


def test_dmab_ckd_120mg_mentions_xgeva_and_hooks() -> None:
    card = run(RULE, [patient(), _egfr(12)], drafts=[draft(DMAB120)])
    assert card is not None and "Xgeva" in card["detail"]
    assert run(RULE, [patient(), _egfr(12)], hook="patient-view") is None
    d = draft(DMAB60)
    assert run(RULE, [patient(), _egfr(12)], hook="order-select", drafts=[d], selections=[]) is None
    assert run(RULE, [patient(), _egfr(12)], drafts=[draft("705824")]) is None


# ---- A39: the latest result decides, usable or not -------------------------------------------

def _calcium_no_value(days_ago: int):
    obs = observation("17861-6", None, None, ago(days_ago))
    obs["dataAbsentReason"] = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/data-absent-reason",
                                           "code": "error", "display": "Error"}]}
    return obs


def test_a39_unusable_latest_egfr_is_not_below_30_and_the_older_25_is_not_judged() -> None:
    """D9 (A39): an eGFR of 25 followed by an unusable repeat is not advanced CKD by eGFR;
    AR-RENAL-FUNCTION-UNKNOWN reports it instead."""
    from tests.factory import evaluate_rules, rule_ids
    res = [patient(), observation(EGFR, 24.6, None, ago(2)), _egfr(25, 40)]
    assert run(RULE, res, drafts=[draft()]) is None
    ids = rule_ids(evaluate_rules(res, drafts=[draft()]))
    assert RULE not in ids and "AR-RENAL-FUNCTION-UNKNOWN" in ids
    # a usable latest eGFR still decides; several on its date: a usable one decides
    assert run(RULE, [patient(), _egfr(25, 2), observation(EGFR, 13, None, ago(40))], drafts=[draft()]) is not None
    same_day = [patient(), observation(EGFR, 60, None, ago(2)), _egfr(25, 2), _egfr(70, 40)]
    assert run(RULE, same_day, drafts=[draft()]) is not None


def test_a39_unusable_latest_egfr_with_a_diagnosis_names_it_and_uses_the_diagnosis() -> None:
    res = [patient(), observation(EGFR, 13.4, "mL/s", ago(2)), condition("N18.4", ICD10)]
    card = run(RULE, res, drafts=[draft()])
    assert card is not None
    assert (f'The latest eGFR cannot be used (eGFR 13 on {ago(2).isoformat()}: unit not recognised '
            '("mL/s")); the diagnosis on record is used.') in card["detail"]


def test_a39_unusable_latest_calcium_is_no_usable_calcium_and_the_card_says_so() -> None:
    res = [patient(), condition("N18.5", ICD10), _calcium_no_value(1),
           observation("17861-6", 9.3, "mg/dL", ago(10))]
    card = run(RULE, res, drafts=[draft()])
    finding = card["detail"].split("\n")[0]
    assert f"No usable calcium in the last 30 days: Calcium on {ago(1).isoformat()}: no value (Error)." in finding
    assert "not used: a newer result exists" in card["detail"]
    usable = run(RULE, [patient(), condition("N18.5", ICD10), observation("17861-6", 9.3, "mg/dL", ago(1)),
                        _calcium_no_value(10)], drafts=[draft()])
    assert "No usable calcium" not in usable["detail"] and "9.3 mg/dL" in usable["detail"]


def test_a39_touched_card_texts_have_no_internal_references() -> None:
    import re
    from tests.factory import evaluate_rules
    from tests.rules._dmab_helpers import woman
    patterns = (r"RULES\.md", r"codes\.json", "§", r"(?i)\bseeds?\b", r"\b\d{3}_[0-9a-f]{16}\b",
                r"\(D(10|[1-9])\)", r"\b[a-z][a-z0-9]*(_[a-z0-9]+)+\b", r"\burn:",
                r"\b(Patient|Observation|Condition|Procedure|MedicationRequest)/[A-Za-z0-9.\-]+")
    cases = [
        ([patient(), condition("N18.5", ICD10), _calcium_no_value(1), observation(EGFR, 13.4, None, ago(2)),
          observation("17861-6", 9.3, "mg/dL", ago(10))], RULE),
        ([woman(30), observation("2106-3", None, None, ago(3))], "DMAB-PREGNANCY-STATUS-UNVERIFIED"),
    ]
    from tests.rules._helpers import UNMERGED
    for res, rule_id in cases:   # the member cards themselves (no work-up merge, A12)
        card = next(c for c in evaluate_rules(res, drafts=[draft()], thresholds=UNMERGED)
                    if c["source"]["topic"]["code"] == rule_id)
        for text in (card["summary"], card["detail"], card["source"]["label"]):
            for p in patterns:
                assert not re.search(p, text), (rule_id, p, text)
