"""Builders of small FHIR R4 resources and hook calls for tests (one place, so tests stay short).

Every builder returns a plain dict as an EHR would send it. ``evaluate_rules`` runs the rule
engine directly on a chart (no HTTP, no prefetch), ``hook_request`` builds a full CDS Hooks
request with prefetch for the HTTP and pipeline tests.
"""

from __future__ import annotations

import itertools
import uuid
from datetime import date, datetime, timezone
from typing import Any, Iterable

from cards.engine import evaluate
from cards.registry import RuleInput
from cards.thresholds import DEFAULT_THRESHOLDS, Thresholds
from cds_service.chart import build_chart
from cds_service.chart.identity import PatientIdentity

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
CDT = "http://www.ada.org/cdt"
UCUM = "http://unitsofmeasure.org"
PID = "pat-1"
NOW = datetime(2026, 11, 23, 15, 0, tzinfo=timezone.utc)

_ids = itertools.count(1)

#: Handy codes (all from cds_service/data/codes.json).
DMAB60 = "993452"        # Prolia 60 mg
DMAB120 = "1046398"      # Xgeva 120 mg
DMAB_IN = "993449"       # denosumab ingredient
ZOL5 = "705824"          # zoledronic acid 5 mg/100 mL
ZOL4 = "1114085"         # zoledronic acid 4 mg/100 mL
ALENDRONATE = "904396"   # alendronate 70 mg tablet (sandbox list)
RISEDRONATE = "905028"
IBANDRONATE_ORAL = "904932"
CALCIUM_SERUM = "17861-6"
CALCIUM_IONIZED = "1995-0"
ALBUMIN = "1751-7"
EGFR = "98979-8"
VITD = "62292-8"
CREATININE = "2160-0"


def _id(prefix: str) -> str:
    return f"{prefix}-{next(_ids)}"


def iso(d: date | str) -> str:
    return d if isinstance(d, str) else d.isoformat()


def med_concept(code: str | None = None, text: str | None = None, display: str | None = None) -> dict[str, Any]:
    concept: dict[str, Any] = {}
    if code:
        coding = {"system": RXNORM, "code": code}
        if display:
            coding["display"] = display
        concept["coding"] = [coding]
    if text:
        concept["text"] = text
    return concept


def patient(birth: str | None = "1955-04-10", gender: str | None = "female", pid: str = PID) -> dict[str, Any]:
    body: dict[str, Any] = {"resourceType": "Patient", "id": pid}
    if birth:
        body["birthDate"] = birth
    if gender:
        body["gender"] = gender
    return body


def _dose(dose_mg: float | None) -> list[dict[str, Any]]:
    if dose_mg is None:
        return []
    return [{"doseAndRate": [{"doseQuantity": {"value": dose_mg, "unit": "mg", "system": UCUM, "code": "mg"}}]}]


def administration(code: str | None, when: date | str, *, status: str = "completed", text: str | None = None,
                   dose_mg: float | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"resourceType": "MedicationAdministration", "id": _id("ma"), "status": status,
                            "subject": {"reference": f"Patient/{PID}"}, "effectiveDateTime": iso(when),
                            "medicationCodeableConcept": med_concept(code, text)}
    if dose_mg is not None:
        body["dosage"] = {"dose": {"value": dose_mg, "unit": "mg", "system": UCUM, "code": "mg"}}
    return body


def dispense(code: str | None, when: date | str, *, status: str = "completed", days_supply: int | None = None,
             text: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"resourceType": "MedicationDispense", "id": _id("md"), "status": status,
                            "subject": {"reference": f"Patient/{PID}"}, "whenHandedOver": iso(when),
                            "medicationCodeableConcept": med_concept(code, text)}
    if days_supply is not None:
        body["daysSupply"] = {"value": days_supply, "unit": "d", "system": UCUM, "code": "d"}
    return body


def statement(code: str | None, start: date | str | None, *, status: str = "active", end: date | str | None = None,
              text: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"resourceType": "MedicationStatement", "id": _id("ms"), "status": status,
                            "subject": {"reference": f"Patient/{PID}"},
                            "medicationCodeableConcept": med_concept(code, text)}
    if start is not None:
        body["effectivePeriod"] = {"start": iso(start)} | ({"end": iso(end)} if end else {})
    return body


