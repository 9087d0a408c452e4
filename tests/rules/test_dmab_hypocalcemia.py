"""DMAB-HYPOCALCEMIA (RULES.md §3, D5): judged calcium strictly below 8.5 mg/dL (ionized 1.15 mmol/L)
after conversion and half-up rounding; order hooks critical; patient-view after a recent dose,
critical when severe, else warning."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from cards.thresholds import Thresholds
from cds_service.chart import add_months
from tests import factory as f
from tests.rules._dmab_dosing_helpers import (DOSE_RECORDS, EGFR_UNIT, ICD10, TODAY, codes_of, ids,
                                              override_codes, pv)

RULE = "DMAB-HYPOCALCEMIA"
CA_CORRECTED = "29265-6"


def ago(n: int) -> date:
    return TODAY - timedelta(days=n)


def sign(*resources, drafts=None, hook="order-sign", **kw):
    drafts = [f.draft(f.DMAB60)] if drafts is None else drafts
    base = [f.patient(), f.administration(f.DMAB60, ago(180)), f.observation(f.EGFR, 70, EGFR_UNIT, ago(5))]
    return f.evaluate_rules([*base, *resources], hook=hook, drafts=drafts, **kw)


def ca(value, unit="mg/dL", days=3, **kw):
    return f.observation(f.CALCIUM_SERUM, value, unit, ago(days), **kw)


# ---- thresholds and units (order hooks) --------------------------------------------------------

@pytest.mark.parametrize("value, unit, fires", [
    (8.4, "mg/dL", True), (8.5, "mg/dL", False), (8.6, "mg/dL", False),
    (8.44, "mg/dL", True),            # 8.44 → 8.4
    (8.45, "mg/dL", False),           # 8.45 → 8.5 (half up)
    (2.12, "mmol/L", False),          # 8.497 → 8.5: not low (§8 item 18)
    (2.11, "mmol/L", False),          # 8.457 → 8.5
    (2.10, "mmol/L", True),           # 8.417 → 8.4
    (2.10, "mmol/l", True),           # spelling normalised
    (4.2, "meq/L", True),             # 4.2 mEq/L = 2.1 mmol/L → 8.4168 → 8.4
    (4.25, "meq/L", False),           # 8.517 → 8.5
])
def test_dmab_hypocalcemia_total_calcium_thresholds(value, unit, fires):
    """DMAB-HYPOCALCEMIA: below 8.5 mg/dL after conversion and rounding; 2.12 mmol/L does not fire."""
    cards = sign(ca(value, unit))
    assert (RULE in ids(cards)) is fires


def test_dmab_hypocalcemia_card_shape_order_sign():
    """DMAB-HYPOCALCEMIA: order hooks → critical; summary has value, kind and date; suggestions and overrides."""
    card = f.card_for(sign(ca(8.1, days=3)), RULE)
    assert card["indicator"] == "critical"
    assert card["summary"] == f"Calcium 8.1 mg/dL (measured) on {ago(3).isoformat()}: correct hypocalcemia before denosumab"
    assert codes_of(card) == ["17861-6", "1751-7", "19123-9", "62292-8", "2731-8"]
    assert card["selectionBehavior"] == "any"
    assert override_codes(card) == ["repeat-result-normal", "treating-hypocalcemia", "specialist-supervised"]
    assert "No calcium or vitamin D supplement" in card["detail"]
    labels = [s["label"] for s in card["suggestions"]]
    assert "Order calcium + vitamin D daily" in labels


def test_dmab_hypocalcemia_no_supplement_suggestion_when_on_one():
    """DMAB-HYPOCALCEMIA: the calcium + vitamin D order is suggested only when none is active."""
    card = f.card_for(sign(ca(8.1), f.request("1897", ago(100), status="active")), RULE)
    assert all("vitamin D daily" not in s["label"] for s in card["suggestions"])


def test_dmab_hypocalcemia_mmol_summary_shows_mg_dl_value():
    """DMAB-HYPOCALCEMIA: 2.05 mmol/L → 8.2 mg/dL used; the detail shows the unit sent."""
    card = f.card_for(sign(ca(2.05, "mmol/L")), RULE)
    assert "Calcium 8.2 mg/dL (measured)" in card["summary"]
    assert "mmol/L" in card["detail"]


@pytest.mark.parametrize("value, unit, fires, text", [
    (1.14, "mmol/L", True, "Ionized calcium 1.14 mmol/L"),
    (1.15, "mmol/L", False, None),
    (4.5, "mg/dL", True, "Ionized calcium 1.12 mmol/L"),     # 4.5 / 4.008 = 1.1228 → 1.12
    (4.6, "mg/dL", False, None),                            # 1.1477 → 1.15
])
def test_dmab_hypocalcemia_ionized(value, unit, fires, text):
    """DMAB-HYPOCALCEMIA: an ionized calcium not older than the total is judged (< 1.15 mmol/L)."""
    cards = sign(ca(9.0, days=3), f.observation(f.CALCIUM_IONIZED, value, unit, ago(2)))
    assert (RULE in ids(cards)) is fires
    if text:
        assert f.card_for(cards, RULE)["summary"].startswith(text)


def test_dmab_hypocalcemia_ionized_older_than_total_is_not_judged():
    """DMAB-HYPOCALCEMIA: a total calcium newer than the ionized one wins."""
    assert RULE not in ids(sign(ca(9.0, days=2), f.observation(f.CALCIUM_IONIZED, 1.05, "mmol/L", ago(3))))


@pytest.mark.parametrize("calcium, albumin, albumin_unit, fires, kind", [
    (8.0, 3.0, "g/dL", False, None),                   # 8.0 + 0.8 → 8.8
    (8.0, 3.8, "g/dL", True, "albumin-corrected"),     # 8.16 → 8.2
    (8.0, 38, "g/L", True, "albumin-corrected"),
    (8.4, 4.5, "g/dL", True, "measured"),              # albumin ≥ 4.0 never lowers (§8 item 2)
    (8.3, 3.5, "g/dL", False, None),                   # 8.7
])
def test_dmab_hypocalcemia_albumin_correction(calcium, albumin, albumin_unit, fires, kind):
    """DMAB-HYPOCALCEMIA: albumin correction only when albumin < 4.0 g/dL within 7 days."""
    cards = sign(ca(calcium), f.observation(f.ALBUMIN, albumin, albumin_unit, ago(4)))
    assert (RULE in ids(cards)) is fires
    if kind:
        assert f"({kind})" in f.card_for(cards, RULE)["summary"]


def test_dmab_hypocalcemia_albumin_too_far_apart_not_used():
    """DMAB-HYPOCALCEMIA: albumin more than 7 days from the calcium is not paired."""
    cards = sign(ca(8.3, days=1), f.observation(f.ALBUMIN, 3.0, "g/dL", ago(9)))
    assert "(measured)" in f.card_for(cards, RULE)["summary"]


def test_dmab_hypocalcemia_lab_corrected():
    """DMAB-HYPOCALCEMIA: a lab-reported corrected calcium (29265-6, mmol/L) is judged as a total."""
    cards = sign(ca(9.0, days=3), f.observation(CA_CORRECTED, 2.05, "mmol/L", ago(3)))
    assert "(lab-corrected)" in f.card_for(cards, RULE)["summary"]


@pytest.mark.parametrize("comparator, value, fires", [("<", 7.0, True), (">", 8.0, False), ("<", 8.6, False)])
def test_dmab_hypocalcemia_comparators(comparator, value, fires):
    """DMAB-HYPOCALCEMIA: '<7.0' is low; '>8.0' proves nothing; '<8.6' is not provably below 8.5."""
    cards = sign(ca(value, comparator=comparator))
    assert (RULE in ids(cards)) is fires
    if fires:
        assert f.card_for(cards, RULE)["summary"].startswith("Calcium <7.0 mg/dL")


@pytest.mark.parametrize("status", ["entered-in-error", "cancelled", "registered"])
def test_dmab_hypocalcemia_ignored_status(status):
    """DMAB-HYPOCALCEMIA: a low value that is entered-in-error/cancelled does not count."""
    assert RULE not in ids(sign(ca(7.9, status=status)))


def test_dmab_hypocalcemia_window_and_latest_wins():
    """DMAB-HYPOCALCEMIA: 30-day window inclusive; a later normal value wins over an earlier low one."""
    assert RULE in ids(sign(ca(8.0, days=30)))
    assert RULE not in ids(sign(ca(8.0, days=31)))                     # stale → AR-CALCIUM-NOT-CHECKED
    assert RULE not in ids(sign(ca(8.0, days=10), ca(9.1, days=2)))
    assert RULE in ids(sign(ca(9.1, days=10), ca(8.0, days=2)))
    assert RULE in ids(sign(ca(8.0, days=40), thresholds=Thresholds(calcium_lookback_days=45)))


def test_dmab_hypocalcemia_missing_or_unusable_is_not_low():
    """DMAB-HYPOCALCEMIA: no calcium, or an unknown unit, is never 'low' (missing is not normal)."""
    assert RULE not in ids(sign())
    assert RULE not in ids(sign(ca(2.0, "mg%")))
    assert RULE not in ids(sign(f.observation(f.CALCIUM_SERUM, 7.0, None, ago(2))))


# ---- hooks -------------------------------------------------------------------------------------

def test_dmab_hypocalcemia_order_select_uses_selections():
    """DMAB-HYPOCALCEMIA: on order-select only selected denosumab drafts trigger."""
    d1 = f.draft(f.DMAB60)
    statin = f.draft("617311", text="atorvastatin 40 mg")
    assert RULE not in ids(sign(ca(8.0), drafts=[d1, statin], hook="order-select",
                                selections=[f"MedicationRequest/{statin['id']}"]))
    card = f.card_for(sign(ca(8.0), drafts=[d1, statin], hook="order-select",
                           selections=[f"MedicationRequest/{d1['id']}"]), RULE)
    assert card["indicator"] == "critical"


def test_dmab_hypocalcemia_not_for_bisphosphonate_draft():
    """DMAB-HYPOCALCEMIA: a bisphosphonate draft is BP-HYPOCALCEMIA's business."""
    assert RULE not in ids(sign(ca(8.0), drafts=[f.draft(f.ZOL5)]))


