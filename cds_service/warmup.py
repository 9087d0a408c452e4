"""Start-up work done once, before serving (and before gunicorn forks its workers).

Loads the rules, value sets and the FHIR R4B element validators, runs one synthetic call of each
service so every validator is built, then freezes the garbage collector's view of these
long-lived objects: later full collections skip them (about 50 ms pauses on a heavy request
without it, measured with ``python -m bench``) and forked workers share the pages.
"""

from __future__ import annotations

import gc
import logging
import time
from datetime import datetime, timezone

from cards.registry import load_rules
from hooks.services import services

from .chart import default_value_sets
from .chart.projection import prepare
from .chart.verdicts import validate_r4b
from .pipeline import evaluate_hook

log = logging.getLogger("cds_service")

_RX = "http://www.nlm.nih.gov/research/umls/rxnorm"


def _synthetic_request(hook: str) -> dict:
    patient = {"resourceType": "Patient", "id": "warm-up", "birthDate": "1950-01-01", "gender": "female"}
    dose = {"resourceType": "MedicationAdministration", "id": "warm-up-dose", "status": "completed",
            "subject": {"reference": "Patient/warm-up"}, "effectiveDateTime": "2000-01-01",
            "medicationCodeableConcept": {"coding": [{"system": _RX, "code": "993452"}]}}
    calcium = {"resourceType": "Observation", "id": "warm-up-ca", "status": "final",
               "code": {"coding": [{"system": "http://loinc.org", "code": "17861-6"}]},
               "subject": {"reference": "Patient/warm-up"}, "effectiveDateTime": "2000-01-01",
               "valueQuantity": {"value": 9.4, "unit": "mg/dL", "system": "http://unitsofmeasure.org",
                                 "code": "mg/dL"}}
    draft = {"resourceType": "MedicationRequest", "id": "warm-up-draft", "status": "draft", "intent": "order",
             "subject": {"reference": "Patient/warm-up"},
             "medicationCodeableConcept": {"coding": [{"system": _RX, "code": "993452"}]}}
    bundle = lambda *rs: {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r} for r in rs]}  # noqa: E731
    empty = bundle()
    prefetch = {"patient": patient, "medicationRequests": empty, "medicationAdministrations": bundle(dose),
                "medicationStatements": empty, "medicationDispenses": empty, "observations": bundle(calcium),
                "conditions": empty, "procedures": empty}
    context: dict = {"userId": "Practitioner/warm-up", "patientId": "warm-up"}
    if hook != "patient-view":
        context["draftOrders"] = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": draft}]}
    if hook == "order-select":
        context["selections"] = ["MedicationRequest/warm-up-draft"]
    return {"hook": hook, "hookInstance": "warm-up", "context": context, "prefetch": prefetch}


_SUBJECT = {"reference": "Patient/warm-up"}
_DRUG = {"coding": [{"system": _RX, "code": "993452"}]}
_CODE = {"coding": [{"system": "http://snomed.info/sct", "code": "64859006"}]}
#: One minimal valid resource of each type the chart reads: building an R4B model class on first
#: use costs 5-20 ms, which the first request of each worker would otherwise pay.
_MINIMAL_RESOURCES = (
    {"resourceType": "Patient", "id": "w"},
    {"resourceType": "Medication", "id": "w", "code": _DRUG},
    {"resourceType": "MedicationRequest", "id": "w", "status": "active", "intent": "order",
     "medicationCodeableConcept": _DRUG, "subject": _SUBJECT},
    {"resourceType": "MedicationAdministration", "id": "w", "status": "completed",
     "medicationCodeableConcept": _DRUG, "subject": _SUBJECT, "effectiveDateTime": "2000-01-01"},
    {"resourceType": "MedicationStatement", "id": "w", "status": "active",
     "medicationCodeableConcept": _DRUG, "subject": _SUBJECT},
    {"resourceType": "MedicationDispense", "id": "w", "status": "completed",
     "medicationCodeableConcept": _DRUG, "whenHandedOver": "2000-01-01"},
    {"resourceType": "Observation", "id": "w", "status": "final", "code": _CODE},
    {"resourceType": "Condition", "id": "w", "subject": _SUBJECT, "code": _CODE},
    {"resourceType": "Procedure", "id": "w", "status": "completed", "subject": _SUBJECT, "code": _CODE},
)


def warm_up(*, freeze: bool = True) -> float:
    """Do the start-up work; returns the seconds it took."""
    t0 = time.perf_counter()
    load_rules()
    default_value_sets()
    now = datetime(2000, 6, 1, 12, tzinfo=timezone.utc)
    for service in services():
        evaluate_hook(service, _synthetic_request(service.hook), now=now)
    prepare()   # every R4B element validator the chart uses, built now
    for resource in _MINIMAL_RESOURCES:
        validate_r4b(resource)
    if freeze:
        gc.collect()
        gc.freeze()
    took = time.perf_counter() - t0
    log.info("warmed up in %.0f ms", took * 1000)
    return took
