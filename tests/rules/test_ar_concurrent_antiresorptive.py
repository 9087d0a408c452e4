"""AR-CONCURRENT-ANTIRESORPTIVE (RULES.md §5): (a) denosumab draft while a bisphosphonate is active
therapy (D4: active order/statement, dispense in supply, IV dose within its interval); (b)
bisphosphonate draft while today < add_months(L, 6) − 28 days after the last denosumab dose L."""

from __future__ import annotations

from datetime import timedelta

import pytest

from cards.thresholds import Thresholds
from cds_service.chart import add_months
from tests.factory import (ALENDRONATE, DMAB60, DMAB120, IBANDRONATE_ORAL, RISEDRONATE, ZOL4, ZOL5,
                           administration, dispense, draft, patient, request, statement)
from tests.rules._ar_helpers import TODAY, ago, engine_ids, override_codes, run

RID = "AR-CONCURRENT-ANTIRESORPTIVE"
IBANDRONATE_IV = "904952"
PAMIDRONATE = "1737449"


# ---- (a) denosumab while a bisphosphonate is active ----------------------------------------------

@pytest.mark.parametrize("record, agent", [
    (request(ALENDRONATE, ago(200)), "Alendronate"),
    (statement(RISEDRONATE, ago(400)), "Risedronate"),
    (dispense(IBANDRONATE_ORAL, ago(20)), "Ibandronate"),        # default 30-day supply
    (dispense(ALENDRONATE, ago(80), days_supply=84), "Alendronate"),
])
def test_ar_concurrent_antiresorptive_a_active_oral_bisphosphonate(record, agent):
    card = run(RID, [patient(), record], drafts=[draft(DMAB60)])
    assert card is not None and card["indicator"] == "info"
    assert card["summary"] == (f"{agent} is still active: stop it when starting denosumab "
                               "(no benefit from combining)")
    assert override_codes(card) == ["switch-in-progress", "specialist-combination"]
    assert card["source"]["topic"]["display"] == "Overlapping antiresorptives"
    assert card["links"][0]["url"] == "https://doi.org/10.1210/clinem/dgaa756"


@pytest.mark.parametrize("record", [
    request(ALENDRONATE, ago(200), status="stopped"),
    request(ALENDRONATE, ago(200), status="completed"),
    request(ALENDRONATE, ago(200), status="cancelled"),
    request(ALENDRONATE, ago(200), status="entered-in-error"),
    statement(RISEDRONATE, ago(400), status="stopped"),
    statement(RISEDRONATE, ago(400), status="entered-in-error"),
    dispense(IBANDRONATE_ORAL, ago(31)),                          # supply ran out
    dispense(ALENDRONATE, ago(85), days_supply=84),
    dispense(ALENDRONATE, ago(5), status="cancelled"),
])
def test_ar_concurrent_antiresorptive_a_not_active(record):
    assert run(RID, [patient(), record], drafts=[draft(DMAB60)]) is None


@pytest.mark.parametrize("code, last_active, first_inactive", [
    (ZOL5, ago(months=12), ago(1, months=12)),                    # 12 months
    (ZOL4, ago(28), ago(29)),                                       # 4 weeks
    (IBANDRONATE_IV, ago(months=3), ago(1, months=3)),             # 3 months
    (PAMIDRONATE, ago(28), ago(29)),                                # pamidronate_active_days
])
def test_ar_concurrent_antiresorptive_a_iv_dose_within_interval(code, last_active, first_inactive):
    card = run(RID, [patient(), administration(code, last_active)], drafts=[draft(DMAB60)])
    assert card is not None and f"IV dose {last_active.isoformat()}" in card["detail"]
    assert run(RID, [patient(), administration(code, first_inactive)], drafts=[draft(DMAB60)]) is None


def test_ar_concurrent_antiresorptive_a_iv_dose_recorded_only_as_completed_order_says_so():
    card = run(RID, [patient(), request(ZOL5, ago(100), status="completed")], drafts=[draft(DMAB60)])
    assert card is not None and "lowest confidence" in card["detail"]


