"""DMAB-CKD-CALCIUM-MONITORING (RULES.md §3, D9 "Advanced CKD", "Predisposed to severe
hypocalcemia", §8 A16). The drafts here are initiations unless a test adds ``continuation()``."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.factory import DMAB120, DMAB60, EGFR, condition, draft, observation, patient, procedure

from ._dmab_helpers import (EGFR_UNIT, HOOKS, ICD10, SNOMED, TODAY, ago, continuation, override_codes,
                            resource_codes, run, suggestion_resources)

CPT = "http://www.ama-assn.org/go/cpt"

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
    assert card["summary"] == (f"eGFR 22 on {ago(15).isoformat()}: high risk of severe hypocalcemia with "
                               "denosumab; plan calcium checks before and after the dose")
    assert card["source"]["label"] == "FDA label: Prolia (2024 boxed warning)"
    assert override_codes(card) == ["nephrology-supervised", "monitoring-arranged", "benefit-outweighs-risk",
                                    "specialist-supervised"]
    assert card["selectionBehavior"] == "any"
    calcium, albumin, weekly, pth, phos, vitd = suggestion_resources(card)
    assert [resource_codes(r) for r in (calcium, albumin)] == [["17861-6"], ["1751-7"]]
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
    assert card is not None and card["summary"].startswith("Dialysis: ")


@pytest.mark.parametrize("days_ago, fires", [(89, True), (90, True), (91, False)])
def test_dmab_ckd_dialysis_procedure_within_90_days(days_ago: int, fires: bool) -> None:
    card = run(RULE, [patient(), procedure("302497006", SNOMED, ago(days_ago))], drafts=[draft()])
    assert (card is not None) is fires
    if fires:
        assert card["summary"].startswith("Dialysis: ")
        assert ago(days_ago).isoformat() in card["detail"]


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


# ---- A16: predisposed to severe hypocalcemia ---------------------------------------------------

@pytest.mark.parametrize("resource, name", [
    (lambda: condition("36976004"), "Hypoparathyroidism"),
    (lambda: condition("E20.8", ICD10), "Hypoparathyroidism"),            # E20 prefix
    (lambda: condition("E20", ICD10), "Hypoparathyroidism"),
    (lambda: condition("E89.2", ICD10), "Hypoparathyroidism"),            # postprocedural
    (lambda: condition(None, text="Idiopathic hypoparathyroidism"), "Hypoparathyroidism"),
    (lambda: procedure("60500", CPT, ago(4000)), "Parathyroidectomy"),    # any date
    (lambda: condition(None, text="History of parathyroidectomy", clinical="resolved"), "Parathyroidectomy"),
    (lambda: procedure("60240", CPT, ago(9000)), "Total thyroidectomy"),
    (lambda: procedure("60260", CPT, ago(30)), "Total thyroidectomy"),    # completion
    (lambda: procedure("123", SNOMED, ago(30), text="Completion thyroidectomy"), "Total thyroidectomy"),
    (lambda: condition("396331005"), "Celiac disease"),
    (lambda: condition("K90.0", ICD10), "Celiac disease"),
    (lambda: condition("K90.09", ICD10), "Celiac disease"),              # K90.0 prefix
    (lambda: condition(None, text="Coeliac disease"), "Celiac disease"),
    (lambda: procedure("43775", CPT, ago(5000)), "Bariatric surgery"),    # sleeve, any date
    (lambda: condition("Z98.84", ICD10, clinical="inactive"), "Bariatric surgery"),  # any status
    (lambda: procedure("1", SNOMED, ago(3000), text="Roux-en-Y gastric bypass"), "Bariatric surgery"),
])
def test_a16_each_predisposition_fires_at_initiation_and_is_named(resource, name) -> None:
    card = run(RULE, [patient(), observation("17861-6", 9.4, "mg/dL", ago(3)), resource()], drafts=[draft()])
    assert card is not None
    assert card["indicator"] == "warning"
    assert card["summary"] == (f"{name}: high risk of severe hypocalcemia with denosumab; plan calcium "
                               "checks before and after the dose")
    assert "10–14 days after the injection" in card["detail"]


@pytest.mark.parametrize("resource", [
    lambda: procedure("60220", CPT, ago(30), text="Thyroid lobectomy"),      # partial
    lambda: procedure("13619001", SNOMED, ago(30), text="Thyroidectomy"),     # unspecified
    lambda: condition(None, text="Partial thyroidectomy"),
    lambda: condition("36976004", clinical="resolved"),                     # resolved hypoparathyroidism
    lambda: condition("396331005", clinical="resolved"),                    # resolved celiac disease
    lambda: condition("396331005", verification="entered-in-error"),
    lambda: procedure("60500", CPT, ago(30), status="not-done"),
    lambda: procedure("43775", CPT, ago(30), status="entered-in-error"),
    lambda: condition("E21.0", ICD10),                                      # hyperparathyroidism
])
def test_a16_not_a_predisposition(resource) -> None:
    assert run(RULE, [patient(), resource()], drafts=[draft()]) is None


def test_a16_first_predisposition_found_is_named_and_all_are_listed() -> None:
    res = [patient(), condition("K90.0", ICD10), condition("E20.9", ICD10), _egfr(45, 10)]
    card = run(RULE, res, drafts=[draft()])
    assert card["summary"].startswith("Hypoparathyroidism: ")
    assert "celiac disease" in card["detail"].lower()
    ckd = run(RULE, res + [condition("N18.5", ICD10)], drafts=[draft()])
    assert ckd["summary"].startswith("CKD stage 4/5: ")
    assert "weekly for the first month, then monthly" in ckd["detail"]


@pytest.mark.parametrize("days_ago, fires", [(29, False), (30, False), (31, True)])
def test_a16_continuation_fires_only_without_a_calcium_in_30_days(days_ago: int, fires: bool) -> None:
    res = [patient(), *continuation(), condition("N18.5", ICD10),
           observation("17861-6", 9.2, "mg/dL", ago(days_ago))]
    card = run(RULE, res, drafts=[draft()])
    assert (card is not None) is fires
    if fires:
        assert card["summary"] == ("CKD stage 4/5 and no calcium in the last 30 days: check calcium before "
                                   "this denosumab dose")
        assert f"last calcium on record: 9.2 mg/dL on {ago(31).isoformat()}" in card["detail"]


def test_a16_continuation_fires_with_an_ionized_calcium_counting_as_calcium() -> None:
    res = [patient(), *continuation(), condition("36976004"), observation("1995-0", 1.2, "mmol/L", ago(5))]
    assert run(RULE, res, drafts=[draft()]) is None


def test_a16_continuation_with_no_calcium_at_all_or_an_unusable_latest_fires() -> None:
    base = [patient(), *continuation(), condition("36976004")]
    assert run(RULE, base, drafts=[draft()]) is not None
    unusable = run(RULE, base + [_calcium_no_value(2), observation("17861-6", 9.3, "mg/dL", ago(12))],
                   drafts=[draft()])
    assert unusable is not None
    assert unusable["summary"].startswith("Hypoparathyroidism and no calcium in the last 30 days")


def test_a16_continuation_ignores_cancelled_calcium_and_initiation_ignores_calcium() -> None:
    base = [patient(), *continuation(), condition("Z98.84", ICD10)]
    cancelled = observation("17861-6", 9.3, "mg/dL", ago(3), status="cancelled")
    assert run(RULE, base + [cancelled], drafts=[draft()]) is not None
    # initiation: fires whatever the calcium
    assert run(RULE, [patient(), condition("Z98.84", ICD10), observation("17861-6", 9.3, "mg/dL", ago(3))],
               drafts=[draft()]) is not None


def test_a16_other_patients_surgery_does_not_count() -> None:
    other = procedure("60500", CPT, ago(30))
    other["subject"] = {"reference": "Patient/someone-else"}
    from tests.factory import evaluate_rules, rule_ids
    assert RULE not in rule_ids(evaluate_rules([patient(), other], drafts=[draft()]))
