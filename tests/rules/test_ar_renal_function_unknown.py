"""AR-RENAL-FUNCTION-UNKNOWN (RULES.md §5): no usable eGFR in the window (denosumab and oral
bisphosphonates 365 days, IV bisphosphonates 30 days) and no active CKD 4/5, ESRD or dialysis
record; creatinine without eGFR still fires and is named; warning for IV, info otherwise."""

from __future__ import annotations

import pytest

from cards.thresholds import Thresholds
from tests.factory import (ALENDRONATE, CALCIUM_SERUM, CREATININE, DMAB60, EGFR, ICD10, RISEDRONATE,
                           ZOL4, ZOL5, administration, condition, draft, observation, patient,
                           procedure)
from tests.rules._ar_helpers import ago, engine_ids, override_codes, run, suggestion_codes

RID = "AR-RENAL-FUNCTION-UNKNOWN"
EGFR_UNIT = "mL/min/{1.73_m2}"


def base() -> list[dict]:
    return [patient("1950-02-01", "female"), observation(CALCIUM_SERUM, 9.5, "mg/dL", ago(3))]


@pytest.mark.parametrize("code, window, indicator, weight", [
    (DMAB60, 365, "warning", False),   # v2 (A13): denosumab initiation is a warning
    (ALENDRONATE, 365, "info", False), (RISEDRONATE, 365, "info", False),
    (ZOL5, 30, "warning", True), (ZOL4, 30, "warning", True)])
def test_ar_renal_function_unknown_fires_without_egfr(code, window, indicator, weight):
    card = run(RID, base(), drafts=[draft(code)])
    assert card is not None and card["indicator"] == indicator
    assert card["summary"].startswith(f"No eGFR in the last {window} days before ")
    assert card["summary"].endswith(": check kidney function first")
    assert "none on record" in card["detail"]
    assert override_codes(card) == ["result-elsewhere", "drawn-today"]
    # v2 (A10): IV agents also get a body weight (Cockcroft-Gault)
    assert suggestion_codes(card) == [["2160-0", "29463-7"] if weight else ["2160-0"]]
    res = card["suggestions"][0]["actions"][0]["resource"]
    assert res["resourceType"] == "ServiceRequest" and "eGFR" in res["code"]["text"]
    assert card["source"]["topic"]["code"] == RID and card["source"]["topic"]["display"] == "No recent eGFR"


@pytest.mark.parametrize("code, window", [(DMAB60, 365), (ALENDRONATE, 365), (ZOL5, 30)])
@pytest.mark.parametrize("offset, fires", [(-1, False), (0, False), (1, True)])
def test_ar_renal_function_unknown_window_boundary(code, window, offset, fires):
    res = base() + [observation(EGFR, 70, EGFR_UNIT, ago(window + offset))]
    card = run(RID, res, drafts=[draft(code)])
    assert (card is not None) is fires
    if fires:
        assert f"70 mL/min/1.73 m² on {ago(window + offset).isoformat()}" in card["detail"]   # A40
        assert "stale" in card["detail"]


def test_ar_renal_function_unknown_windows_come_from_thresholds():
    res = base() + [observation(EGFR, 70, EGFR_UNIT, ago(40))]
    assert run(RID, res, drafts=[draft(ZOL5)]) is not None
    assert run(RID, res, drafts=[draft(ZOL5)], thresholds=Thresholds(egfr_lookback_days_iv_bp=60)) is None
    card = run(RID, res, drafts=[draft(DMAB60)], thresholds=Thresholds(egfr_lookback_days_denosumab=35))
    assert card is not None and "last 35 days" in card["summary"]


def test_ar_renal_function_unknown_low_egfr_in_window_is_not_unknown():
    """A found eGFR (even 12) is another rule's finding (DMAB-CKD / BP-RENAL), never this one."""
    res = base() + [observation(EGFR, 12, EGFR_UNIT, ago(10))]
    assert run(RID, res, drafts=[draft(DMAB60)]) is None
    assert run(RID, res, drafts=[draft(ZOL5)]) is None


@pytest.mark.parametrize("kwargs", [dict(value_string=">60"), dict(comparator=">")])
def test_ar_renal_function_unknown_comparator_egfr_is_usable(kwargs):
    value = None if "value_string" in kwargs else 90
    res = base() + [observation(EGFR, value, EGFR_UNIT if value else None, ago(10), **kwargs)]
    assert run(RID, res, drafts=[draft(ZOL5)]) is None


