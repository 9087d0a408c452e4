"""BP-HYPOCALCEMIA (RULES.md §4, D5): judged calcium low before a bisphosphonate."""

from __future__ import annotations

import pytest

from tests.factory import ICD10, condition, draft, request
from tests.rules._bp_helpers import (
    ALENDRONATE_70,
    IBANDRONATE_IV,
    RISEDRONATE_150,
    ZOL4,
    ZOL5,
    ago,
    albumin,
    calcium,
    card,
    egfr,
    ids,
    ionized,
    override_codes,
    reason,
    run,
)

RID = "BP-HYPOCALCEMIA"


def _iv(ca, days=12, unit="mg/dL", **kw):
    return [egfr(70, ago(days)), calcium(ca, ago(days), unit=unit, **kw)]


def test_bp_hypocalcemia_zol5_low_calcium_is_critical_with_value_and_date() -> None:
    """BP-HYPOCALCEMIA: zoledronic acid 5 mg with calcium 8.1 mg/dL → critical card."""
    cards = run(_iv(8.1) + [albumin(4.2, ago(12))], [draft(ZOL5)])
    c = card(cards, RID)
    assert c is not None and c["indicator"] == "critical"
    assert (
        c["summary"]
        == f"Calcium 8.1 mg/dL on {ago(12)}: correct hypocalcemia before giving zoledronic acid 5 mg"
    )
    assert override_codes(c) == ["repeat-result-normal", "treating-hypocalcemia"]
    assert "Reclast" in c["source"]["label"]
    labs = [a["resource"]["code"]["coding"][0]["code"] for a in c["suggestions"][0]["actions"]]
    assert labs == ["17861-6", "1751-7", "19123-9", "62292-8", "2731-8"]
    assert all(a["resource"]["resourceType"] == "ServiceRequest" for a in c["suggestions"][0]["actions"])
    supplement = c["suggestions"][1]["actions"][0]["resource"]
    assert (
        supplement["resourceType"] == "MedicationRequest"
        and "Calcium carbonate" in supplement["medicationCodeableConcept"]["text"]
    )
    assert "8.1 mg/dL" in c["detail"] and "not corrected" in c["detail"]
    assert "AR-CALCIUM-NOT-CHECKED" not in ids(cards)  # §7 exclusive pair


@pytest.mark.parametrize(
    "value, fires", [(8.4, True), (8.5, False), (8.6, False), (8.45, False), (8.44, True)]
)
def test_bp_hypocalcemia_threshold_after_rounding(value, fires) -> None:
    """BP-HYPOCALCEMIA: strictly below 8.5 mg/dL after rounding to 0.1 (D5)."""
    assert (RID in ids(run(_iv(value), [draft(ZOL5)]))) is fires


@pytest.mark.parametrize("mmol, fires", [(2.12, False), (2.11, False), (2.10, True), (2.05, True)])
def test_bp_hypocalcemia_si_units(mmol, fires) -> None:
    """BP-HYPOCALCEMIA: 2.12 mmol/L → 8.5 mg/dL (not low, §8 item 18); 2.10 → 8.4 (low)."""
    cards = run(_iv(mmol, unit="mmol/L"), [draft(ZOL5)])
    assert (RID in ids(cards)) is fires
    if fires:
        assert "mmol/L" in card(cards, RID)["detail"]


def test_bp_hypocalcemia_albumin_correction_and_ionized() -> None:
    """BP-HYPOCALCEMIA: albumin < 4.0 corrects upward; ionized calcium overrides when newer."""
    assert RID not in ids(run(_iv(8.0) + [albumin(3.0, ago(12))], [draft(ZOL5)]))  # 8.8 corrected
    c = card(run(_iv(7.9) + [albumin(3.8, ago(12))], [draft(ZOL5)]), RID)  # 8.06 → 8.1
    assert c is not None and "(albumin-corrected)" in c["summary"] and "8.1 mg/dL" in c["summary"]
    assert RID not in ids(run(_iv(8.0) + [albumin(30, ago(12), unit="g/L")], [draft(ZOL5)]))  # SI albumin
    c = card(run(_iv(9.0, days=5) + [ionized(1.08, ago(2))], [draft(ZOL5)]), RID)
    assert c is not None and c["summary"].startswith(f"Ionized calcium 1.08 mmol/L on {ago(2)}")
    assert RID not in ids(run(_iv(8.0, days=5) + [ionized(1.20, ago(2))], [draft(ZOL5)]))