def test_dmab_hypocalcemia_two_drafts_one_card():
    """DMAB-HYPOCALCEMIA: one card naming both denosumab drafts."""
    cards = sign(ca(8.0), drafts=[f.draft(f.DMAB60), f.draft(None, text="Jubbonti 60 mg/mL")])
    assert ids(cards).count(RULE) == 1
    detail = f.card_for(cards, RULE)["detail"]
    assert "Jubbonti" in detail and "identified by name, not code" in detail


@pytest.mark.parametrize("name, record", DOSE_RECORDS)
def test_dmab_hypocalcemia_patient_view_each_record_type(name, record):
    """DMAB-HYPOCALCEMIA: patient-view after a 60 mg dose of any record type; warning when not severe."""
    cards = pv([record(f.DMAB60, ago(60)), ca(8.2)])
    card = f.card_for(cards, RULE)
    assert card is not None, name
    assert card["indicator"] == "warning"
    assert card["summary"] == (f"Calcium 8.2 mg/dL (measured) on {ago(3).isoformat()}, denosumab given "
                               f"{ago(60).isoformat()}: correct hypocalcemia")


@pytest.mark.parametrize("obs", [
    lambda: ca(7.4),
    lambda: f.observation(f.CALCIUM_IONIZED, 0.99, "mmol/L", ago(1)),
    lambda: ca(1.80, "mmol/L"),                   # 7.2 mg/dL
])
def test_dmab_hypocalcemia_patient_view_severe_is_critical(obs):
    """DMAB-HYPOCALCEMIA: patient-view critical when severe (< 7.5 mg/dL or ionized < 1.00 mmol/L)."""
    card = f.card_for(pv([f.administration(f.DMAB60, ago(30)), obs()]), RULE)
    assert card["indicator"] == "critical"