def test_ar_concurrent_antiresorptive_a_entered_in_error_iv_dose_ignored():
    res = [patient(), administration(ZOL5, ago(100), status="entered-in-error")]
    assert run(RID, res, drafts=[draft(DMAB60)]) is None


def test_ar_concurrent_antiresorptive_a_two_agents_plural():
    res = [patient(), request(ALENDRONATE, ago(200)), administration(ZOL5, ago(100))]
    card = run(RID, res, drafts=[draft(DMAB120)])
    assert card["summary"].startswith("Alendronate and zoledronic acid are still active: stop them")


def test_ar_concurrent_antiresorptive_a_only_for_denosumab_drafts():
    """A bisphosphonate draft with another bisphosphonate active is BP-DUPLICATE's business."""
    assert run(RID, [patient(), request(ALENDRONATE, ago(200))], drafts=[draft(ZOL5)]) is None


# ---- (b) bisphosphonate too early after denosumab ------------------------------------------------

def boundary(last: object) -> object:
    return add_months(last, 6) - timedelta(days=28)  # type: ignore[arg-type]


@pytest.mark.parametrize("code", [ZOL5, ALENDRONATE])
def test_ar_concurrent_antiresorptive_b_too_early(code):
    last = ago(months=3)
    card = run(RID, [patient(), administration(DMAB60, last)], drafts=[draft(code)])
    assert card is not None and card["indicator"] == "info"
    assert card["summary"] == (f"Denosumab given {last.isoformat()}: a bisphosphonate now is early; "
                               f"transition is planned for about {add_months(last, 6).isoformat()}")


def test_ar_concurrent_antiresorptive_b_boundary_calendar_months():
    """Fires while today < add_months(L, 6) − 28 days; silent from that day on."""
    # L such that today == boundary - 1 day (fires), == boundary (silent), == boundary + 1 (silent)
    def last_for(offset: int):
        l = add_months(TODAY, -6)
        while boundary(l) != TODAY + timedelta(days=offset):
            l += timedelta(days=1 if boundary(l) < TODAY + timedelta(days=offset) else -1)
        return l
    assert run(RID, [patient(), administration(DMAB60, last_for(1))], drafts=[draft(ZOL5)]) is not None
    assert run(RID, [patient(), administration(DMAB60, last_for(0))], drafts=[draft(ZOL5)]) is None
    assert run(RID, [patient(), administration(DMAB60, last_for(-1))], drafts=[draft(ZOL5)]) is None


def test_ar_concurrent_antiresorptive_b_transition_on_time_is_silent():
    assert run(RID, [patient(), administration(DMAB60, ago(months=6))], drafts=[draft(ZOL5)]) is None
    assert run(RID, [patient(), administration(DMAB60, ago(months=9))], drafts=[draft(ALENDRONATE)]) is None


def test_ar_concurrent_antiresorptive_b_uses_thresholds():
    last = ago(3, months=5)   # 2026-06-20: + 6 months − 28 days = 2026-11-22 ≤ today → silent
    assert run(RID, [patient(), administration(DMAB60, last)], drafts=[draft(ZOL5)]) is None
    card = run(RID, [patient(), administration(DMAB60, last)], drafts=[draft(ZOL5)],
               thresholds=Thresholds(dmab60_early_margin_days=0))
    assert card is not None


def test_ar_concurrent_antiresorptive_b_dose_sources_and_statuses():
    last = ago(months=2)
    assert run(RID, [patient(), dispense(DMAB60, last)], drafts=[draft(ZOL5)]) is not None
    low = run(RID, [patient(), request(DMAB60, last, status="completed")], drafts=[draft(ZOL5)])
    assert low is not None and "lowest confidence" in low["detail"]
    for rec in (administration(DMAB60, last, status="not-done"),
                administration(DMAB60, last, status="entered-in-error"),
                request(DMAB60, last, status="cancelled")):
        assert run(RID, [patient(), rec], drafts=[draft(ZOL5)]) is None