def test_bp_hypocalcemia_window_iv_30_oral_90() -> None:
    """BP-HYPOCALCEMIA: IV agents use 30 days, oral agents 90 days (§8 item 16)."""
    assert RID in ids(run([egfr(70, ago(3)), calcium(8.0, ago(30))], [draft(ZOL5)]))
    assert RID not in ids(run([egfr(70, ago(3)), calcium(8.0, ago(31))], [draft(ZOL5)]))
    assert RID in ids(run([egfr(70, ago(3)), calcium(8.0, ago(90))], [draft(ALENDRONATE_70)]))
    assert RID not in ids(run([egfr(70, ago(3)), calcium(8.0, ago(91))], [draft(ALENDRONATE_70)]))


def test_bp_hypocalcemia_ignored_statuses_and_latest_result_wins() -> None:
    """BP-HYPOCALCEMIA: entered-in-error/cancelled lows ignored; a later normal value wins."""
    base = [egfr(70, ago(3))]
    assert RID not in ids(
        run(base + [calcium(7.8, ago(5), status="entered-in-error")], [draft(RISEDRONATE_150)])
    )
    assert RID not in ids(run(base + [calcium(7.8, ago(5), status="cancelled")], [draft(RISEDRONATE_150)]))
    assert RID not in ids(run(base + [calcium(7.8, ago(20)), calcium(9.1, ago(4))], [draft(RISEDRONATE_150)]))
    assert RID in ids(
        run(
            base + [calcium(9.1, ago(20)), calcium(7.8, ago(4), status="preliminary")],
            [draft(RISEDRONATE_150)],
        )
    )


def test_bp_hypocalcemia_missing_calcium_is_not_this_rule() -> None:
    """BP-HYPOCALCEMIA: no calcium → IV gets AR-CALCIUM-NOT-CHECKED, oral gets nothing."""
    iv = ids(run([egfr(70, ago(3))], [draft(ZOL5)]))
    assert RID not in iv and "AR-CALCIUM-NOT-CHECKED" in iv
    assert RID not in ids(run([egfr(70, ago(3))], [draft(ALENDRONATE_70)]))
    # a result with an unknown unit is not used
    assert RID not in ids(
        run([egfr(70, ago(3)), calcium(2.0, ago(3), unit="mEq/dL", ucum=False)], [draft(ALENDRONATE_70)])
    )


def test_bp_hypocalcemia_excluded_for_hypercalcemia_of_malignancy_orders() -> None:
    """BP-HYPOCALCEMIA: an order for hypercalcemia of malignancy is not judged (calcium is high)."""
    labs = _iv(8.2) + [condition("C79.51", ICD10)]
    by_text = draft(ZOL4, dose_mg=4)
    by_text["reasonCode"] = [reason("Hypercalcemia of malignancy")]
    assert RID not in ids(run(labs, [by_text]))
    by_code = draft(ZOL4, dose_mg=4, reason=[(ICD10, "E83.52")])
    assert RID not in ids(run(labs, [by_code]))
    hcm = condition(None, text="Malignant hypercalcaemia")
    by_ref = draft(ZOL4, dose_mg=4)
    by_ref["reasonReference"] = [{"reference": f"Condition/{hcm['id']}"}]
    assert RID not in ids(run(labs + [hcm], [by_ref]))
    assert RID in ids(run(labs, [draft(ZOL4, dose_mg=4)]))  # no HCM reason: fires


