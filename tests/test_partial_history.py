"""A medication history that arrived only in part (issue 11 §2, "partial results are not
complete results"): the cards that date doses still fire (a missed overdue card is a fracture)
but tell the clinician to confirm the last dose first, and the data card names the partial key.

Decision (issue 11, "partial medication history on patient-view"): not a 412 — the overdue card
is the one most worth showing, and a 412 shows nothing at all; the card says what it stands on.
"""

from __future__ import annotations

from datetime import date

import pytest

from cards.registry import RuleInput
from cards.rules import dmab_dose_due, dmab_overdue_transition
from cds_service.chart import build_chart
from tests.factory import CALCIUM_SERUM, DMAB60, NOW, administration, hook_request, observation, patient
from tests.test_prefetch_integrity import DATA, PV, codes, data_card

CONFIRM = "Confirm the last dose in the full record first"
ERROR_ENTRY = {"resource": {"resourceType": "OperationOutcome",
                            "issue": [{"severity": "error", "code": "timeout"}]},
               "search": {"mode": "outcome"}}


def pv_body(*doses: dict) -> dict:
    return hook_request("patient-view", [patient(), *doses])


def post(client, body: dict) -> list[dict]:
    r = client.post(f"/cds-services/{PV}", json=body)
    assert r.status_code == 200, r.get_json()
    return r.get_json()["cards"]


def overdue(cards: list[dict]) -> dict:
    return next(c for c in cards if c["source"]["topic"]["code"] == "DMAB-OVERDUE-TRANSITION")


def test_complete_history_overdue_card_has_no_caveat(client) -> None:
    cards = post(client, pv_body(administration(DMAB60, "2026-03-20")))
    assert CONFIRM not in overdue(cards)["detail"]
    assert DATA not in codes(cards)


def test_error_entry_in_the_medication_search_keeps_the_card_and_says_so(client) -> None:
    body = pv_body(administration(DMAB60, "2026-03-20"))
    body["prefetch"]["medicationAdministrations"]["entry"].append(ERROR_ENTRY)
    cards = post(client, body)
    card = overdue(cards)
    assert CONFIRM in card["detail"]
    assert "Medication administrations may be incomplete" in data_card(cards)["detail"]


def test_unread_pages_of_the_medication_search_are_a_partial_history(client) -> None:
    body = pv_body(administration(DMAB60, "2026-03-20"))
    body["prefetch"]["medicationAdministrations"]["link"] = [
        {"relation": "next", "url": "https://ehr.example.org/fhir/MedicationAdministration?page=2"}]
    assert CONFIRM in overdue(post(client, body))["detail"]


def test_partial_labs_only_do_not_question_the_dose_history(client) -> None:
    body = pv_body(administration(DMAB60, "2026-03-20"), observation(CALCIUM_SERUM, 9.4, "mg/dL", "2026-11-20"))
    body["prefetch"]["observations"]["entry"].append(ERROR_ENTRY)
    cards = post(client, body)
    assert CONFIRM not in overdue(cards)["detail"]
    assert "Laboratory results may be incomplete" in data_card(cards)["detail"]


@pytest.mark.parametrize("partial, expected", [({}, False), ({"Observation": "error-outcome"}, False),
                                               ({"MedicationRequest": "unread-pages"}, True),
                                               ({"MedicationStatement": "capped"}, True)])
def test_dose_due_card_names_a_partial_history(partial, expected) -> None:
    """The same sentence on DMAB-DOSE-DUE, decided by the chart's partial types (pure)."""
    last = date(2026, 5, 30)   # due 2026-11-30: today (2026-11-23) is in the 14-day lead window
    chart = build_chart([patient(), administration(DMAB60, last)], NOW, partial=partial)
    card = dmab_dose_due.dmab_dose_due(RuleInput(chart=chart, hook="patient-view", now=NOW))
    assert card is not None
    assert (CONFIRM in card.detail) is expected


def test_partial_history_caveat_is_the_first_thing_to_do() -> None:
    chart = build_chart([patient(), administration(DMAB60, "2026-03-20")], NOW,
                        partial={"MedicationAdministration": "deadline"})
    card = dmab_overdue_transition.dmab_overdue_transition(RuleInput(chart=chart, hook="patient-view", now=NOW))
    todo = card.detail.split("**What to do:** ", 1)[1]
    assert todo.startswith(CONFIRM)


def test_low_calcium_variant_of_the_overdue_card_names_a_partial_history() -> None:
    """The "correct calcium first" variant (A6) dates the dose the same way: same caveat."""
    records = [patient(), administration(DMAB60, "2026-03-20"),
               observation(CALCIUM_SERUM, 7.6, "mg/dL", "2026-11-20")]
    for partial, expected in (({}, False), ({"MedicationDispense": "max-pages"}, True)):
        chart = build_chart(records, NOW, partial=partial)
        card = dmab_overdue_transition.dmab_overdue_transition(RuleInput(chart=chart, hook="patient-view", now=NOW))
        assert "correct calcium first" in card.summary
        assert (CONFIRM in card.detail) is expected