@pytest.mark.parametrize("unit", ["mL/s", "mL/s/1.73m2", "mL/min/m2", "L/min", "mg/dL", "%", None])
def test_ar_renal_function_unknown_unknown_unit_is_not_usable(unit):
    res = base() + [observation(EGFR, 70, unit, ago(5))]
    card = run(RID, res, drafts=[draft(DMAB60)])
    assert card is not None and "unit not recognised" in card["detail"]


@pytest.mark.parametrize("status", ["entered-in-error", "cancelled"])
def test_ar_renal_function_unknown_ignored_statuses(status):
    res = base() + [observation(EGFR, 70, EGFR_UNIT, ago(5), status=status)]
    card = run(RID, res, drafts=[draft(ZOL5)])
    assert card is not None and "none on record" in card["detail"]


@pytest.mark.parametrize("value, unit, shown", [(1.1, "mg/dL", "1.10 mg/dL"), (97.4, "umol/L", "97 umol/L"),
                                              (0.4522232972528771, "mg/dL", "0.45 mg/dL")])  # A40
def test_ar_renal_function_unknown_creatinine_without_egfr_is_named(value, unit, shown):
    res = base() + [observation(CREATININE, value, unit, ago(12))]
    card = run(RID, res, drafts=[draft(ZOL5)])
    assert card is not None and card["indicator"] == "warning"
    assert f"(creatinine {shown} on {ago(12).isoformat()})" in card["summary"]
    assert f"creatinine {shown} on {ago(12).isoformat()}" in card["detail"]
    assert "does not calculate eGFR" in card["detail"]


def test_ar_renal_function_unknown_stale_creatinine_not_in_summary():
    res = base() + [observation(CREATININE, 1.1, "mg/dL", ago(45))]
    card = run(RID, res, drafts=[draft(ZOL5)])
    assert "creatinine" not in card["summary"]
    assert f"last: 1.10 mg/dL on {ago(45).isoformat()}" in card["detail"]   # A40: 2 decimals


@pytest.mark.parametrize("record", [
    condition("431857002"),                      # CKD stage 4 (SNOMED)
    condition("N18.5", ICD10),                    # CKD stage 5 (ICD-10-CM)
    condition("N18.6", ICD10),                    # ESRD
    condition("105502003"),                       # dependence on dialysis
    procedure("302497006", when=ago(30)),         # haemodialysis in the last 90 days
])
def test_ar_renal_function_unknown_silent_with_known_severe_ckd(record):
    res = base() + [record]
    assert run(RID, res, drafts=[draft(DMAB60)]) is None
    assert run(RID, res, drafts=[draft(ZOL5)]) is None


@pytest.mark.parametrize("record", [
    condition("431857002", clinical="resolved"),
    condition("431857002", verification="entered-in-error"),
    condition("431857002", verification="refuted"),
    procedure("302497006", when=ago(91)),
    procedure("302497006", when=ago(10), status="entered-in-error"),
    condition("N18.3", ICD10),                    # CKD stage 3: not severe
])
def test_ar_renal_function_unknown_fires_when_ckd_record_does_not_count(record):
    assert run(RID, base() + [record], drafts=[draft(DMAB60)]) is not None


def test_ar_renal_function_unknown_mixed_drafts_names_only_the_unknown_ones():
    """eGFR 100 days old: enough for denosumab (365), stale for zoledronic acid (30)."""
    res = base() + [observation(EGFR, 64, EGFR_UNIT, ago(100))]
    card = run(RID, res, drafts=[draft(DMAB60), draft(ZOL5)])
    assert card["indicator"] == "warning"
    assert card["summary"].startswith("No eGFR in the last 30 days before zoledronic acid:")
    assert "denosumab" not in card["summary"]


def test_ar_renal_function_unknown_both_unknown_one_card_longest_window():
    card = run(RID, base(), drafts=[draft(DMAB60), draft(ZOL5)])
    assert card["summary"].startswith("No eGFR in the last 365 days before denosumab and zoledronic acid")
    assert card["indicator"] == "warning"


def test_ar_renal_function_unknown_order_select_selected_vs_not_selected():
    d, other = draft(ZOL5), draft(ALENDRONATE)
    assert run(RID, base(), hook="order-select", drafts=[d]) is not None
    assert run(RID, base(), hook="order-select", drafts=[d], selections=[]) is None
    card = run(RID, base(), hook="order-select", drafts=[d, other],
               selections=[f"MedicationRequest/{other['id']}"])
    assert card["indicator"] == "info" and "alendronate" in card["summary"]