def test_dmab_hypocalcemia_patient_view_boundary_severe():
    """DMAB-HYPOCALCEMIA: 7.5 mg/dL is low but not severe → warning."""
    assert f.card_for(pv([f.administration(f.DMAB60, ago(30)), ca(7.5)]), RULE)["indicator"] == "warning"


def test_dmab_hypocalcemia_patient_view_60mg_six_months():
    """DMAB-HYPOCALCEMIA: patient-view: a 60 mg dose within 6 calendar months (inclusive)."""
    six = add_months(TODAY, -6)
    assert RULE in ids(pv([f.administration(f.DMAB60, six), ca(8.0)]))
    assert RULE not in ids(pv([f.administration(f.DMAB60, six - timedelta(days=1)), ca(8.0)]))


@pytest.mark.parametrize("code, dose", [(f.DMAB120, None), (f.DMAB_IN, None)])
def test_dmab_hypocalcemia_patient_view_120mg_or_unknown_eight_weeks(code, dose):
    """DMAB-HYPOCALCEMIA: patient-view: a 120 mg or unknown-strength dose within 8 weeks (56 days)."""
    assert RULE in ids(pv([f.administration(code, ago(56), dose_mg=dose), ca(8.0)]))
    assert RULE not in ids(pv([f.administration(code, ago(57), dose_mg=dose), ca(8.0)]))


