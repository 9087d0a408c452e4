"""Issue 11: only the context patient's data, nothing dropped in silence (PF-5, REQ-2, RESP-1).

Every measured case of the issue, over the HTTP route with prefetch, and through the FHIR-server
fallback (``responses``): resources of another patient are never used and are counted in the
data card; an invalid element the chart does not read never loses a resource; one it reads makes
the resource unreadable, which the data card says.
"""

from __future__ import annotations

import copy
import json
import logging

import pytest
import responses

from cds_service.app import create_app
from cds_service.chart import build_chart
from cds_service.chart.identity import PatientIdentity, patient_aliases
from cds_service.chart.projection import READ_ELEMENTS, project
from cds_service.config import Settings
from hooks.services import services
from tests.factory import (ALENDRONATE, CALCIUM_SERUM, DMAB60, ICD10, NOW, PID, administration,
                           condition, draft, hook_request, observation, patient)

PV, OSEL, OSIGN = (s.id for s in services())
OTHER = "pat-B"
DATA = "SERVICE-DATA-UNAVAILABLE"
FHIR = "https://ehr.example.org/fhir"


def of(other: dict, pid: str = OTHER) -> dict:
    """The same resource, for another patient."""
    out = copy.deepcopy(other)
    out["id"] = out["id"] + "-b"
    out["subject"] = {"reference": f"Patient/{pid}"}
    return out


def codes(cards: list[dict]) -> list[str]:
    return [c["source"]["topic"]["code"] for c in cards]


def data_card(cards: list[dict]) -> dict:
    return next(c for c in cards if c["source"]["topic"]["code"] == DATA)


def post(client, service: str, body: dict):
    r = client.post(f"/cds-services/{service}", json=body)
    assert r.status_code == 200, r.get_json()
    return r.get_json()["cards"]


# --------------------------------------------------------------------------- 1. the patient in context

def test_another_patients_prolia_doses_give_no_overdue_card(client) -> None:
    """B's two Prolia doses in A's prefetch gave A a false "denosumab overdue" card."""
    b_doses = [of(administration(DMAB60, "2025-09-01")), of(administration(DMAB60, "2026-03-01"))]
    cards = post(client, PV, hook_request("patient-view", [patient(), *b_doses]))
    assert cards == []   # A is on no antiresorptive: nothing to say about A


def test_own_overdue_card_with_another_patients_later_dose_in_the_data(client) -> None:
    """A's own last dose (8 months ago) decides; B's dose last month neither hides the card
    nor is used; the data card counts it."""
    own = administration(DMAB60, "2026-03-20")
    b_dose = of(administration(DMAB60, "2026-10-20"))
    cards = post(client, PV, hook_request("patient-view", [patient(), own, b_dose]))
    assert "DMAB-OVERDUE-TRANSITION" in codes(cards)
    assert "1 record in the data sent belongs to another patient and was not used" in data_card(cards)["detail"]


def test_another_patients_normal_calcium_does_not_hide_critical_hypocalcemia(client) -> None:
    own = observation(CALCIUM_SERUM, 7.0, "mg/dL", "2026-11-20")
    b_normal_today = of(observation(CALCIUM_SERUM, 9.5, "mg/dL", "2026-11-23"))
    cards = post(client, OSIGN, hook_request("order-sign", [patient(), own, b_normal_today], drafts=[draft()]))
    hypo = next(c for c in cards if c["source"]["topic"]["code"] == "DMAB-HYPOCALCEMIA")
    assert hypo["indicator"] == "critical" and "7.0" in hypo["summary"]
    assert "belongs to another patient" in data_card(cards)["detail"]


def test_another_patients_patient_resource_gives_no_pediatric_card(client) -> None:
    """A Patient resource for B (a child) in the patient key: not A's demographics."""
    child_b = patient(birth="2015-01-01", pid=OTHER)
    body = hook_request("order-sign", [observation(CALCIUM_SERUM, 9.4, "mg/dL", "2026-11-20")], drafts=[draft()])
    body["prefetch"]["patient"] = child_b
    cards = post(client, OSIGN, body)
    assert "DMAB-PEDIATRIC" not in codes(cards)
    assert "1 record in the data sent belongs to another patient" in data_card(cards)["detail"]


@pytest.mark.parametrize("hook,service", [("order-sign", OSIGN), ("order-select", OSEL)])
def test_draft_for_another_patient_is_a_400_naming_the_entry(client, hook, service) -> None:
    own, other = draft(), of(draft())
    body = hook_request(hook, [patient()], drafts=[own, other])
    r = client.post(f"/cds-services/{service}", json=body)
    assert r.status_code == 400
    err = r.get_json()
    assert err["error"] == "draft_order_other_patient"
    assert err["field"] == "context.draftOrders.entry[1].resource.subject"