def test_ar_concurrent_antiresorptive_b_latest_dose_counts():
    res = [patient(), administration(DMAB60, ago(months=12)), administration(DMAB60, ago(months=2))]
    card = run(RID, res, drafts=[draft(ZOL5)])
    assert ago(months=2).isoformat() in card["summary"]


def test_ar_concurrent_antiresorptive_both_branches_one_card():
    res = [patient(), administration(DMAB60, ago(months=2)), request(ALENDRONATE, ago(30))]
    card = run(RID, res, drafts=[draft(DMAB60), draft(ZOL5)])
    assert card["summary"].startswith("Alendronate is still active")
    assert "Also:" in card["detail"] and ago(months=2).isoformat() in card["detail"]
    assert engine_ids(res, drafts=[draft(DMAB60), draft(ZOL5)]).count(RID) == 1


# ---- hooks ---------------------------------------------------------------------------------------

def test_ar_concurrent_antiresorptive_order_select_selected_vs_not_selected():
    dmab, zol = draft(DMAB60), draft(ZOL5)
    res = [patient(), request(ALENDRONATE, ago(30)), administration(DMAB60, ago(months=2))]
    assert run(RID, res, hook="order-select", drafts=[dmab, zol], selections=[]) is None
    only_zol = run(RID, res, hook="order-select", drafts=[dmab, zol],
                   selections=[f"MedicationRequest/{zol['id']}"])
    assert only_zol["summary"].startswith("Denosumab given")
    only_dmab = run(RID, res, hook="order-select", drafts=[dmab, zol],
                    selections=[f"MedicationRequest/{dmab['id']}"])
    assert only_dmab["summary"].startswith("Alendronate is still active") and "Also:" not in only_dmab["detail"]


@pytest.mark.parametrize("hook", ["order-select", "order-sign"])
def test_ar_concurrent_antiresorptive_on_order_hooks_never_patient_view(hook):
    res = [patient(), request(ALENDRONATE, ago(30)), administration(DMAB60, ago(months=2))]
    assert RID in engine_ids(res, hook=hook, drafts=[draft(DMAB60)])
    assert RID not in engine_ids(res, hook="patient-view")
    assert run(RID, res, hook="patient-view") is None


# ---- A7: (b) only after a 60 mg dose ------------------------------------------------------------

def test_a7_b_not_after_a_120mg_dose():
    """After Xgeva a switch to a bisphosphonate is an oncology decision: (b) does not apply."""
    last = ago(28)
    assert run(RID, [patient(), administration(DMAB120, last)], drafts=[draft(ZOL4)]) is None
    assert run(RID, [patient(), administration(DMAB120, last)], drafts=[draft(ALENDRONATE)]) is None
    # the latest dose decides: 60 mg after an older 120 mg → (b) applies
    res = [patient(), administration(DMAB120, ago(months=8)), administration(DMAB60, ago(months=2))]
    assert run(RID, res, drafts=[draft(ZOL5)]) is not None
    res = [patient(), administration(DMAB60, ago(months=8)), administration(DMAB120, ago(months=2))]
    assert run(RID, res, drafts=[draft(ZOL5)]) is None


def test_a7_b_after_a_dose_of_unknown_strength_is_judged_as_60mg():
    """Safe reading: strength not known → the transition timing is still pointed out (info)."""
    from tests.factory import DMAB_IN
    assert run(RID, [patient(), administration(DMAB_IN, ago(months=2))], drafts=[draft(ZOL5)]) is not None


def test_iv_intervals_from_thresholds():
    t = Thresholds(zol4_active_days=14, pamidronate_active_days=21)
    assert run(RID, [patient(), administration(ZOL4, ago(15))], drafts=[draft(DMAB60)], thresholds=t) is None
    assert run(RID, [patient(), administration(ZOL4, ago(14))], drafts=[draft(DMAB60)], thresholds=t) is not None
    assert run(RID, [patient(), administration(PAMIDRONATE, ago(22))], drafts=[draft(DMAB60)], thresholds=t) is None