def test_dmab_hypocalcemia_patient_view_needs_denosumab():
    """DMAB-HYPOCALCEMIA: patient-view without denosumab, or with a void dose, gives no card."""
    assert RULE not in ids(pv([ca(7.0)]))
    assert RULE not in ids(pv([f.administration(f.DMAB60, ago(30), status="entered-in-error"), ca(7.0)]))
    assert RULE not in ids(pv([f.administration(f.ZOL5, ago(30)), ca(7.0)]))


def test_dmab_hypocalcemia_risk_factors_in_detail():
    """DMAB-HYPOCALCEMIA: the detail names advanced CKD and calcimimetics when present."""
    cards = sign(ca(8.0), f.observation(f.EGFR, 22, EGFR_UNIT, ago(1)), f.request("432402", ago(30)),
                 f.condition("N18.5", ICD10))
    detail = f.card_for(cards, RULE)["detail"]
    assert "advanced CKD: eGFR 22" in detail and "calcimimetic" in detail and "severe kidney disease" in detail


def test_dmab_hypocalcemia_runs_when_medications_unavailable_on_order_hooks():
    """DMAB-HYPOCALCEMIA: needs only Observation: a missing medication history does not stop it on order-sign."""
    cards = sign(ca(8.0), unavailable={"MedicationDispense": "timeout", "MedicationStatement": "timeout"})
    assert RULE in ids(cards)
    assert RULE not in ids(sign(ca(8.0), unavailable={"Observation": "timeout"}))


# ---- A39: the latest calcium date decides, usable or not ----------------------------------------

def _no_value(days: int):
    obs = ca(None, unit=None, days=days)
    obs["dataAbsentReason"] = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/data-absent-reason",
                                           "code": "error", "display": "Error"}]}
    return obs


@pytest.mark.parametrize("latest", [lambda: _no_value(1), lambda: ca(7.0, unit="mmol", days=1),
                                    lambda: ca(None, unit=None, days=1, value_string="clotted")])
def test_a39_unusable_latest_calcium_hides_nothing_and_judges_nothing_older(latest) -> None:
    """Order hooks: AR-CALCIUM-NOT-CHECKED (warning: the earlier 7.2 makes the patient
    hypocalcemia-prone, D9), naming the low value; never DMAB-HYPOCALCEMIA on the older 7.2.
    Patient-view has no "not checked" rule: no card."""
    from tests.rules._helpers import UNMERGED
    cards = sign(latest(), ca(7.2, days=12), thresholds=UNMERGED)   # the member card itself (A12)
    assert RULE not in ids(cards) and "AR-CALCIUM-NOT-CHECKED" in ids(cards)
    ar = f.card_for(cards, "AR-CALCIUM-NOT-CHECKED")
    assert ar["indicator"] == "warning" and "was low" in ar["detail"].split("\n")[0]
    assert ids(pv([f.administration(f.DMAB60, ago(30)), latest(), ca(7.2, days=12)])) == []


def test_a39_latest_usable_calcium_still_decides() -> None:
    assert RULE in ids(sign(ca(7.9, days=1), _no_value(6)))
    assert RULE not in ids(sign(ca(9.1, days=1), ca(7.2, days=6)))   # a later normal value wins
    assert RULE in ids(sign(_no_value(1), ca(7.9, days=1), ca(9.5, days=8)))   # same date: usable decides


def test_dmab_hypocalcemia_patient_view_windows_from_thresholds():
    """D10 ``dmab_pv_calcium_window_months_60mg`` / ``dmab_pv_calcium_window_weeks_120mg``."""
    t = Thresholds(dmab_pv_calcium_window_months_60mg=3, dmab_pv_calcium_window_weeks_120mg=4)
    three = add_months(TODAY, -3)
    assert RULE in ids(pv([f.administration(f.DMAB60, three), ca(8.0)], thresholds=t))
    assert RULE not in ids(pv([f.administration(f.DMAB60, three - timedelta(days=1)), ca(8.0)], thresholds=t))
    assert RULE in ids(pv([f.administration(f.DMAB120, ago(28)), ca(8.0)], thresholds=t))
    assert RULE not in ids(pv([f.administration(f.DMAB120, ago(29)), ca(8.0)], thresholds=t))