def test_draft_without_subject_is_the_context_patients(client) -> None:
    """IOP-1: the sandbox sends drafts without ``subject``; they are checked as the patient's."""
    d = draft()
    del d["subject"]
    cards = post(client, OSIGN, hook_request("order-sign", [patient(), observation(CALCIUM_SERUM, 7.0, "mg/dL",
                                                                                   "2026-11-20")], drafts=[d]))
    assert "DMAB-HYPOCALCEMIA" in codes(cards)


def test_required_subject_missing_is_excluded_optional_subject_missing_is_kept(client) -> None:
    """Condition.subject is 1..1 in R4 (excluded, counted as naming no patient);
    Observation.subject is 0..1 (kept: the server returned it for this patient's search)."""
    onj = condition("M87.180", ICD10, onset="2023-04-12")
    del onj["subject"]
    calcium = observation(CALCIUM_SERUM, 7.0, "mg/dL", "2026-11-20")
    del calcium["subject"]
    cards = post(client, OSIGN, hook_request("order-sign", [patient(), onj, calcium], drafts=[draft()]))
    assert "AR-ONJ-HISTORY" not in codes(cards)
    assert "DMAB-HYPOCALCEMIA" in codes(cards)
    assert "1 record in the data sent names no patient and was not used" in data_card(cards)["detail"]


def test_reference_forms() -> None:
    ident = PatientIdentity(PID, FHIR + "/", frozenset({"urn:uuid:1234"}))
    assert ident.matches({"reference": f"Patient/{PID}"})
    assert ident.matches({"reference": f"Patient/{PID}/_history/3"})
    assert ident.matches({"reference": f"{FHIR}/Patient/{PID}"})
    assert ident.matches({"reference": f"HTTPS://EHR.example.org/fhir/Patient/{PID}"})
    assert ident.matches({"reference": "urn:uuid:1234"})
    assert not ident.matches({"reference": f"https://other.example.org/fhir/Patient/{PID}"})
    assert not ident.matches({"reference": f"Patient/{PID}x"})
    assert not ident.matches({"reference": f"Group/{PID}"})
    assert not ident.matches({"reference": "#p1"})
    assert not ident.matches({"identifier": {"value": PID}})
    assert not ident.matches({"reference": "urn:uuid:9999"})
    # without a fhirServer any absolute form of Patient/{id} is the patient's
    assert PatientIdentity(PID).matches({"reference": f"https://x.example/fhir/Patient/{PID}"})


def test_urn_subject_resolves_through_the_bundle_fullurl() -> None:
    pat = {"resourceType": "Bundle", "type": "searchset",
           "entry": [{"fullUrl": "urn:uuid:abc", "resource": patient()},
                     {"fullUrl": "urn:uuid:def", "resource": patient(pid=OTHER)}]}
    aliases = patient_aliases(PID, [pat, None, {"resourceType": "Patient"}])
    assert aliases == frozenset({"urn:uuid:abc"})
    calcium = observation(CALCIUM_SERUM, 7.0, "mg/dL", "2026-11-20")
    calcium["subject"] = {"reference": "urn:uuid:abc"}
    wrong = observation(CALCIUM_SERUM, 9.9, "mg/dL", "2026-11-22")
    wrong["subject"] = {"reference": "urn:uuid:def"}
    chart = build_chart([calcium, wrong], NOW, identity=PatientIdentity(PID, aliases=aliases))
    assert [lab.value for lab in chart.labs("calcium-serum")] == [7]
    assert chart.excluded == {"other-patient": 1}


