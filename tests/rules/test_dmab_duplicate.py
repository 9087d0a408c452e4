"""DMAB-DUPLICATE (RULES.md §3): (a) a second denosumab draft, (b) an order already pending, (c) 60 mg
before add_months(L,6) − 28 days, (d) 120 mg < 21 days (GCTB/HCM loading exempt from 6 days),
(e) 60 mg and 120 mg products both active."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from cards.thresholds import Thresholds
from tests import factory as f
from tests.rules._dmab_dosing_helpers import (DOSE_RECORDS, EGFR_UNIT, ICD10, TODAY, ids, override_codes)

RULE = "DMAB-DUPLICATE"
GCTB = lambda: f.condition("D48.0", ICD10, text="Giant cell tumour of bone, left femur", onset="2026-09-01")  # E1: named  # noqa: E731
METS = lambda: f.condition("C79.51", ICD10, onset="2025-01-10")  # noqa: E731


def ago(n: int) -> date:
    return TODAY - timedelta(days=n)


def run(*resources, drafts, hook="order-sign", **kw):
    base = [f.patient(), f.observation(f.CALCIUM_SERUM, 9.3, "mg/dL", ago(3)),
            f.observation(f.EGFR, 70, EGFR_UNIT, ago(3))]
    return f.evaluate_rules([*base, *resources], hook=hook, drafts=drafts, **kw)


# ---- (a) two drafts ----------------------------------------------------------------------------

def test_dmab_duplicate_two_drafts_one_card_naming_both():
    """DMAB-DUPLICATE (a): two denosumab drafts in one session → one card naming both."""
    d1, d2 = f.draft(f.DMAB60), f.draft(None, text="Prolia 60 mg/mL prefilled syringe")
    cards = run(f.administration(f.DMAB60, ago(200)), drafts=[d1, d2])
    assert ids(cards).count(RULE) == 1
    card = f.card_for(cards, RULE)
    assert card["indicator"] == "warning"
    assert card["summary"].startswith("Duplicate denosumab order:") and "Prolia" in card["summary"]
    assert d1["id"] in card["detail"] and d2["id"] in card["detail"]
    assert override_codes(card)[0] == "cancel-other-order"
    assert set(override_codes(card)) == {"previous-dose-not-given", "loading-dose", "cancel-other-order"}


def test_dmab_duplicate_order_select_reads_all_drafts():
    """DMAB-DUPLICATE (a): order-select triggers on the selected draft but sees every draft."""
    d1, d2 = f.draft(f.DMAB60), f.draft(f.DMAB60)
    cards = run(f.administration(f.DMAB60, ago(200)), drafts=[d1, d2], hook="order-select",
                selections=[f"MedicationRequest/{d1['id']}"])
    assert RULE in ids(cards)
    statin = f.draft("617311", text="atorvastatin 40 mg")
    cards = run(f.administration(f.DMAB60, ago(200)), drafts=[d1, d2, statin], hook="order-select",
                selections=[f"MedicationRequest/{statin['id']}"])
    assert RULE not in ids(cards)


# ---- (b) pending order ---------------------------------------------------------------------------

@pytest.mark.parametrize("order, fires", [
    (lambda: f.request(f.DMAB60, ago(10), status="active"), True),             # after the last dose
    (lambda: f.request(f.DMAB60, ago(300), status="active"), False),           # before it (standing order)
    (lambda: f.request(f.DMAB60, ago(10), status="cancelled"), False),
    (lambda: f.request(f.DMAB60, ago(10), status="entered-in-error"), False),
    (lambda: f.request(f.DMAB60, ago(10), status="completed"), True),          # completed = a dose 10 days ago → (c)
    (lambda: f.request(f.ZOL5, ago(10), status="active"), False),              # not denosumab
])
def test_dmab_duplicate_pending_order(order, fires):
    """DMAB-DUPLICATE (b): an active denosumab order authored after the last dose is already pending."""
    cards = run(f.administration(f.DMAB60, ago(200)), order(), drafts=[f.draft(f.DMAB60)])
    assert (RULE in ids(cards)) is fires


def test_dmab_duplicate_pending_order_without_any_dose():
    """DMAB-DUPLICATE (b): with no dose on record any active denosumab order is pending."""
    card = f.card_for(run(f.request(f.DMAB60, ago(5), status="active"), drafts=[f.draft(f.DMAB60)]), RULE)
    assert card and card["summary"].startswith("Denosumab already ordered")


# ---- (c) 60 mg too early -------------------------------------------------------------------------

@pytest.mark.parametrize("last, fires", [
    (date(2026, 6, 22), True),    # add_months = 2026-12-22, −28 d = 2026-11-24 > today
    (date(2026, 6, 21), False),   # earliest = 2026-11-23 = today
    (date(2026, 5, 31), False),   # 2026-11-30 − 28 = 2026-11-02
    (date(2026, 9, 1), True),
])
def test_dmab_duplicate_60mg_too_early_borderline(last, fires):
    """DMAB-DUPLICATE (c): 60 mg draft fires when today < add_months(L,6) − 28 days."""
    cards = run(f.administration(f.DMAB60, last), drafts=[f.draft(f.DMAB60)])
    assert (RULE in ids(cards)) is fires


@pytest.mark.parametrize("name, record", DOSE_RECORDS)
def test_dmab_duplicate_60mg_each_record_type(name, record):
    """DMAB-DUPLICATE (c): the last dose may come from any record type; the summary has L, n and D."""
    card = f.card_for(run(record(f.DMAB60, date(2026, 9, 1)), drafts=[f.draft(f.DMAB60)]), RULE)
    assert card is not None, name
    assert card["summary"] == ("Denosumab last given 2026-09-01 (83 days ago): next 60 mg dose not due "
                               "until 2027-03-01")
    assert override_codes(card)[0] == "previous-dose-not-given"
    assert ("low confidence" in card["detail"]) is (name == "completed-request")


@pytest.mark.parametrize("status", ["entered-in-error", "not-done"])
def test_dmab_duplicate_void_dose_is_not_last_dose(status):
    """DMAB-DUPLICATE (c): an entered-in-error or not-done administration is no dose."""
    cards = run(f.administration(f.DMAB60, date(2026, 9, 1), status=status), drafts=[f.draft(f.DMAB60)])
    assert RULE not in ids(cards)


def test_dmab_duplicate_early_margin_from_thresholds():
    """DMAB-DUPLICATE (c): dmab60_early_margin_days is configurable."""
    res = f.administration(f.DMAB60, date(2026, 6, 21))
    assert RULE not in ids(run(res, drafts=[f.draft(f.DMAB60)]))
    assert RULE in ids(run(res, drafts=[f.draft(f.DMAB60)], thresholds=Thresholds(dmab60_early_margin_days=0)))


def test_dmab_duplicate_unknown_regimen_no_timing_check():
    """DMAB-DUPLICATE: strength unknown → the interval checks (c)/(d) do not apply."""
    cards = run(f.administration(f.DMAB60, ago(30)), drafts=[f.draft(f.DMAB_IN)])
    assert RULE not in ids(cards)


# ---- (d) 120 mg ----------------------------------------------------------------------------------

@pytest.mark.parametrize("days, fires", [(20, True), (21, False), (28, False)])
def test_dmab_duplicate_120mg_min_interval(days, fires):
    """DMAB-DUPLICATE (d): 120 mg draft within 21 days of the last dose."""
    cards = run(f.administration(f.DMAB120, ago(days)), METS(), drafts=[f.draft(f.DMAB120)])
    assert (RULE in ids(cards)) is fires
    if fires:
        assert "not due until" in f.card_for(cards, RULE)["summary"]


@pytest.mark.parametrize("days, fires", [(5, True), (6, False), (7, False), (14, False)])
def test_dmab_duplicate_120mg_loading_exemption(days, fires):
    """DMAB-DUPLICATE (d): GCTB loading phase (first dose ≤ 28 days ago) exempts doses ≥ 6 days apart."""
    cards = run(f.administration(f.DMAB120, ago(days)), GCTB(), drafts=[f.draft(f.DMAB120)])
    assert (RULE in ids(cards)) is fires


def test_dmab_duplicate_120mg_loading_requires_gctb_or_hcm_and_recent_course():
    """DMAB-DUPLICATE (d): without GCTB/HCM, or with a course started > 28 days ago, 7 days is too early."""
    assert RULE in ids(run(f.administration(f.DMAB120, ago(7)), METS(), drafts=[f.draft(f.DMAB120)]))
    old_course = [f.administration(f.DMAB120, ago(n)) for n in (63, 35, 7)]
    assert RULE in ids(run(*old_course, GCTB(), drafts=[f.draft(f.DMAB120)]))


def test_dmab_duplicate_120mg_loading_from_draft_reason():
    """DMAB-DUPLICATE (d): a GCTB reason on the draft counts as the indication (D6); E1: the
    reason must name GCTB, a coded D48.0 alone is a proxy (no loading exemption)."""
    draft = f.draft(f.DMAB120, reason=[(ICD10, "D48.0")])
    draft["reasonCode"][0]["text"] = "Giant cell tumor of bone"
    assert RULE not in ids(run(f.administration(f.DMAB120, ago(7)), drafts=[draft]))
    proxy = f.draft(f.DMAB120, reason=[(ICD10, "D48.0")])
    assert RULE in ids(run(f.administration(f.DMAB120, ago(7)), drafts=[proxy]))


def test_dmab_duplicate_120mg_d48_condition_alone_is_no_loading_phase():
    """E1: an active D48.0 Condition without the GCTB name is not a GCTB diagnosis."""
    proxy = f.condition("D48.0", ICD10, onset="2026-09-01")
    assert RULE in ids(run(f.administration(f.DMAB120, ago(7)), proxy, drafts=[f.draft(f.DMAB120)]))


# ---- (e) both strengths --------------------------------------------------------------------------

def test_dmab_duplicate_60_and_120_active():
    """DMAB-DUPLICATE (e): a 60 mg draft while a 120 mg order is active (Prolia- and Xgeva-type)."""
    cards = run(f.administration(f.DMAB120, date(2026, 6, 1)), f.request(f.DMAB120, date(2026, 5, 1)),
                METS(), drafts=[f.draft(f.DMAB60)])
    card = f.card_for(cards, RULE)
    assert card and card["summary"].startswith("Denosumab 60 mg and 120 mg both active")
    # a stopped 120 mg order is not active
    cards = run(f.administration(f.DMAB120, date(2026, 6, 1)),
                f.request(f.DMAB120, date(2026, 5, 1), status="stopped"), drafts=[f.draft(f.DMAB60)])
    assert RULE not in ids(cards)


def test_dmab_duplicate_all_reasons_listed():
    """DMAB-DUPLICATE: several findings → one card listing each."""
    cards = run(f.administration(f.DMAB60, ago(30)), f.request(f.DMAB60, ago(10), status="active"),
                drafts=[f.draft(f.DMAB60), f.draft(f.DMAB60)])
    detail = f.card_for(cards, RULE)["detail"]
    assert "Same session" in detail and "Too early (60 mg)" in detail and "Order already pending" in detail


# ---- hooks, clean ---------------------------------------------------------------------------------

def test_dmab_duplicate_clean_continuation_no_card():
    """DMAB-DUPLICATE: a single 60 mg draft at the due date gives no card."""
    assert RULE not in ids(run(f.administration(f.DMAB60, date(2026, 5, 20)), drafts=[f.draft(f.DMAB60)]))


def test_dmab_duplicate_not_on_patient_view():
    """DMAB-DUPLICATE: order hooks only."""
    cards = f.evaluate_rules([f.patient(), f.administration(f.DMAB60, ago(10)),
                              f.request(f.DMAB60, ago(5), status="active")], hook="patient-view")
    assert RULE not in ids(cards)


def test_dmab_duplicate_problem_list_unavailable_noted():
    """DMAB-DUPLICATE (d): without the problem list a loading phase cannot be checked; the card says so."""
    cards = run(f.administration(f.DMAB120, ago(7)), drafts=[f.draft(f.DMAB120)],
                unavailable={"Condition": "timeout"})
    assert "loading phase could not be checked" in f.card_for(cards, RULE)["detail"]


def test_loading_phase_length_from_thresholds():
    """D9 loading phase: the first 120 mg dose of the course ≤ ``loading_phase_days`` ago."""
    from cards.thresholds import Thresholds
    res = [f.administration(f.DMAB120, ago(20)), f.administration(f.DMAB120, ago(7)), GCTB()]
    assert RULE not in ids(run(*res, drafts=[f.draft(f.DMAB120)]))
    assert RULE in ids(run(*res, drafts=[f.draft(f.DMAB120)], thresholds=Thresholds(loading_phase_days=14)))


def test_a4_e83_52_alone_gives_no_loading_exemption():
    """D6 (A4): E83.52 "Hypercalcemia" is HCM (loading phase) only with an active malignancy."""
    e83 = f.condition("E83.52", ICD10, onset="2026-10-20")
    res = [f.administration(f.DMAB120, ago(7)), e83]
    assert RULE in ids(run(*res, drafts=[f.draft(f.DMAB120)]))
    assert RULE not in ids(run(*res, f.condition("C50.911", ICD10), drafts=[f.draft(f.DMAB120)]))