def request(code: str | None, authored: date | str | None, *, status: str = "active", text: str | None = None,
            dose_mg: float | None = None, period: tuple[float, str] | None = None,
            reason: Iterable[tuple[str, str]] = (), rid: str | None = None,
            status_reason: str | None = None) -> dict[str, Any]:
    """A MedicationRequest (history when status != draft; use :func:`draft` for hook drafts)."""
    body: dict[str, Any] = {"resourceType": "MedicationRequest", "id": rid or _id("mr"), "status": status,
                            "intent": "order", "subject": {"reference": f"Patient/{PID}"},
                            "medicationCodeableConcept": med_concept(code, text)}
    if authored is not None:
        body["authoredOn"] = iso(authored)
    dosage = _dose(dose_mg)
    if period is not None:
        dosage = dosage or [{}]
        dosage[0]["timing"] = {"repeat": {"frequency": 1, "period": period[0], "periodUnit": period[1]}}
    if dosage:
        body["dosageInstruction"] = dosage
    if reason:
        body["reasonCode"] = [{"coding": [{"system": s, "code": c}]} for s, c in reason]
    if status_reason:
        body["statusReason"] = {"text": status_reason}
    return body


def draft(code: str | None = DMAB60, *, text: str | None = None, dose_mg: float | None = None,
          period: tuple[float, str] | None = None, reason: Iterable[tuple[str, str]] = (),
          rid: str | None = None) -> dict[str, Any]:
    """A draft MedicationRequest as in ``context.draftOrders``."""
    return request(code, None, status="draft", text=text, dose_mg=dose_mg, period=period, reason=reason,
                   rid=rid or _id("draft"))


def observation(code: str, value: float | None, unit: str | None, when: date | str, *, status: str = "final",
                ucum: bool = True, comparator: str | None = None, value_string: str | None = None,
                value_code: tuple[str, str] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"resourceType": "Observation", "id": _id("obs"), "status": status,
                            "code": {"coding": [{"system": LOINC, "code": code}]},
                            "subject": {"reference": f"Patient/{PID}"}, "effectiveDateTime": iso(when)}
    if value is not None:
        q: dict[str, Any] = {"value": value}
        if unit:
            q["unit"] = unit
            if ucum:
                q["system"], q["code"] = UCUM, unit
        if comparator:
            q["comparator"] = comparator
        body["valueQuantity"] = q
    if value_string is not None:
        body["valueString"] = value_string
    if value_code is not None:
        body["valueCodeableConcept"] = {"coding": [{"system": value_code[0], "code": value_code[1]}]}
    return body


def condition(code: str | None, system: str = SNOMED, *, clinical: str | None = "active", text: str | None = None,
              onset: date | str | None = None, recorded: date | str | None = None,
              verification: str | None = None, abatement: date | str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"resourceType": "Condition", "id": _id("cond"),
                            "subject": {"reference": f"Patient/{PID}"}, "code": {}}
    if code:
        body["code"]["coding"] = [{"system": system, "code": code}]
    if text:
        body["code"]["text"] = text
    if clinical:
        body["clinicalStatus"] = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                              "code": clinical}]}
    if verification:
        body["verificationStatus"] = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                                                  "code": verification}]}
    if onset:
        body["onsetDateTime"] = iso(onset)
    if recorded:
        body["recordedDate"] = iso(recorded)
    if abatement:
        body["abatementDateTime"] = iso(abatement)
    return body


def procedure(code: str, system: str = SNOMED, when: date | str | None = None, *, status: str = "completed",
              text: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"resourceType": "Procedure", "id": _id("proc"), "status": status,
                            "subject": {"reference": f"Patient/{PID}"},
                            "code": {"coding": [{"system": system, "code": code}]}}
    if text:
        body["code"]["text"] = text
    if when:
        body["performedDateTime"] = iso(when)
    return body


