"""DMAB-OVERDUE-TRANSITION (RULES.md §3): 60 mg last dose L, add_months(L,7) < today ≤ add_months(L,24),
or a deliberate stop from add_months(L,6) − 14 days; silenced by a follow-on antiresorptive or a
planned follow-on order; calendar-month arithmetic (D1)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from cards.thresholds import Thresholds
from tests import factory as f
from tests.rules._dmab_dosing_helpers import (DOSE_RECORDS, EGFR_UNIT, ICD10, codes_of, ids,
                                              normal_labs, override_codes, pv)

RULE = "DMAB-OVERDUE-TRANSITION"
DUE = "DMAB-DOSE-DUE"


def _chart(last: date, today: date, *extra, record=None):
    dose = record(f.DMAB60, last) if record else f.administration(f.DMAB60, last)
    return pv([dose, *normal_labs(today), *extra], today)


# ---- calendar borderlines ------------------------------------------------------------------

@pytest.mark.parametrize("today, fires", [
    (date(2026, 10, 30), False),   # 7 months − 1 day
    (date(2026, 10, 31), False),   # exactly 7 months: not "more than"
    (date(2026, 11, 1), True),     # 7 months + 1 day
    (date(2028, 3, 31), True),     # exactly 24 months: still within the horizon
    (date(2028, 4, 1), False),     # 24 months + 1 day
])
def test_dmab_overdue_transition_borderlines_last_dose_march_31(today, fires):
    """DMAB-OVERDUE-TRANSITION: L = 2026-03-31; add_months(L,7) = 2026-10-31, add_months(L,24) = 2028-03-31."""
    cards = _chart(date(2026, 3, 31), today)
    assert (RULE in ids(cards)) is fires


def test_dmab_overdue_transition_not_30_day_months():
    """DMAB-OVERDUE-TRANSITION: 7 × 30 days (or 30.44) after 2026-03-31 is 2026-10-27/30, still not overdue."""
    for today in (date(2026, 10, 28), date(2026, 10, 30)):
        assert RULE not in ids(_chart(date(2026, 3, 31), today))
        assert DUE in ids(_chart(date(2026, 3, 31), today))


@pytest.mark.parametrize("last, overdue_from", [
    (date(2025, 8, 31), date(2026, 4, 1)),    # Aug 31 + 7 months = Mar 31
    (date(2026, 7, 31), date(2027, 3, 1)),    # Jul 31 + 7 months = Feb 28 (2027)
    (date(2027, 7, 31), date(2028, 3, 1)),    # Jul 31 + 7 months = Feb 29 (leap year)
    (date(2026, 1, 31), date(2026, 9, 1)),    # Jan 31 + 7 months = Aug 31
])
def test_dmab_overdue_transition_month_end_clamping(last, overdue_from):
    """DMAB-OVERDUE-TRANSITION: add_months clamps the day to the target month."""
    assert RULE not in ids(_chart(last, overdue_from - timedelta(days=1)))
    assert RULE in ids(_chart(last, overdue_from))


def test_dmab_overdue_transition_exclusive_with_dose_due_every_day():
    """DMAB-OVERDUE-TRANSITION vs DMAB-DOSE-DUE (§7): never both, and they hand over without a gap."""
    last = date(2025, 8, 31)
    day = date(2026, 2, 1)
    seen = []
    while day <= date(2026, 5, 1):
        got = ids(_chart(last, day))
        assert not (RULE in got and DUE in got), day
        seen.append((day, RULE in got, DUE in got))
        day += timedelta(days=1)
    due_days = [d for d, _, due in seen if due]
    over_days = [d for d, over, _ in seen if over]
    assert due_days[0] == date(2026, 2, 14) and due_days[-1] == date(2026, 3, 31)
    assert over_days[0] == date(2026, 4, 1)


# ---- every record type is a dose (D4) ------------------------------------------------------

@pytest.mark.parametrize("name, record", DOSE_RECORDS)
def test_dmab_overdue_transition_fires_with_each_record_type(name, record):
    """DMAB-OVERDUE-TRANSITION: the last dose may come from any record type."""
    cards = _chart(date(2026, 3, 31), date(2026, 11, 23), record=record)
    card = f.card_for(cards, RULE)
    assert card is not None, name
    assert "2026-03-31" in card["summary"] and "7 months ago" in card["summary"]
    if name == "completed-request":
        assert "low confidence" in card["detail"] and "completed order only" in card["detail"]
    else:
        assert "low confidence" not in card["detail"]


@pytest.mark.parametrize("status", ["entered-in-error", "not-done", "stopped", "on-hold"])
def test_dmab_overdue_transition_ignored_administration_is_no_dose(status):
    """DMAB-OVERDUE-TRANSITION: an administration that does not count (D2) is not a last dose."""
    cards = pv([f.administration(f.DMAB60, "2026-03-31", status=status), *normal_labs()])
    assert RULE not in ids(cards)


def test_dmab_overdue_transition_uses_latest_dose_and_dedupes():
    """DMAB-OVERDUE-TRANSITION: order + administration + dispense of one injection are one dose; the latest wins."""
    cards = pv([f.request(f.DMAB60, "2025-09-28", status="completed"),
                f.administration(f.DMAB60, "2025-09-30"), f.dispense(f.DMAB60, "2025-10-01"),
                f.administration(f.DMAB60, "2026-03-31"), *normal_labs()])
    card = f.card_for(cards, RULE)
    assert card and "2026-03-31" in card["summary"]
    # a later dose 2026-06-01 means it is not overdue yet
    cards = pv([f.administration(f.DMAB60, "2026-03-31"), f.dispense(f.DMAB60, "2026-06-01"), *normal_labs()])
    assert RULE not in ids(cards)


# ---- regimen (D3) --------------------------------------------------------------------------

def test_dmab_overdue_transition_regimen_unknown_does_not_fire():
    """DMAB-OVERDUE-TRANSITION: ingredient code without a dose → regimen unknown → no interval rule."""
    cards = pv([f.administration(f.DMAB_IN, "2026-03-31"), *normal_labs()])
    assert RULE not in ids(cards) and DUE not in ids(cards)


def test_dmab_overdue_transition_regimen_from_dose_or_other_record():
    """DMAB-OVERDUE-TRANSITION: ingredient + 60 mg dose, or the 60 mg order of the same injection, gives 60 mg."""
    assert RULE in ids(pv([f.administration(f.DMAB_IN, "2026-03-31", dose_mg=60), *normal_labs()]))
    cards = pv([f.administration(f.DMAB_IN, "2026-03-31"),
                f.request(f.DMAB60, "2026-03-30", status="completed"), *normal_labs()])
    card = f.card_for(cards, RULE)
    assert card and "administration record" in card["detail"]   # v2 (A29): in words, no FHIR type


def test_dmab_overdue_transition_text_only_drug_says_so():
    """DMAB-OVERDUE-TRANSITION: a text-matched denosumab (no code) is used and the detail says so."""
    cards = pv([f.administration(None, "2026-03-31", text="Prolia 60 mg/mL syringe"), *normal_labs()])
    card = f.card_for(cards, RULE)
    assert card and "identified by name, not code" in card["detail"]


def test_dmab_overdue_transition_not_for_120mg_history():
    """DMAB-OVERDUE-TRANSITION: 120 mg history belongs to DMAB-ONCOLOGY-INTERVAL."""
    cards = pv([f.administration(f.DMAB120, "2026-03-31"), *normal_labs()])
    assert RULE not in ids(cards)


# ---- follow-on therapy (D4) ----------------------------------------------------------------

@pytest.mark.parametrize("followon", [
    lambda: f.administration(f.ZOL5, "2026-10-05"),
    lambda: f.dispense(f.ALENDRONATE, "2026-10-05"),
    lambda: f.statement(f.RISEDRONATE, "2026-10-05", status="active"),
    lambda: f.request(f.ZOL5, "2026-10-05", status="completed"),
    lambda: f.request(f.ZOL5, "2026-11-20", status="active"),          # planned follow-on order
    lambda: f.request(f.DMAB60, "2026-11-20", status="active"),        # denosumab re-ordered
    lambda: f.administration(None, "2026-10-05", text="Reclast 5 mg IV"),
])
def test_dmab_overdue_transition_silenced_by_follow_on(followon):
    """DMAB-OVERDUE-TRANSITION: a bisphosphonate or a planned order after L cancels the card."""
    assert RULE not in ids(_chart(date(2026, 3, 31), date(2026, 11, 23), followon()))


@pytest.mark.parametrize("not_followon", [
    lambda: f.administration(f.ZOL5, "2026-10-05", status="entered-in-error"),
    lambda: f.administration(f.ZOL5, "2026-10-05", status="not-done"),
    lambda: f.request(f.ZOL5, "2026-10-05", status="cancelled"),
    lambda: f.request(f.ZOL5, "2026-10-05", status="entered-in-error"),
    lambda: f.dispense(f.ALENDRONATE, "2026-10-05", status="cancelled"),
    lambda: f.statement(f.ALENDRONATE, "2026-10-05", status="entered-in-error"),
    lambda: f.statement(f.ALENDRONATE, "2026-10-05", status="not-taken"),
    lambda: f.administration(f.ZOL5, "2026-02-01"),                    # before L
    lambda: f.request(f.DMAB60, "2026-03-01", status="active"),        # standing order before L
    lambda: f.statement(f.ALENDRONATE, "2026-10-05", status="stopped"),
])
def test_dmab_overdue_transition_not_silenced_by_void_or_earlier_records(not_followon):
    """DMAB-OVERDUE-TRANSITION: entered-in-error/cancelled/not-done bisphosphonates and earlier records do not count."""
    assert RULE in ids(_chart(date(2026, 3, 31), date(2026, 11, 23), not_followon()))


# ---- deliberate stop -----------------------------------------------------------------------

@pytest.mark.parametrize("stop", [
    lambda: f.request(f.DMAB60, "2026-06-15", status="stopped", status_reason="Discontinued by patient"),
    lambda: f.statement(f.DMAB60, "2026-06-15", status="stopped"),
    lambda: f.request(f.DMAB60, "2026-06-01", status="completed", status_reason="Final dose; discontinue denosumab"),
])
def test_dmab_overdue_transition_deliberate_stop_branch(stop):
    """DMAB-OVERDUE-TRANSITION: after a deliberate stop it fires from add_months(L,6) − 14 days,
    with the stop summary and zoledronic acid on T = add_months(L,6) (in the future)."""
    last = date(2026, 6, 1)            # D = 2026-12-01; D − 14 = 2026-11-17
    cards = _chart(last, date(2026, 11, 17), stop())
    card = f.card_for(cards, RULE)
    assert card is not None
    assert card["summary"].startswith("Denosumab stopped (last dose 2026-06-01)")
    assert "2026-12-01" in card["summary"]
    zol = [s for s in card["suggestions"] if "zoledronic" in s["label"]][0]
    med = zol["actions"][0]["resource"]
    assert med["dosageInstruction"][0]["timing"]["event"] == ["2026-12-01"]
    assert DUE not in ids(cards)
    assert RULE not in ids(_chart(last, date(2026, 11, 16), stop()))


def test_dmab_overdue_transition_stop_before_last_dose_does_not_count():
    """DMAB-OVERDUE-TRANSITION: a stopped order dated before the last dose is not a stop after it."""
    cards = _chart(date(2026, 6, 1), date(2026, 11, 17),
                   f.request(f.DMAB60, "2026-01-15", status="stopped"))
    assert RULE not in ids(cards) and DUE in ids(cards)


def test_dmab_overdue_transition_stop_beyond_24_months_silent():
    """DMAB-OVERDUE-TRANSITION: the deliberate-stop branch also ends at 24 months."""
    stop = f.request(f.DMAB60, "2024-06-15", status="stopped")
    assert RULE in ids(_chart(date(2024, 6, 1), date(2026, 6, 1), stop))
    assert RULE not in ids(_chart(date(2024, 6, 1), date(2026, 6, 2), stop))


# ---- suggestions, eGFR ----------------------------------------------------------------------

def test_dmab_overdue_transition_card_shape():
    """DMAB-OVERDUE-TRANSITION: warning, at-most-one, denosumab 993452 and zoledronic acid 705824 (T = today when past)."""
    card = f.card_for(_chart(date(2026, 3, 31), date(2026, 11, 23)), RULE)
    assert card["indicator"] == "warning"
    assert card["selectionBehavior"] == "at-most-one"
    assert card["summary"] == ("Denosumab overdue: last 60 mg dose 2026-03-31 (7 months ago), no follow-on "
                               "therapy. Give now or start zoledronic acid")
    assert card["source"]["topic"]["code"] == RULE
    assert codes_of(card) == ["993452", "705824", "17861-6", "2160-0"]
    zol = card["suggestions"][1]["actions"][0]["resource"]
    assert zol["dosageInstruction"][0]["timing"]["event"] == ["2026-11-23"]
    assert zol["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] == 5
    assert zol["status"] == "draft" and zol["intent"] == "order" and zol["subject"]["reference"] == "Patient/pat-1"
    assert override_codes(card) == ["dose-given-elsewhere", "transition-planned", "specialist-decision",
                                    "patient-declined", "end-of-life-care"]
    assert len(card["links"]) == 1 and card["links"][0]["url"].startswith("https://")
    assert "eGFR 72" in card["detail"] and "calcium 9.4" in card["detail"]


@pytest.mark.parametrize("egfr, kwargs, suggested", [
    (34, {}, False), (35, {}, True), (36, {}, True),
    (35, {"comparator": "<"}, False), (30, {"comparator": ">"}, True),
])
def test_dmab_overdue_transition_zoledronic_acid_omitted_below_35(egfr, kwargs, suggested):
    """DMAB-OVERDUE-TRANSITION: latest eGFR < 35 → zoledronic acid omitted and the detail says why."""
    cards = pv([f.administration(f.DMAB60, "2026-03-31"),
                f.observation(f.CALCIUM_SERUM, 9.4, "mg/dL", "2026-11-10"),
                f.observation(f.EGFR, egfr, EGFR_UNIT, "2026-11-10", **kwargs)])
    card = f.card_for(cards, RULE)
    assert card is not None
    assert ("705824" in codes_of(card)) is suggested
    assert ("not suggested" in card["detail"]) is (not suggested)
    if not suggested:
        assert "zoledronic acid" not in card["summary"].split("Give now")[1].replace("no zoledronic acid", "")


def test_dmab_overdue_transition_latest_egfr_wins_and_dialysis_blocks():
    """DMAB-OVERDUE-TRANSITION: the latest eGFR is used; an active dialysis record also blocks zoledronic acid."""
    base = [f.administration(f.DMAB60, "2026-03-31"), f.observation(f.CALCIUM_SERUM, 9.4, "mg/dL", "2026-11-10")]
    later_ok = pv([*base, f.observation(f.EGFR, 30, EGFR_UNIT, "2026-05-01"),
                   f.observation(f.EGFR, 48, EGFR_UNIT, "2026-11-01")])
    assert "705824" in codes_of(f.card_for(later_ok, RULE))
    dialysis = pv([*base, f.observation(f.EGFR, 48, EGFR_UNIT, "2026-11-01"),
                   f.condition("Z99.2", ICD10)])
    card = f.card_for(dialysis, RULE)
    assert "705824" not in codes_of(card) and "severe kidney disease" in card["detail"]


def test_dmab_overdue_transition_missing_labs_are_named():
    """DMAB-OVERDUE-TRANSITION: no eGFR/calcium → still fires (suggest checking), the detail names the missing data."""
    card = f.card_for(pv([f.administration(f.DMAB60, "2026-03-31")]), RULE)
    assert card and "705824" in codes_of(card)
    assert "none in the last 365 days" in card["detail"] and "none in the last 30 days" in card["detail"]


def test_dmab_overdue_transition_threshold_from_configuration():
    """DMAB-OVERDUE-TRANSITION: dmab60_overdue_months comes from the thresholds."""
    th = Thresholds(dmab60_overdue_months=8)
    assert RULE not in ids(pv([f.administration(f.DMAB60, "2026-03-31"), *normal_labs()], thresholds=th))


# ---- hooks -----------------------------------------------------------------------------------

@pytest.mark.parametrize("hook", ["order-select", "order-sign"])
def test_dmab_overdue_transition_patient_view_only(hook):
    """DMAB-OVERDUE-TRANSITION: order hooks never emit it (§7 draft-independent rules)."""
    cards = f.evaluate_rules([f.patient(), f.administration(f.DMAB60, "2026-03-31"), *normal_labs()],
                             hook=hook, drafts=[f.draft(f.DMAB60)])
    assert RULE not in ids(cards) and DUE not in ids(cards)


def test_dmab_overdue_transition_says_when_labs_and_problems_unavailable():
    """DMAB-OVERDUE-TRANSITION: with laboratory results and problem list unavailable the detail says so."""
    cards = f.evaluate_rules([f.patient(), f.administration(f.DMAB60, "2026-03-31")], hook="patient-view",
                             unavailable={"Observation": "timeout", "Condition": "timeout"})
    detail = f.card_for(cards, RULE)["detail"]
    assert "Laboratory results could not be obtained" in detail
    assert "Could not be checked: laboratory results, the problem list" in detail