def test_bp_hypocalcemia_supplement_on_list_drops_the_supplement_suggestion() -> None:
    """BP-HYPOCALCEMIA: with calcium + vitamin D active, only the lab suggestion is offered."""
    supp = request(None, ago(200), text="Calcium carbonate 600 mg + vitamin D3 400 IU tablet")
    c = card(run(_iv(8.0) + [supp], [draft(IBANDRONATE_IV)]), RID)
    assert c is not None and len(c["suggestions"]) == 1
    assert "ibandronate IV" in c["summary"]


def test_bp_hypocalcemia_hooks() -> None:
    """BP-HYPOCALCEMIA: order-select (selected drafts only) and order-sign; on patient-view only
    with a current course (A6)."""
    d = draft(ZOL5)
    assert RID in ids(run(_iv(8.0), [d], hook="order-select"))
    assert RID not in ids(run(_iv(8.0), [d], hook="order-select", selections=[]))
    assert RID not in ids(run(_iv(8.0), [], hook="patient-view"))


# ---- A39: the latest calcium date decides, usable or not ----------------------------------------

def _no_value(when):
    from tests.factory import CALCIUM_SERUM, observation
    obs = observation(CALCIUM_SERUM, None, None, when)
    obs["dataAbsentReason"] = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/data-absent-reason",
                                           "code": "error", "display": "Error"}]}
    return obs


@pytest.mark.parametrize("latest", [
    lambda: _no_value(ago(2)), lambda: calcium(7.0, ago(2), unit="mmol"),
    lambda: calcium(None, ago(2), unit=None, value_string="clotted"),
])
def test_a39_unusable_latest_calcium_older_low_is_not_judged(latest) -> None:
    """Oral agents have no "not checked" rule: no card at all; IV agents fall back to
    AR-CALCIUM-NOT-CHECKED (warning), never BP-HYPOCALCEMIA on the older 7.6."""
    res = [egfr(70, ago(3)), latest(), calcium(7.6, ago(10))]
    oral = ids(run(res, [draft(ALENDRONATE_70)]))
    assert RID not in oral and "AR-CALCIUM-NOT-CHECKED" not in oral
    from tests.rules._helpers import UNMERGED
    iv = run(res, [draft(ZOL5)], thresholds=UNMERGED)   # the member card itself, not the merged one (A12)
    assert RID not in ids(iv) and "AR-CALCIUM-NOT-CHECKED" in ids(iv)
    assert card(iv, "AR-CALCIUM-NOT-CHECKED")["indicator"] == "warning"


def test_a39_same_date_usable_calcium_decides_and_albumin_latest_unusable_means_no_correction() -> None:
    same_day = [egfr(70, ago(3)), _no_value(ago(2)), calcium(8.1, ago(2))]
    assert RID in ids(run(same_day, [draft(ALENDRONATE_70)]))
    # albumin 3.0 would correct 8.4 to 9.2 (not low), but the latest albumin within 7 days of the
    # calcium is unusable: it decides (A39), no correction, the measured 8.4 is judged low
    res = [egfr(70, ago(3)), calcium(8.4, ago(5)), albumin(3.0, ago(8)), albumin(30, ago(4), unit="mg")]
    cards = run(res, [draft(ZOL5)])
    c = card(cards, RID)
    assert c is not None and "Not corrected for albumin: Albumin 30.0 on" in c["detail"]
    corrected = run([egfr(70, ago(3)), calcium(8.4, ago(5)), albumin(3.0, ago(8))], [draft(ZOL5)])
    assert RID not in ids(corrected)           # 8.4 + 0.8 × 1.0 = 9.2: not low


# ---- A6: patient-view for a current bisphosphonate course (warning) ---------------------------

def _oral_course(days_ago: int = 20):
    from tests.factory import dispense
    return [dispense(ALENDRONATE_70, ago(days_ago), days_supply=30)]