def searchset(resources: Iterable[dict[str, Any]]) -> dict[str, Any]:
    entries = [{"resource": r} for r in resources]
    return {"resourceType": "Bundle", "type": "searchset", "total": len(entries), "entry": entries}


def evaluate_rules(resources: Iterable[dict[str, Any]], *, hook: str = "order-sign",
                   drafts: Iterable[dict[str, Any]] = (), selections: Iterable[str] | None = None,
                   now: datetime = NOW, thresholds: Thresholds = DEFAULT_THRESHOLDS,
                   unavailable: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Cards (as JSON) for ``resources`` and draft orders, straight through chart and engine."""
    drafts = list(drafts)
    if selections is None:
        selections = [f"MedicationRequest/{d['id']}" for d in drafts]
    chart = build_chart(list(resources), now, hook=hook, draft_orders=drafts, selections=selections,
                        zone=thresholds.zone, future_skew_minutes=thresholds.future_skew_minutes,
                        unavailable=unavailable, identity=PatientIdentity(PID))
    result = evaluate(RuleInput(chart=chart, hook=hook, now=now, thresholds=thresholds,
                                patient_id=PID, user_id="Practitioner/prac-1"))
    return [c.to_json() for c in result.cards]


#: The merged work-up card's extension naming the member rules it replaced (RULES.md §1.1, A12).
MEMBERS_EXTENSION = "urn:bone-safety-cds:members"


def rule_ids(cards: Iterable[dict[str, Any]]) -> list[str]:
    """Rule IDs of card JSONs; a merged work-up card (A12) counts as its own ID followed by each
    member rule it replaced, so a member finding is "in the answer" whether it has its own card
    or sits in the merged one (:func:`card_ids` gives the cards' own IDs only)."""
    out: list[str] = []
    for c in cards:
        out.append(c["source"]["topic"]["code"])
        out += c.get("extension", {}).get(MEMBERS_EXTENSION, [])
    return out


def card_ids(cards: Iterable[dict[str, Any]]) -> list[str]:
    """The ``source.topic.code`` of each card, merged cards not expanded."""
    return [c["source"]["topic"]["code"] for c in cards]


def card_for(cards: Iterable[dict[str, Any]], rule_id: str) -> dict[str, Any] | None:
    return next((c for c in cards if c["source"]["topic"]["code"] == rule_id), None)


def split_prefetch(resources: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Prefetch values keyed as the services declare them (hooks/services.py)."""
    keys = {"MedicationRequest": "medicationRequests", "MedicationAdministration": "medicationAdministrations",
            "MedicationStatement": "medicationStatements", "MedicationDispense": "medicationDispenses",
            "Observation": "observations", "Condition": "conditions", "Procedure": "procedures"}
    buckets: dict[str, list[dict[str, Any]]] = {k: [] for k in keys.values()}
    prefetch: dict[str, Any] = {"patient": None}
    for r in resources:
        if r["resourceType"] == "Patient":
            prefetch["patient"] = r
        else:
            buckets[keys[r["resourceType"]]].append(r)
    prefetch.update({k: searchset(v) for k, v in buckets.items()})
    return prefetch


def hook_request(hook: str, resources: Iterable[dict[str, Any]] = (), *, drafts: Iterable[dict[str, Any]] = (),
                 selections: Iterable[str] | None = None, prefetch: bool = True) -> dict[str, Any]:
    """A full CDS Hooks request body for ``hook`` with every prefetch key filled (or none)."""
    drafts = list(drafts)
    context: dict[str, Any] = {"userId": "Practitioner/prac-1", "patientId": PID}
    if hook != "patient-view":
        context["draftOrders"] = {"resourceType": "Bundle", "type": "collection",
                                  "entry": [{"resource": d} for d in drafts]}
    if hook == "order-select":
        context["selections"] = list(selections) if selections is not None else \
            [f"MedicationRequest/{d['id']}" for d in drafts]
    body: dict[str, Any] = {"hook": hook, "hookInstance": str(uuid.uuid4()), "context": context}
    if prefetch:
        body["prefetch"] = split_prefetch(resources)
    return body