@pytest.mark.parametrize("hook", ["order-select", "order-sign"])
def test_ar_renal_function_unknown_on_order_hooks_through_the_engine(hook):
    assert RID in engine_ids(base(), hook=hook, drafts=[draft(DMAB60)])
    assert RID in engine_ids(base(), hook=hook, drafts=[draft(ALENDRONATE)])


def test_ar_renal_function_unknown_never_on_patient_view():
    res = base() + [administration(DMAB60, ago(30))]
    assert run(RID, res, hook="patient-view") is None
    assert RID not in engine_ids(res, hook="patient-view")


def test_chart_egfr_without_unit_is_not_usable_but_a_value_string_is():
    """Chart fix for AR-RENAL-FUNCTION-UNKNOWN (D5 "Value forms"): an eGFR valueQuantity with
    no unit is not used; a valueString ">60" keeps its implied unit."""
    from cds_service.chart import build_chart
    from tests.factory import NOW
    no_unit = build_chart([observation(EGFR, 70, None, ago(5))], NOW)
    assert no_unit.labs("egfr")[0].usable is False and no_unit.egfr(365) is None
    as_string = build_chart([observation(EGFR, None, None, ago(5), value_string=">60")], NOW)
    lab = as_string.egfr(365)
    assert lab is not None and lab.value == 60 and lab.comparator == ">"


# ---- A39: the latest eGFR date decides, usable or not --------------------------------------------

DAR = "http://terminology.hl7.org/CodeSystem/data-absent-reason"


def _egfr_no_value(when):
    obs = observation(EGFR, None, None, when)
    obs["dataAbsentReason"] = {"coding": [{"system": DAR, "code": "error", "display": "Error"}]}
    return obs


@pytest.mark.parametrize("latest, words, reason", [
    (lambda: observation(EGFR, 13.4, None, ago(1)), f"eGFR 13 on {ago(1).isoformat()}: unit not recognised (no unit)",
     "unit not recognised"),
    (lambda: observation(EGFR, 13.4, "mL/min/m2", ago(1)),
     f'eGFR 13 on {ago(1).isoformat()}: unit not recognised ("mL/min/m2")', "unit not recognised"),
    (lambda: _egfr_no_value(ago(1)), f"eGFR on {ago(1).isoformat()}: no value (Error)", "no value"),
    (lambda: observation(EGFR, None, None, ago(1), value_string="see report"),
     f'eGFR on {ago(1).isoformat()}: no numeric value ("see report")', "no numeric value"),
])
@pytest.mark.parametrize("code", [ALENDRONATE, DMAB60])
def test_a39_unusable_latest_egfr_falls_back_and_112_is_not_judged(latest, words, reason, code):
    """D5 example: eGFR 13.4 yesterday without a usable unit, 112 three weeks ago → this card."""
    res = base() + [latest(), observation(EGFR, 112, EGFR_UNIT, ago(23))]
    card = run(RID, res, drafts=[draft(code)])
    assert card is not None
    agent = "alendronate" if code == ALENDRONATE else "denosumab"
    assert card["summary"] == (f"No usable eGFR in the last 365 days (latest {ago(1).isoformat()}: {reason}): "
                               f"check kidney function before {agent}")
    finding = card["detail"].split("\n")[0]
    assert words in finding and "was below" not in finding
    assert (f"Previous usable eGFR: eGFR 112 mL/min/1.73 m² on {ago(23).isoformat()} — not used: a newer "
            "result exists") in card["detail"]
    if reason == "no value":
        assert "unit not recognised" not in card["summary"] + card["detail"]


def test_a39_previous_egfr_below_a_cutoff_is_named_in_the_finding():
    """A39 consequence: eGFR 25 then an unusable repeat → this card naming the 25, not the
    advanced-CKD card (denosumab) or the renal contraindication (alendronate)."""
    res = base() + [observation(EGFR, 40, "%", ago(2)), observation(EGFR, 25, EGFR_UNIT, ago(40))]
    for code, cutoff, other in ((DMAB60, 30, "DMAB-CKD-CALCIUM-MONITORING"),
                                (ALENDRONATE, 35, "BP-RENAL-CONTRAINDICATION")):
        card = run(RID, res, drafts=[draft(code)])
        assert (f"The previous result, eGFR 25 mL/min/1.73 m² on {ago(40).isoformat()}, was below {cutoff}."
                in card["detail"].split("\n")[0])
        ids = engine_ids(res, drafts=[draft(code)])
        assert RID in ids and other not in ids