def _zol5_given(days_ago: int = 100):
    from tests.factory import administration
    return [administration(ZOL5, ago(days_ago))]


def _pv(resources):
    return run(resources, [], hook="patient-view")


@pytest.mark.parametrize("days, fires", [(60, True), (89, True), (90, True), (91, False)])
def test_a6_patient_view_oral_course_window_90_days(days, fires) -> None:
    cards = _pv(_oral_course() + [calcium(8.2, ago(days))])
    assert (RID in ids(cards)) is fires
    if fires:
        c = card(cards, RID)
        assert c["indicator"] == "warning"
        assert c["summary"] == (f"Calcium 8.2 mg/dL on {ago(days)} while on alendronate: correct "
                                "hypocalcemia before the next dose")


@pytest.mark.parametrize("days, fires", [(29, True), (30, True), (31, False)])
def test_a6_patient_view_iv_course_window_30_days(days, fires) -> None:
    cards = _pv(_zol5_given() + [calcium(8.0, ago(days))])
    assert (RID in ids(cards)) is fires
    if fires:
        assert "while on zoledronic acid 5 mg" in card(cards, RID)["summary"]


def test_a6_patient_view_is_warning_also_when_severe_and_order_hooks_stay_critical() -> None:
    c = card(_pv(_oral_course() + [calcium(6.9, ago(5))]), RID)
    assert c["indicator"] == "warning" and "severe" in c["detail"]
    assert card(run(_iv(6.9), [draft(ZOL5)]), RID)["indicator"] == "critical"


def test_a6_patient_view_needs_a_current_course() -> None:
    from tests.factory import administration, dispense
    low = [calcium(8.0, ago(5))]
    assert RID not in ids(_pv(low))                                            # no bisphosphonate
    assert RID not in ids(_pv(low + [dispense(ALENDRONATE_70, ago(400), days_supply=30)]))  # over
    assert RID not in ids(_pv(low + [administration(ZOL5, ago(months=13))]))   # beyond 12 months
    assert RID in ids(_pv(low + [administration(ZOL5, ago(months=11))]))
    assert RID not in ids(_pv(low + [dispense(ALENDRONATE_70, ago(20), days_supply=30,
                                              status="entered-in-error")]))


def test_a6_patient_view_normal_or_missing_calcium_is_silent() -> None:
    assert RID not in ids(_pv(_oral_course() + [calcium(8.5, ago(5))]))
    assert RID not in ids(_pv(_oral_course()))
    assert RID not in ids(_pv(_oral_course() + [calcium(8.0, ago(5), status="cancelled")]))


def test_a6_patient_view_not_with_active_hypercalcemia_of_malignancy() -> None:
    low = _zol5_given() + [calcium(8.0, ago(5))]
    assert RID not in ids(_pv(low + [condition(None, text="Hypercalcemia of malignancy")]))
    assert RID not in ids(_pv(low + [condition("E83.52", ICD10), condition("C50.911", ICD10)]))
    assert RID in ids(_pv(low + [condition("E83.52", ICD10)]))          # A4: E83.52 alone
    assert RID in ids(_pv(low + [condition(None, text="Hypercalcemia of malignancy",
                                           clinical="resolved")]))


def test_a4_order_reason_e83_52_without_malignancy_is_judged() -> None:
    """A4: a coded E83.52 reason alone is not hypercalcemia of malignancy: calcium is judged."""
    by_code = draft(ZOL4, dose_mg=4, reason=[(ICD10, "E83.52")])
    assert RID in ids(run(_iv(8.2), [by_code]))


def test_a6_patient_view_finding_names_the_course_without_record_ids() -> None:
    import re
    c = card(_pv(_oral_course(20) + [calcium(8.2, ago(10))]), RID)
    assert "oral course since" in c["detail"]
    assert not re.search(r"\b(MedicationRequest|MedicationDispense|MedicationStatement)/", c["detail"])
