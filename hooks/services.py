"""The three CDS services, one per hook: discovery entries and prefetch templates.

Checklist DISC-1..7, PF-1..3 and RULES.md §1 "Prefetch contract": one template per query, all
for ``{{context.patientId}}``; medications without a code filter (text fallback, D3); one
Observation search limited to the LOINC codes of the lab, pregnancy and body-weight value sets
(the whole-blood calcium 49765-1 included, A36; body weight 29463-7 for Cockcroft-Gault, A10),
written out as ``system|code`` tokens; Condition and Procedure without a code filter; no status filters.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from cds_service.chart import ValueSets, default_value_sets

#: Page size asked of FHIR servers (PF-3 allows ``_count``); real servers default to 20.
PAGE_SIZE = 200


@dataclass(frozen=True)
class Service:
    """One discovery entry (DISC-3) and what the hook needs."""

    id: str
    hook: str
    title: str
    description: str
    prefetch: dict[str, str]
    #: prefetch keys without which no answer is safe (→ 412, PF-6); others degrade (see README)
    required_keys: frozenset[str]

    def discovery(self) -> dict[str, object]:
        return {"hook": self.hook, "id": self.id, "title": self.title,
                "description": self.description, "prefetch": dict(self.prefetch),
                "usageRequirements": "Send the prefetch keys, or fhirServer and fhirAuthorization "
                                     "for a FHIR server this service is configured to trust."}


def prefetch_templates(vs: ValueSets) -> dict[str, str]:
    """The prefetch templates shared by the three services (RULES.md §1)."""
    pid = "{{context.patientId}}"
    codes = ",".join(f"{c.system}|{c.code}" for c in vs.observation_codes())
    return {
        "patient": f"Patient/{pid}",
        "medicationRequests": f"MedicationRequest?patient={pid}&_count={PAGE_SIZE}",
        "medicationAdministrations": f"MedicationAdministration?patient={pid}&_count={PAGE_SIZE}",
        "medicationStatements": f"MedicationStatement?patient={pid}&_count={PAGE_SIZE}",
        "medicationDispenses": f"MedicationDispense?patient={pid}&_count={PAGE_SIZE}",
        # newest first: if a server's paging cuts the history short (max pages), the results
        # lost are the oldest, not the latest calcium (measured on sekmet-fhir, see README)
        "observations": f"Observation?patient={pid}&code={codes}&_sort=-date&_count={PAGE_SIZE}",
        "conditions": f"Condition?patient={pid}&_count={PAGE_SIZE}",
        "procedures": f"Procedure?patient={pid}&_count={PAGE_SIZE}",
    }


MEDICATION_KEYS = frozenset({"medicationRequests", "medicationAdministrations",
                             "medicationStatements", "medicationDispenses"})


@lru_cache(maxsize=1)
def services() -> tuple[Service, ...]:
    """The services in discovery order."""
    templates = prefetch_templates(default_value_sets())
    return (
        Service("bone-safety-patient-view", "patient-view",
                "Antiresorptive therapy follow-up (denosumab, bisphosphonates)",
                "On opening the chart of a patient on, or recently off, denosumab or a "
                "bisphosphonate: overdue or due denosumab doses and the rebound-fracture "
                "transition to zoledronic acid, missed 4-weekly oncology doses, low calcium "
                "after a recent dose, and long bisphosphonate courses due a drug-holiday review.",
                templates, required_keys=MEDICATION_KEYS),
        Service("bone-safety-order-select", "order-select",
                "Antiresorptive order safety (on selecting the order)",
                "When denosumab or a bisphosphonate is selected: calcium, kidney function, "
                "vitamin D, dental clearance, pregnancy, duplicates, dose and indication, "
                "oral bisphosphonate dose schedule and esophageal contraindications, "
                "osteonecrosis of the jaw and atypical femoral fracture history; missing "
                "pre-treatment items in one card.",
                templates, required_keys=frozenset()),
        Service("bone-safety-order-sign", "order-sign",
                "Antiresorptive order safety (before signing)",
                "Before denosumab or bisphosphonate orders are signed: the same safety checks as "
                "on selection, over every order of the session.",
                templates, required_keys=frozenset()),
    )


def service_by_id(service_id: str) -> Service | None:
    return next((s for s in services() if s.id == service_id), None)
