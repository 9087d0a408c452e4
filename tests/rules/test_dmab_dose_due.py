"""DMAB-DOSE-DUE (RULES.md §3): 60 mg last dose L, add_months(L,6) − 14 days ≤ today ≤ add_months(L,7),
no planned order, later dose, follow-on antiresorptive or deliberate stop; exclusive with
DMAB-OVERDUE-TRANSITION."""

from __future__ import annotations

from datetime import date

import pytest

from cards.thresholds import Thresholds
from tests import factory as f
from tests.rules._dmab_dosing_helpers import DOSE_RECORDS, codes_of, ids, normal_labs, override_codes, pv

RULE = "DMAB-DOSE-DUE"
OVERDUE = "DMAB-OVERDUE-TRANSITION"
L = date(2026, 5, 31)     # D = add_months(L,6) = 2026-11-30; window 2026-11-16 … 2026-12-31


def _cards(today: date, *extra, record=None, **kw):
    dose = record(f.DMAB60, L) if record else f.administration(f.DMAB60, L)
    return pv([dose, *normal_labs(today), *extra], today, **kw)


@pytest.mark.parametrize("today, due, overdue", [
    (date(2026, 11, 15), False, False),   # D − 15 days
    (date(2026, 11, 16), True, False),    # D − 14 days: window opens
    (date(2026, 11, 30), True, False),    # D (Nov has 30 days: May 31 + 6 months clamps)
    (date(2026, 12, 31), True, False),    # add_months(L,7) = Dec 31: window closes (inclusive)
    (date(2027, 1, 1), False, True),      # 7 months + 1 day: overdue instead
])
def test_dmab_dose_due_window_borderlines(today, due, overdue):
    """DMAB-DOSE-DUE: window edges, month-end clamped; exclusive with DMAB-OVERDUE-TRANSITION."""
    got = ids(_cards(today))
    assert (RULE in got) is due
    assert (OVERDUE in got) is overdue


@pytest.mark.parametrize("name, record", DOSE_RECORDS)
def test_dmab_dose_due_each_record_type(name, record):
    """DMAB-DOSE-DUE: the last dose may come from any record type (completed order: low confidence)."""
    card = f.card_for(_cards(date(2026, 11, 23), record=record), RULE)
    assert card is not None, name
    assert card["summary"] == "Denosumab 60 mg due 2026-11-30 (last dose 2026-05-31); no follow-up order on file"
    assert ("low confidence" in card["detail"]) is (name == "completed-request")


@pytest.mark.parametrize("blocker", [
    lambda: f.request(f.DMAB60, "2026-11-01", status="active"),               # planned order
    lambda: f.request(f.ZOL5, "2026-11-01", status="active"),                 # planned transition
    lambda: f.dispense(f.ALENDRONATE, "2026-10-01"),                          # follow-on antiresorptive
    lambda: f.request(f.DMAB60, "2026-07-01", status="stopped"),              # deliberate stop
])
def test_dmab_dose_due_silenced(blocker):
    """DMAB-DOSE-DUE: a planned order, follow-on therapy or a deliberate stop silences it."""
    assert RULE not in ids(_cards(date(2026, 11, 23), blocker()))


def test_dmab_dose_due_stop_hands_over_to_overdue_transition():
    """DMAB-DOSE-DUE vs DMAB-OVERDUE-TRANSITION: in the due window a deliberate stop gives the transition card."""
    got = ids(_cards(date(2026, 11, 23), f.statement(f.DMAB60, "2026-08-01", status="stopped")))
    assert OVERDUE in got and RULE not in got


@pytest.mark.parametrize("void", [
    lambda: f.request(f.DMAB60, "2026-11-01", status="cancelled"),
    lambda: f.request(f.DMAB60, "2026-11-01", status="entered-in-error"),
    lambda: f.request(f.DMAB60, "2026-04-01", status="active"),              # authored before L
    lambda: f.administration(f.ZOL5, "2026-10-01", status="not-done"),
])
def test_dmab_dose_due_void_records_do_not_silence(void):
    """DMAB-DOSE-DUE: cancelled/entered-in-error/not-done records and earlier orders are not a follow-up."""
    assert RULE in ids(_cards(date(2026, 11, 23), void()))


def test_dmab_dose_due_regimen_unknown_or_120mg_silent():
    """DMAB-DOSE-DUE: regimen unknown (ingredient code, no dose) or 120 mg → no card."""
    assert RULE not in ids(pv([f.administration(f.DMAB_IN, L), *normal_labs()], date(2026, 11, 23)))
    assert RULE not in ids(pv([f.administration(f.DMAB120, L), *normal_labs()], date(2026, 11, 23)))


def test_dmab_dose_due_ignored_dose_records():
    """DMAB-DOSE-DUE: an entered-in-error administration or cancelled dispense is no dose."""
    cards = pv([f.administration(f.DMAB60, L, status="entered-in-error"),
                f.dispense(f.DMAB60, L, status="cancelled"), *normal_labs()], date(2026, 11, 23))
    assert RULE not in ids(cards)


def test_dmab_dose_due_card_shape():
    """DMAB-DOSE-DUE: info, one denosumab 60 mg suggestion (993452), override codes, calcium shown."""
    card = f.card_for(_cards(date(2026, 11, 23)), RULE)
    assert card["indicator"] == "info"
    assert codes_of(card) == ["993452"]
    res = card["suggestions"][0]["actions"][0]["resource"]
    assert res["resourceType"] == "MedicationRequest" and res["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] == 60
    assert override_codes(card) == ["dose-scheduled-elsewhere", "transition-planned"]
    assert "calcium 9.4" in card["detail"] and "Not found" in card["detail"]


def test_dmab_dose_due_lead_days_from_thresholds():
    """DMAB-DOSE-DUE: dmab60_due_lead_days comes from the thresholds."""
    today = date(2026, 11, 10)          # D − 20 days
    assert RULE not in ids(_cards(today))
    assert RULE in ids(_cards(today, thresholds=Thresholds(dmab60_due_lead_days=21)))


@pytest.mark.parametrize("hook", ["order-select", "order-sign"])
def test_dmab_dose_due_not_on_order_hooks(hook):
    """DMAB-DOSE-DUE: patient-view only."""
    cards = f.evaluate_rules([f.patient(), f.administration(f.DMAB60, L), *normal_labs()], hook=hook,
                             drafts=[f.draft(f.DMAB60)], now=f.NOW)
    assert RULE not in ids(cards)