def test_a39_same_date_a_usable_egfr_decides_by_code_preference():
    res = base() + [observation("33914-3", 13.4, None, ago(1)), observation(EGFR, 52, EGFR_UNIT, ago(1)),
                    observation(EGFR, 20, EGFR_UNIT, ago(30))]
    assert run(RID, res, drafts=[draft(ALENDRONATE)]) is None
    assert "BP-RENAL-CONTRAINDICATION" not in engine_ids(res, drafts=[draft(ALENDRONATE)])


def test_a39_usable_latest_egfr_decides_unchanged():
    res = base() + [observation(EGFR, 28, EGFR_UNIT, ago(1)), _egfr_no_value(ago(10))]
    assert run(RID, res, drafts=[draft(ALENDRONATE)]) is None
    assert "BP-RENAL-CONTRAINDICATION" in engine_ids(res, drafts=[draft(ALENDRONATE)])


def test_a39_within_the_window_first():
    """IV bisphosphonate window 30 days: an unusable eGFR 40 days ago is outside it (stale), so
    the plain "none in the window" card; a usable one inside decides over an unusable older one."""
    res = base() + [_egfr_no_value(ago(40)), observation(EGFR, 70, EGFR_UNIT, ago(60))]
    card = run(RID, res, drafts=[draft(ZOL5)])
    assert card["summary"].startswith("No eGFR in the last 30 days before zoledronic acid")
    assert f"eGFR on {ago(40).isoformat()}: no value (Error) (40 days old), not used" in card["detail"]
    inside = base() + [observation(EGFR, 70, EGFR_UNIT, ago(5)), _egfr_no_value(ago(20))]
    assert run(RID, inside, drafts=[draft(ZOL5)]) is None


@pytest.mark.parametrize("status", ["entered-in-error", "cancelled"])
def test_a39_entered_in_error_latest_does_not_count(status):
    bad = observation(EGFR, 13.4, None, ago(1), status=status)
    res = base() + [bad, observation(EGFR, 28, EGFR_UNIT, ago(23))]
    assert run(RID, res, drafts=[draft(ALENDRONATE)]) is None
    assert "BP-RENAL-CONTRAINDICATION" in engine_ids(res, drafts=[draft(ALENDRONATE)])


def test_a39_unusable_latest_with_a_severe_ckd_record_is_not_unknown():
    res = base() + [observation(EGFR, 13.4, None, ago(1)), condition("N18.5", ICD10)]
    assert run(RID, res, drafts=[draft(DMAB60)]) is None
    assert "DMAB-CKD-CALCIUM-MONITORING" in engine_ids(res, drafts=[draft(DMAB60)])


def test_a39_unusable_latest_creatinine_is_not_named_as_a_value() -> None:
    bad = observation(CREATININE, None, None, ago(3))
    bad["dataAbsentReason"] = {"coding": [{"system": DAR, "code": "error", "display": "Error"}]}
    res = base() + [bad, observation(CREATININE, 1.1, "mg/dL", ago(12))]
    card = run(RID, res, drafts=[draft(ZOL5)])
    assert "(creatinine" not in card["summary"]           # the older 1.1 is not used
    assert f"(last: Creatinine on {ago(3).isoformat()}: no value (Error))" in card["detail"]


def test_a39_fallback_card_texts_have_no_internal_references() -> None:
    import re
    from tests.factory import VITD, evaluate_rules
    patterns = (r"RULES\.md", r"codes\.json", "§", r"(?i)\bseeds?\b", r"\b\d{3}_[0-9a-f]{16}\b",
                r"\(D(10|[1-9])\)", r"\b[a-z][a-z0-9]*(_[a-z0-9]+)+\b", r"\burn:",
                r"\b(Patient|Observation|Condition|Procedure|MedicationRequest)/[A-Za-z0-9.\-]+")
    res = base() + [observation(EGFR, 13.4, "mL/min/m2", ago(1)), observation(EGFR, 25, EGFR_UNIT, ago(23)),
                    _egfr_no_value(ago(400)), observation(VITD, 31.2, "ug", ago(4), ucum=False),
                    observation(VITD, 30, "ng/mL", ago(60))]
    from tests.rules._helpers import UNMERGED
    cards = evaluate_rules(res, drafts=[draft(DMAB60)], thresholds=UNMERGED)   # the member cards (A12)
    wanted = {"AR-RENAL-FUNCTION-UNKNOWN", "DMAB-VITD-NOT-CHECKED"}
    assert wanted <= {c["source"]["topic"]["code"] for c in cards}
    for card in cards:
        if card["source"]["topic"]["code"] in wanted:
            for text in (card["summary"], card["detail"], card["source"]["label"]):
                for p in patterns:
                    assert not re.search(p, text), (card["source"]["topic"]["code"], p, text)
