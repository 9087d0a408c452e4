"""DMAB-DENTAL-CLEARANCE (RULES.md §3): initiation only, 365-day look-back, referrals and
not-done / entered-in-error procedures do not count."""

from __future__ import annotations

import pytest

from cards.thresholds import Thresholds
from tests.factory import DMAB120, DMAB60, draft, patient, procedure, request, statement

from ._dmab_helpers import (CDT, HOOKS, SNOMED, ago, continuation, override_codes, resource_codes,
                            run, suggestion_resources)

RULE = "DMAB-DENTAL-CLEARANCE"


def _eval(days_ago: int, *, status: str = "completed", code: str = "D0150", system: str = CDT):
    return procedure(code, system, ago(days_ago), status=status)


@pytest.mark.parametrize("hook", HOOKS)
def test_dmab_dental_clearance_fires_at_initiation_without_evaluation(hook: str) -> None:
    card = run(RULE, [patient()], hook=hook, drafts=[draft(DMAB60)])
    assert card is not None
    assert card["indicator"] == "warning"
    assert card["summary"] == ("No dental evaluation on record in the last 12 months before starting "
                               "denosumab: arrange dental clearance")
    assert "none on record" in card["detail"]
    assert "2025-11-23" in card["detail"] and "2026-11-23" in card["detail"]   # the window looked at
    assert card["source"]["topic"] == {"system": "urn:bone-safety-cds:rule", "code": RULE,
                                       "display": "No dental evaluation before starting denosumab"}
    assert override_codes(card) == ["dental-eval-done-elsewhere", "urgent-treatment-benefit",
                                    "patient-declined", "edentulous"]
    [referral] = suggestion_resources(card)
    assert referral["resourceType"] == "ServiceRequest" and referral["intent"] == "order"
    assert resource_codes(referral) == ["103697008"]
    assert referral["reasonCode"][0]["text"] == "Dental clearance before antiresorptive therapy"
    assert card["links"][0]["url"].startswith("https://doi.org/10.1016/j.joms")


@pytest.mark.parametrize("days_ago, fires", [(364, False), (365, False), (366, True)])
def test_dmab_dental_clearance_look_back_is_365_days_inclusive(days_ago: int, fires: bool) -> None:
    card = run(RULE, [patient(), _eval(days_ago)], drafts=[draft(DMAB60)])
    assert (card is not None) is fires
    if fires:
        assert f"on {ago(days_ago).isoformat()} (outside the window)" in card["detail"]


def test_dmab_dental_clearance_snomed_dental_consultation_counts() -> None:
    assert run(RULE, [patient(), _eval(30, code="34043003", system=SNOMED)], drafts=[draft()]) is None


@pytest.mark.parametrize("status", ["not-done", "entered-in-error", "in-progress", "preparation"])
def test_dmab_dental_clearance_non_completed_evaluations_do_not_count(status: str) -> None:
    assert run(RULE, [patient(), _eval(30, status=status)], drafts=[draft()]) is not None


def test_dmab_dental_clearance_referral_is_not_an_evaluation() -> None:
    card = run(RULE, [patient(), procedure("103697008", SNOMED, ago(20))], drafts=[draft()])
    assert card is not None
    assert "a referral is not evidence" in card["detail"]


def test_dmab_dental_clearance_extraction_is_not_an_evaluation() -> None:
    card = run(RULE, [patient(), procedure("D7140", CDT, ago(40))], drafts=[draft()])
    assert card is not None and "Invasive dental work" in card["detail"]


def test_dmab_dental_clearance_continuation_dose_does_not_fire() -> None:
    assert run(RULE, [patient(), *continuation()], drafts=[draft(DMAB60)]) is None


def test_dmab_dental_clearance_restart_after_more_than_a_year_is_initiation() -> None:
    from tests.factory import administration
    card = run(RULE, [patient(), administration(DMAB60, ago(400))], drafts=[draft(DMAB60)])
    assert card is not None and ago(400).isoformat() in card["detail"]


def test_dmab_dental_clearance_entered_in_error_dose_does_not_make_a_continuation() -> None:
    from tests.factory import administration
    resources = [patient(), administration(DMAB60, ago(100), status="entered-in-error")]
    assert run(RULE, resources, drafts=[draft(DMAB60)]) is not None


def test_dmab_dental_clearance_120mg_mentions_oncology_risk_and_one_card_for_two_drafts() -> None:
    d1, d2 = draft(DMAB120), draft(DMAB60)
    card = run(RULE, [patient()], drafts=[d1, d2])
    assert card is not None
    assert "oncology regimen" in card["detail"]
    assert card["detail"].count("**") >= 4   # both drafts named


def test_dmab_dental_clearance_order_select_only_selected_drafts_trigger() -> None:
    d = draft(DMAB60)
    assert run(RULE, [patient()], hook="order-select", drafts=[d], selections=[]) is None
    assert run(RULE, [patient()], hook="order-select", drafts=[d],
               selections=[f"MedicationRequest/{d['id']}"]) is not None


def test_dmab_dental_clearance_not_on_patient_view_nor_for_other_drugs() -> None:
    assert run(RULE, [patient()], hook="patient-view") is None
    assert run(RULE, [patient()], drafts=[draft("705824")]) is None   # zoledronic acid: BP-DENTAL


def test_dmab_dental_clearance_window_from_thresholds() -> None:
    card = run(RULE, [patient(), _eval(200)], drafts=[draft()],
               thresholds=Thresholds(dental_lookback_days=180))
    assert card is not None and "180 days" in card["summary"]


def test_dmab_dental_clearance_statement_of_prior_dose_within_year_is_continuation() -> None:
    assert run(RULE, [patient(), statement(DMAB60, ago(150), status="completed")], drafts=[draft()]) is None


def test_dmab_dental_clearance_stopped_order_is_not_a_dose() -> None:
    resources = [patient(), request(DMAB60, ago(100), status="stopped")]
    assert run(RULE, resources, drafts=[draft()]) is not None


def test_dmab_dental_clearance_pending_order_never_given_is_still_initiation() -> None:
    """DMAB-DENTAL-CLEARANCE: an active denosumab order authored 60 days ago but never given is a
    plan, not a dose (D4 "Initiation"; chart fix in Chart.exposure_dates)."""
    resources = [patient(), request(DMAB60, ago(60), status="active", text="Prolia 60 mg")]
    assert run(RULE, resources, drafts=[draft(DMAB60)]) is not None
    # an active statement with a date *is* a dose event (D4): continuation, no card
    assert run(RULE, [patient(), statement(DMAB60, ago(60))], drafts=[draft(DMAB60)]) is None


def test_oral_bisphosphonate_active_order_still_counts_as_exposure() -> None:
    """D4: for oral bisphosphonates an active order is exposure evidence (unchanged by the fix)."""
    from cds_service.chart import BISPHOSPHONATE, build_chart
    from tests.factory import NOW
    chart = build_chart([request("904431", ago(60), status="active")], NOW)
    assert not chart.is_initiation([BISPHOSPHONATE], 365)
    chart = build_chart([request(DMAB60, ago(60), status="active")], NOW)
    assert chart.is_initiation(["denosumab"], 365)


@pytest.mark.parametrize("code", [DMAB60, "1046398"])
def test_a17_dental_clearance_stays_warning_at_initiation_for_both_regimens(code: str) -> None:
    """A17 (decision 17): confirmed `warning` at initiation, 60 mg and 120 mg alike."""
    card = run(RULE, [patient()], drafts=[draft(code)])
    assert card is not None and card["indicator"] == "warning"
