"""DMAB-OVERDUE-TRANSITION and DMAB-DOSE-DUE, catalog version 2 (RULES.md D4, §3, §8 A1, A2, A6,
A11): statements are not injection dates when administrations exist; a planned follow-on order
silences only to its planned date + 30 days, then "planned transition not given"; a low calcium
turns the card into "correct calcium first" with a laboratory work-up and no drug."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from cards.thresholds import Thresholds
from tests import factory as f
from tests.rules._dmab_dosing_helpers import EGFR_UNIT, codes_of, ids, normal_labs, override_codes, pv

RULE = "DMAB-OVERDUE-TRANSITION"
DUE = "DMAB-DOSE-DUE"
L = date(2026, 3, 31)          # last 60 mg dose; overdue after 2026-10-31
TODAY = date(2026, 11, 23)


def _cards(*extra, labs=None, last=L, today=TODAY, **kw):
    labs = normal_labs(today) if labs is None else labs
    return pv([f.administration(f.DMAB60, last), *labs, *extra], today, **kw)


def _card(*extra, **kw):
    return f.card_for(_cards(*extra, **kw), RULE)


def _order(code, authored, *, status="active", intent="order", validity=None, events=(), bounds=None,
           validity_end=None):
    body = f.request(code, authored, status=status)
    body["intent"] = intent
    if validity or validity_end:
        period = {}
        if validity:
            period["start"] = f.iso(validity)
        if validity_end:
            period["end"] = f.iso(validity_end)
        body["dispenseRequest"] = {"validityPeriod": period}
    timing = {}
    if events:
        timing["event"] = [f.iso(e) for e in events]
    if bounds:
        timing["repeat"] = {"boundsPeriod": {"start": f.iso(bounds)}}
    if timing:
        body["dosageInstruction"] = [{"timing": timing}]
    return body


# ---- A2: planned follow-on order, grace to P + 30 days -------------------------------------

@pytest.mark.parametrize("planned, fires", [
    (TODAY - timedelta(days=29), False),
    (TODAY - timedelta(days=30), False),   # today = P + 30: still silenced
    (TODAY - timedelta(days=31), True),    # the day after: planned transition not given
])
def test_planned_order_silences_until_planned_date_plus_grace(planned, fires):
    """A2: an active zoledronic acid order (P = authoredOn) silences while today ≤ P + 30 days."""
    card = _card(_order(f.ZOL5, planned))
    assert (card is not None) is fires
    if fires:
        assert card["summary"].startswith(
            f"Planned transition not given: zoledronic acid 5 mg IV planned {planned.isoformat()}, "
            f"last denosumab 60 mg {L.isoformat()} (7 mo ago). Give it or re-plan")
        assert len(card["summary"]) <= 140
        assert codes_of(card)[:2] == ["993452", "705824"]          # suggestions as the overdue variant
        assert card["selectionBehavior"] == "at-most-one"


def test_planned_date_from_validity_period_start_wins_over_authored():
    """A2: P = dispenseRequest.validityPeriod.start (authored 2 months ago, valid from 10 days ago)."""
    order = _order(f.ZOL5, TODAY - timedelta(days=60), validity=TODAY - timedelta(days=10))
    assert _card(order) is None
    late = _order(f.ZOL5, TODAY - timedelta(days=60), validity=TODAY - timedelta(days=31))
    assert "planned " + (TODAY - timedelta(days=31)).isoformat() in _card(late)["summary"]


def test_planned_date_earliest_timing_event_or_bounds_start():
    """A2: without a validity start, the earliest timing.event / boundsPeriod.start is P."""
    authored = TODAY - timedelta(days=90)
    recent = TODAY - timedelta(days=5)
    assert _card(_order(f.ZOL5, authored, events=[recent, TODAY + timedelta(days=30)])) is None
    assert _card(_order(f.ZOL5, authored, bounds=recent)) is None
    # the earliest of the two decides: an event long past with a recent bounds start
    old = TODAY - timedelta(days=45)
    card = _card(_order(f.ZOL5, authored, events=[old], bounds=recent))
    assert card is not None and f"planned {old.isoformat()}" in card["summary"]


def test_on_hold_order_counts_as_planned():
    """A2: an on-hold order is a planned order: it silences within the grace, then variant 2."""
    assert _card(_order(f.ZOL5, TODAY - timedelta(days=10), status="on-hold")) is None
    card = _card(_order(f.ZOL5, TODAY - timedelta(days=40), status="on-hold"))
    assert card["summary"].startswith("Planned transition not given")
    assert "on hold" in card["detail"]


@pytest.mark.parametrize("intent", ["proposal", "reflex-order", "instance-order"])
def test_other_intents_are_not_planned_orders(intent):
    """D4: only intent order / plan / original-order is a planned follow-on order."""
    card = _card(_order(f.ZOL5, TODAY - timedelta(days=5), intent=intent))
    assert card is not None and card["summary"].startswith("Denosumab overdue")


@pytest.mark.parametrize("intent", ["plan", "original-order"])
def test_plan_and_original_order_intents_are_planned(intent):
    assert _card(_order(f.ZOL5, TODAY - timedelta(days=5), intent=intent)) is None


def test_denosumab_reorder_planned_not_given():
    """A2: a denosumab 60 mg re-order never given: {drug} is "denosumab 60 mg"."""
    card = _card(_order(f.DMAB60, date(2026, 9, 1)))
    assert card["summary"].startswith("Planned transition not given: denosumab 60 mg planned 2026-09-01")


def test_order_authored_on_the_last_dose_day_and_given_is_not_planned():
    """A2 "not given": an order authored on L with a dose on L was given; it is not a plan."""
    card = _card(_order(f.DMAB60, L))
    assert card is not None and card["summary"].startswith("Denosumab overdue")


def test_order_authored_before_last_dose_is_not_planned():
    card = _card(_order(f.ZOL5, L - timedelta(days=1)))
    assert card is not None and card["summary"].startswith("Denosumab overdue")


def test_stopped_or_cancelled_orders_are_not_planned():
    for status in ("stopped", "cancelled", "entered-in-error"):
        card = _card(_order(f.ZOL5, TODAY - timedelta(days=5), status=status))
        assert card is not None and card["summary"].startswith("Denosumab overdue"), status


def test_order_without_any_date_silences_only_the_stop_form():
    """D4: no readable planned date: silences only while today ≤ add_months(L, 7)."""
    last = date(2026, 6, 1)
    stop = f.request(f.DMAB60, "2026-06-15", status="stopped", status_reason="Discontinued")
    undated = _order(f.ZOL5, None)
    assert _card(stop, undated, last=last, today=date(2026, 11, 17)) is None      # stop form, before 7 months
    card = _card(undated, last=last, today=date(2027, 1, 2))                      # overdue form
    assert card is not None and card["summary"].startswith("Planned transition not given")
    assert "(no date)" in card["summary"]


def test_grace_is_configurable():
    th = Thresholds(planned_followon_grace_days=60)
    assert _card(_order(f.ZOL5, TODAY - timedelta(days=45)), thresholds=th) is None
    assert _card(_order(f.ZOL5, TODAY - timedelta(days=61)), thresholds=th) is not None


def test_given_planned_order_is_a_follow_on():
    """A zoledronic acid order then given (an administration after L): follow-on, no card."""
    assert _card(_order(f.ZOL5, date(2026, 9, 1)), f.administration(f.ZOL5, "2026-10-01")) is None


def test_dose_due_any_planned_order_silences_without_time_limit():
    """A2: DMAB-DOSE-DUE keeps "no order on file": a planned order long past its date silences."""
    last = date(2026, 5, 20)          # due 2026-11-20, window 2026-11-06 .. 2026-12-20
    assert DUE in ids(_cards(last=last))
    assert DUE not in ids(_cards(_order(f.ZOL5, "2026-06-01"), last=last))


# ---- A6: low calcium first -----------------------------------------------------------------

def _low_calcium(days_ago=5, value=7.9):
    return [f.observation(f.CALCIUM_SERUM, value, "mg/dL", TODAY - timedelta(days=days_ago)),
            f.observation(f.EGFR, 72, EGFR_UNIT, TODAY - timedelta(days=10))]


def test_low_calcium_variant_lab_work_up_no_drug():
    """A6: calcium low within 30 days: "correct calcium first", one suggestion per test, no drug."""
    card = _card(labs=_low_calcium())
    day = (TODAY - timedelta(days=5)).isoformat()
    assert card["summary"] == (f"Denosumab overdue (last dose {L.isoformat()}); calcium 7.9 mg/dL on {day}: "
                               "correct calcium first, then resume or transition")
    assert codes_of(card) == ["17861-6", "1751-7", "62292-8", "19123-9", "2731-8"]
    assert len(card["suggestions"]) == 4
    assert not any(a["resource"]["resourceType"] == "MedicationRequest"
                   for s in card["suggestions"] for a in s["actions"])
    assert card["selectionBehavior"] == "any"
    assert override_codes(card)[0] == "treating-hypocalcemia"
    assert card["indicator"] == "warning"


@pytest.mark.parametrize("days_ago, calcium_variant", [(30, True), (31, False)])
def test_low_calcium_window_30_days(days_ago, calcium_variant):
    """A6: the calcium window is calcium_lookback_days (30), inclusive."""
    card = _card(labs=_low_calcium(days_ago))
    assert ("correct calcium first" in card["summary"]) is calcium_variant


def test_normal_calcium_keeps_overdue_wording():
    card = _card(labs=_low_calcium(value=9.0))
    assert card["summary"].startswith("Denosumab overdue: last 60 mg dose")


def test_low_calcium_takes_precedence_over_planned_not_given_and_stop():
    """A6: the calcium variant comes first, before "planned transition not given" and the stop."""
    card = _card(_order(f.ZOL5, TODAY - timedelta(days=60)), labs=_low_calcium())
    assert "correct calcium first" in card["summary"]
    last = date(2026, 6, 1)
    stop = f.request(f.DMAB60, "2026-06-15", status="stopped", status_reason="Discontinued")
    labs = [f.observation(f.CALCIUM_SERUM, 7.9, "mg/dL", date(2026, 11, 10))]
    card = _card(stop, labs=labs, last=last, today=date(2026, 11, 17))
    assert card["summary"].startswith("Denosumab stopped (last dose 2026-06-01); calcium 7.9 mg/dL")


def test_low_calcium_still_silenced_by_follow_on_and_planned_within_grace():
    """A6 changes the wording only: a follow-on or a planned order within its grace still silences."""
    assert _card(f.administration(f.ZOL5, "2026-10-05"), labs=_low_calcium()) is None
    assert _card(_order(f.ZOL5, TODAY - timedelta(days=3)), labs=_low_calcium()) is None


# ---- A1: statements are not injection dates ------------------------------------------------

def test_reconciliation_statement_does_not_move_last_dose():
    """A1: a 'takes Prolia' statement dated last month, with an administration history: still overdue."""
    card = _card(f.statement(f.DMAB60, TODAY - timedelta(days=30), status="active"))
    assert card is not None and f"last 60 mg dose {L.isoformat()}" in card["summary"]


def test_statement_ignored_also_with_only_completed_order_or_dispense():
    """A1: a dispense or a completed order of denosumab at any date makes statements evidence only."""
    for record in (f.dispense(f.DMAB60, L), f.request(f.DMAB60, L, status="completed")):
        cards = pv([record, f.statement(f.DMAB60, TODAY - timedelta(days=30), status="active"),
                    *normal_labs(TODAY)], TODAY)
        assert RULE in ids(cards)


def test_statement_only_history_unchanged():
    """A1: without administrations, dispenses or completed orders the statement dates the dose."""
    cards = pv([f.statement(f.DMAB60, TODAY - timedelta(days=30), status="completed",
                            end=TODAY - timedelta(days=30)), *normal_labs(TODAY)], TODAY)
    assert RULE not in ids(cards)
    cards = pv([f.statement(f.DMAB60, L, status="completed", end=L), *normal_labs(TODAY)], TODAY)
    assert RULE in ids(cards)


def test_iv_bisphosphonate_statement_is_no_follow_on_when_infusions_are_recorded():
    """A1: a zoledronic acid statement after L is not a dose when zoledronic acid administrations exist."""
    old = f.administration(f.ZOL5, "2020-01-10")
    assert _card(old, f.statement(f.ZOL5, "2026-10-01", status="active")) is not None
    # statement-only zoledronic acid history: the statement is a dose (follow-on)
    assert _card(f.statement(f.ZOL5, "2026-10-01", status="completed", end="2026-10-01")) is None


def test_oral_bisphosphonate_statement_stays_follow_on_evidence():
    """A1: statements stay exposure evidence for oral bisphosphonates."""
    old = f.dispense(f.ALENDRONATE, "2020-01-10")
    assert _card(old, f.statement(f.ALENDRONATE, "2026-10-01", status="active")) is None


def test_active_iv_order_is_not_a_follow_on():
    """D4/A2: an active zoledronic acid order after L is a planned order, not a follow-on dose."""
    card = _card(_order(f.ZOL5, date(2026, 9, 1)))
    assert card is not None and card["summary"].startswith("Planned transition not given")


# ---- A11: linked order is the same dose ----------------------------------------------------

def test_linked_completed_order_is_not_a_later_dose():
    """A11: an order completed by an administration is that dose, whatever the days between
    them: an order authored (late) 25 days after the injection does not move the last dose."""
    order = f.request(f.DMAB60, "2026-04-25", status="completed", rid="mr-linked")
    given = f.administration(f.DMAB60, L)
    given["request"] = {"reference": "MedicationRequest/mr-linked"}
    cards = pv([order, given, *normal_labs(TODAY)], TODAY)
    assert f"last 60 mg dose {L.isoformat()}" in f.card_for(cards, RULE)["summary"]
    given["request"] = {"reference": "MedicationRequest/other"}       # not linked: a second dose
    assert RULE not in ids(pv([order, given, *normal_labs(TODAY)], TODAY))


def test_low_ionized_calcium_shown_in_mmol_per_litre():
    labs = [f.observation(f.CALCIUM_IONIZED, 1.02, "mmol/L", TODAY - timedelta(days=3)),
            f.observation(f.EGFR, 72, EGFR_UNIT, TODAY - timedelta(days=10))]
    card = _card(labs=labs)
    assert "calcium 1.02 mmol/L" in card["summary"] and "correct calcium first" in card["summary"]


def test_grace_does_not_apply_to_oncology_interval():
    """A2: the grace is not decided for DMAB-ONCOLOGY-INTERVAL: any planned order still silences."""
    last = TODAY - timedelta(days=60)
    base = [f.administration(f.DMAB120, last), *normal_labs(TODAY)]
    assert "DMAB-ONCOLOGY-INTERVAL" in ids(pv(base, TODAY))
    old_plan = _order(f.DMAB120, last + timedelta(days=1))
    assert "DMAB-ONCOLOGY-INTERVAL" not in ids(pv([*base, old_plan], TODAY))