@responses.activate
def test_other_patient_resources_in_the_fhir_servers_answer_are_excluded(tmp_path) -> None:
    """The same filter applies to what the FHIR server answers for ``patient=A``."""
    settings = Settings.from_env({"BONE_CDS_DATA_DIR": str(tmp_path), "BONE_CDS_ALLOWED_FHIR_SERVERS": FHIR})
    client = create_app(settings, clock=lambda: NOW).test_client()
    own = observation(CALCIUM_SERUM, 7.0, "mg/dL", "2026-11-20")
    b_normal = of(observation(CALCIUM_SERUM, 9.5, "mg/dL", "2026-11-23"))
    b_normal["subject"] = {"reference": f"{FHIR}/Patient/{OTHER}"}
    bundle = {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": b_normal}, {"resource": own}]}
    responses.add(responses.GET, f"{FHIR}/Observation", json=bundle)
    body = hook_request("order-sign", [patient()], drafts=[draft()])
    del body["prefetch"]["observations"]
    body["fhirServer"] = FHIR
    body["fhirAuthorization"] = {"access_token": "tok-secret", "token_type": "Bearer", "scope": "patient/*.read",
                                 "subject": "cds"}
    cards = post(client, OSIGN, body)
    assert "DMAB-HYPOCALCEMIA" in codes(cards)
    assert "belongs to another patient" in data_card(cards)["detail"]


def test_log_line_counts_excluded_resources_never_their_ids(client, caplog) -> None:
    b_dose = of(administration(DMAB60, "2026-10-20"))
    body = hook_request("patient-view", [patient(), administration(DMAB60, "2026-03-20"), b_dose])
    with caplog.at_level(logging.INFO, logger="cds_service"):
        post(client, PV, body)
    line = next(r for r in caplog.records if r.getMessage() == "hook answered")
    assert line.event["excluded_resources"] == {"other-patient": 1}
    text = json.dumps(line.event)
    assert OTHER not in text and b_dose["id"] not in text


# --------------------------------------------------------------------------- 2. tolerant where it is safe

def test_unrelated_invalid_elements_never_lose_the_critical_calcium(client) -> None:
    """Measured: a calcium 6.9 with "issued": "yesterday", an unknown element and a malformed
    referenceRange failed R4B validation; the older normal value was used, no card."""
    newest = observation(CALCIUM_SERUM, 6.9, "mg/dL", "2026-11-22")
    newest |= {"issued": "yesterday", "inventedElement": {"x": 1}, "referenceRange": [{"low": "8.5"}]}
    older = observation(CALCIUM_SERUM, 9.4, "mg/dL", "2026-11-10")
    cards = post(client, OSIGN, hook_request("order-sign", [patient(), newest, older], drafts=[draft()]))
    hypo = next(c for c in cards if c["source"]["topic"]["code"] == "DMAB-HYPOCALCEMIA")
    assert "6.9" in hypo["summary"] and hypo["indicator"] == "critical"
    assert DATA not in codes(cards)


def test_unrelated_invalid_element_never_loses_an_onj_history(client) -> None:
    onj = condition("M87.180", ICD10, onset="2023-04-12") | {"recorder": 5, "stage": "three"}
    cards = post(client, OSIGN, hook_request("order-sign", [patient(), onj,
                                                           observation(CALCIUM_SERUM, 9.4, "mg/dL", "2026-11-20")],
                                             drafts=[draft()]))
    assert "AR-ONJ-HISTORY" in codes(cards)


def test_unrelated_invalid_element_never_loses_the_draft(client) -> None:
    d = draft() | {"groupIdentifier": 7, "insurance": "none", "priorPrescription": "yes"}
    cards = post(client, OSIGN, hook_request("order-sign", [patient(), observation(CALCIUM_SERUM, 7.0, "mg/dL",
                                                                                   "2026-11-20")], drafts=[d]))
    assert "DMAB-HYPOCALCEMIA" in codes(cards)


def test_unreadable_newest_calcium_is_reported_and_warns_on_the_order(client) -> None:
    """An element the chart reads is invalid (the value): the result is unreadable; the card
    says so, as a warning before denosumab (a calcium that could not be read may be low)."""
    newest = observation(CALCIUM_SERUM, 6.9, "mg/dL", "2026-11-22")
    newest["valueQuantity"]["value"] = "six point nine"
    older = observation(CALCIUM_SERUM, 9.4, "mg/dL", "2026-11-10")
    cards = post(client, OSIGN, hook_request("order-sign", [patient(), older, newest], drafts=[draft()]))
    card = data_card(cards)
    assert card["indicator"] == "warning"
    assert "1 laboratory result could not be read: calcium checks used the older results" in card["detail"]
    assert "could not be read" in card["summary"]


def test_unreadable_antiresorptive_draft_is_never_an_empty_answer(client) -> None:
    d = draft()
    d["dosageInstruction"] = [{"timing": "every six months"}]
    cards = post(client, OSIGN, hook_request("order-sign", [patient()], drafts=[d]))
    card = data_card(cards)
    assert card["indicator"] == "warning"
    assert card["summary"].startswith("The denosumab order could not be read")


def test_unreadable_draft_of_another_drug_gives_no_card(client) -> None:
    d = draft(code=None, text="amoxicillin 500 mg")
    d["dosageInstruction"] = [{"timing": "bid"}]
    assert post(client, OSIGN, hook_request("order-sign", [patient()], drafts=[d])) == []


def test_data_card_takes_the_indicator_of_the_check_it_replaces(client) -> None:
    """Labs unavailable before a denosumab start: the missing calcium check is a warning
    (as its "not checked" form would be), not an info card."""
    body = hook_request("order-sign", [patient()], drafts=[draft()])
    del body["prefetch"]["observations"]
    card = data_card(post(client, OSIGN, body))
    assert card["indicator"] == "warning"
    assert "laboratory results" in card["summary"]


def test_data_card_lists_only_checks_that_apply_to_the_patients_drugs(client) -> None:
    body = hook_request("order-sign", [patient()], drafts=[draft(ALENDRONATE)])
    del body["prefetch"]["observations"]
    card = data_card(post(client, OSIGN, body))
    from cards.registry import REGISTRY
    assert not [r for r, spec in REGISTRY.items() if r.startswith("DMAB-") and spec.title in card["detail"]]
    assert REGISTRY["BP-HYPOCALCEMIA"].title in card["detail"]


def test_no_internal_references_in_the_data_card(client) -> None:
    body = hook_request("order-sign", [patient(), of(administration(DMAB60, "2026-10-20"))], drafts=[draft()])
    del body["prefetch"]["observations"]
    card = data_card(post(client, OSIGN, body))
    text = card["summary"] + card["detail"]
    assert "DMAB-" not in text and "AR-" not in text and "Patient/" not in text and OTHER not in text


# --------------------------------------------------------------------------- projection

def test_every_read_element_is_an_r4b_element() -> None:
    from fhir.resources.R4B import get_fhir_model_class
    for rtype, elements in READ_ELEMENTS.items():
        fields = get_fhir_model_class(rtype).model_fields
        assert [e for e in elements if e not in fields] == [], rtype


def test_projection_keeps_only_read_elements_and_names_the_bad_one() -> None:
    obs = observation(CALCIUM_SERUM, 7.0, "mg/dL", "2026-11-20") | {"note": [{"text": "x"}], "foo": 1}
    fixed, reason, dropped = project(obs)
    assert fixed is not None and reason == "" and dropped == ()
    assert "note" not in fixed and "foo" not in fixed and fixed["valueQuantity"]["value"] == 7.0
    bad = copy.deepcopy(obs)
    bad["effectiveDateTime"] = "last Tuesday"
    fixed, reason, _ = project(bad)
    assert fixed is None and reason.startswith("invalid Observation.effectiveDateTime")
    assert "last Tuesday" not in reason   # the value may be patient data: never in the reason


def test_issued_is_read_only_without_an_effective_date() -> None:
    obs = observation(CALCIUM_SERUM, 7.0, "mg/dL", "2026-11-20") | {"issued": "yesterday"}
    assert project(obs)[0] is not None
    del obs["effectiveDateTime"]
    fixed, reason, _ = project(obs)
    assert fixed is None and "issued" in reason


def test_display_only_reference_range_is_dropped_not_fatal() -> None:
    obs = observation(CALCIUM_SERUM, 7.0, "mg/dL", "2026-11-20") | {"referenceRange": [{"low": "8.5"}]}
    fixed, reason, dropped = project(obs)
    assert fixed is not None and dropped == ("referenceRange",) and "referenceRange" not in fixed


def test_required_read_element_missing_is_unreadable() -> None:
    dose = administration(DMAB60, "2026-03-20")
    del dose["effectiveDateTime"]
    fixed, reason, _ = project(dose)
    assert fixed is None and "effectiveDateTime or effectivePeriod is required" in reason


def test_stu3_dose_quantity_in_dosage_instruction_is_repaired_not_lost() -> None:
    """Epic's sample MedicationRequest puts doseQuantity directly in dosageInstruction (STU3):
    repaired into doseAndRate (IOP-1), so the order and its dose stay readable."""
    d = draft(code=None, text="denosumab injection")
    d["dosageInstruction"] = [{"text": "once", "doseQuantity": {"value": 120, "unit": "mg",
                                                               "system": "http://unitsofmeasure.org",
                                                               "code": "mg"}}]
    fixed, reason, _ = project(d, draft=True)
    assert reason == "" and fixed["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] == 120
    chart = build_chart([], NOW, hook="order-sign", draft_orders=[d], identity=PatientIdentity(PID))
    assert chart.triggers[0].drug.regimen == "120mg" and chart.unreadable == []


def test_element_memo_never_confuses_values_that_print_alike_in_json() -> None:
    """The per-request memo keys on repr: NaN is not null, "7" is not 7 (verdicts differ)."""
    memo: dict = {}
    ok = observation(CALCIUM_SERUM, 7.0, "mg/dL", "2026-11-20")
    nan = copy.deepcopy(ok)
    nan["valueQuantity"]["value"] = float("nan")
    assert project(ok, memo=memo)[0] is not None
    assert project(nan, memo=memo)[0] is None
    status_num = copy.deepcopy(ok) | {"status": 7}
    assert project(status_num, memo=memo)[0] is None
