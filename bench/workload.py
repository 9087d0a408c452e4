"""Seeded, reproducible benchmark workloads: FHIR R4 data of a typical and a heavy patient and the
CDS Hooks requests of the three services (patient-view, order-select, order-sign) over them.

Everything is derived from ``random.Random(seed)`` and an ``anchor`` date (the evaluation day):
the same (seed, anchor) gives byte-identical request bodies. Nothing here imports from
``tests/``; resources are plain dicts as an EHR would send them.

* typical: ~50 lab Observations over 2 years (calcium, albumin, eGFR, vitamin D, creatinine,
  magnesium, phosphate), 10 medication records (denosumab 60 mg administrations every 6 months,
  the active denosumab order, calcium and vitamin D supplements, a few unrelated drugs),
  3 Conditions, 2 Procedures.
* heavy: 500 lab Observations over 4 years, 100 medication records (25 of each of
  MedicationRequest, MedicationAdministration, MedicationStatement, MedicationDispense: antiresorptive
  history, supplements, a calcimimetic and many unrelated drugs), 50 Conditions, 10 Procedures.

The prefetch is keyed exactly as ``hooks/services.py`` declares it (``patient`` a Patient, every
other key a ``searchset`` Bundle), so a request needs no FHIR server. :func:`resources_by_type`
gives the same data to the benchmark's stub FHIR server (the fallback path).
"""

from __future__ import annotations

import itertools
import json
import random
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Callable, Iterable

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
CDT = "http://www.ada.org/cdt"
UCUM = "http://unitsofmeasure.org"
FHIR_BASE = "https://ehr.example.org/fhir"

#: The evaluation day the workloads are anchored to unless the caller passes another.
DEFAULT_ANCHOR = date(2026, 11, 23)
DEFAULT_SEED = 20261123

HOOKS = ("patient-view", "order-select", "order-sign")
SERVICE_IDS = {"patient-view": "bone-safety-patient-view", "order-select": "bone-safety-order-select",
               "order-sign": "bone-safety-order-sign"}
#: Prefetch key per resource type, as hooks/services.py declares them.
PREFETCH_KEYS = {"Patient": "patient", "MedicationRequest": "medicationRequests",
                 "MedicationAdministration": "medicationAdministrations",
                 "MedicationStatement": "medicationStatements",
                 "MedicationDispense": "medicationDispenses", "Observation": "observations",
                 "Condition": "conditions", "Procedure": "procedures"}

# ------------------------------------------------------------------ code tables (codes.json)

DMAB60 = ("993452", "1 ML denosumab 60 MG/ML Prefilled Syringe [Prolia]")
ZOL5 = ("705824", "100 ML zoledronic acid 0.05 MG/ML Injection [Reclast]")
ALENDRONATE = ("904431", "alendronic acid 70 MG Oral Tablet")
CALCIUM_CARB = ("1897", "calcium carbonate")
CHOLECALCIFEROL = ("2418", "cholecalciferol")
CALCITRIOL = ("1894", "calcitriol")
CINACALCET = ("432402", "cinacalcet 30 MG Oral Tablet")
#: Drugs none of the rules look at (classified as "none of ours", so cheap for the chart).
UNRELATED_DRUGS = (
    ("314076", "lisinopril 10 MG Oral Tablet"), ("617310", "atorvastatin 20 MG Oral Tablet"),
    ("861007", "metformin hydrochloride 500 MG Oral Tablet"), ("197361", "amlodipine 5 MG Oral Tablet"),
    ("198211", "simvastatin 40 MG Oral Tablet"), ("310798", "hydrochlorothiazide 25 MG Oral Tablet"),
    ("966247", "levothyroxine sodium 0.075 MG Oral Tablet"), ("198053", "omeprazole 20 MG Oral Capsule"),
    ("313782", "acetaminophen 325 MG Oral Tablet"), ("855332", "warfarin sodium 5 MG Oral Tablet"),
    ("1719286", "ceftriaxone 1000 MG Injection"), ("1807632", "ondansetron 4 MG Injection"),
)

#: (LOINC, display, unit, typical low, typical high, decimals)
LABS = {
    "calcium": ("17861-6", "Calcium [Mass/volume] in Serum or Plasma", "mg/dL", 8.3, 10.3, 1),
    "albumin": ("1751-7", "Albumin [Mass/volume] in Serum or Plasma", "g/dL", 3.2, 4.8, 1),
    "egfr": ("98979-8", "Glomerular filtration rate/1.73 sq M.predicted [Volume Rate/Area] in Serum, "
                        "Plasma or Blood by Creatinine-based formula (CKD-EPI 2021)", "mL/min/{1.73_m2}", 28, 75, 0),
    "vitd": ("62292-8", "25-Hydroxyvitamin D2+25-Hydroxyvitamin D3 [Mass/volume] in Serum or Plasma",
             "ng/mL", 18, 48, 1),
    "creatinine": ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL", 0.7, 1.9, 2),
    "magnesium": ("19123-9", "Magnesium [Mass/volume] in Serum or Plasma", "mg/dL", 1.6, 2.5, 1),
    "phosphate": ("2777-1", "Phosphate [Mass/volume] in Serum or Plasma", "mg/dL", 2.4, 4.8, 1),
    "pth": ("2731-8", "Parathyrin.intact [Mass/volume] in Serum or Plasma", "pg/mL", 15, 120, 1),
}

#: (system, code, display, in one of our value sets?)
CONDITIONS_OURS = (
    (SNOMED, "64859006", "Osteoporosis (disorder)"),
    (SNOMED, "102447009", "Postmenopausal osteoporosis (disorder)"),
    (SNOMED, "431857002", "Chronic kidney disease stage 4 (disorder)"),
    (ICD10, "E83.51", "Hypocalcemia"),
    (SNOMED, "36976004", "Hypoparathyroidism (disorder)"),
    (SNOMED, "68566005", "Urinary tract infectious disease (disorder)"),
)
CONDITIONS_OTHER = (
    (SNOMED, "38341003", "Hypertensive disorder, systemic arterial (disorder)"),
    (SNOMED, "44054006", "Diabetes mellitus type 2 (disorder)"),
    (SNOMED, "55822004", "Hyperlipidemia (disorder)"),
    (SNOMED, "40930008", "Hypothyroidism (disorder)"),
    (SNOMED, "49436004", "Atrial fibrillation (disorder)"),
    (SNOMED, "235595009", "Gastroesophageal reflux disease (disorder)"),
    (SNOMED, "239873007", "Osteoarthritis of knee (disorder)"),
    (SNOMED, "35489007", "Depressive disorder (disorder)"),
    (ICD10, "I10", "Essential (primary) hypertension"),
    (ICD10, "E78.5", "Hyperlipidemia, unspecified"),
)
PROCEDURES_OURS = (
    (CDT, "D0120", "periodic oral evaluation - established patient"),
    (CDT, "D0150", "comprehensive oral evaluation - new or established patient"),
    (SNOMED, "55162003", "Tooth extraction (procedure)"),
)
PROCEDURES_OTHER = (
    (SNOMED, "73761001", "Colonoscopy (procedure)"),
    (SNOMED, "241615005", "Magnetic resonance imaging of knee (procedure)"),
    (SNOMED, "312681000", "Bone density scan (procedure)"),
)


# ------------------------------------------------------------------ the generator


class _Gen:
    """Resource builders sharing one RNG, one patient id and one id counter."""

    def __init__(self, rng: random.Random, anchor: date, pid: str) -> None:
        self.rng = rng
        self.anchor = anchor
        self.pid = pid
        self.n = 0

    def id(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}-{self.pid}-{self.n:04d}"

    def days_ago(self, days: int) -> date:
        return self.anchor - timedelta(days=days)

    def dt(self, d: date) -> str:
        """A FHIR dateTime on day ``d`` at a pseudo-random clinic hour (UTC offset included)."""
        hour, minute = self.rng.randint(7, 17), self.rng.choice((0, 10, 15, 20, 30, 40, 45, 50))
        return datetime.combine(d, time(hour, minute), tzinfo=timezone.utc).isoformat().replace("+00:00", "Z")

    def subject(self) -> dict[str, Any]:
        return {"reference": f"Patient/{self.pid}"}

    def meta(self, d: date) -> dict[str, Any]:
        return {"versionId": str(self.rng.randint(1, 4)), "lastUpdated": self.dt(d)}

    # ---- patient
    def patient(self, birth: date, gender: str) -> dict[str, Any]:
        return {"resourceType": "Patient", "id": self.pid, "meta": self.meta(self.days_ago(400)),
                "identifier": [{"system": "urn:oid:2.16.840.1.113883.3.9999.1", "value": f"MRN{self.rng.randint(10**6, 10**7 - 1)}"}],
                "active": True, "name": [{"use": "official", "family": "Benchmark", "given": ["Pat"]}],
                "gender": gender, "birthDate": birth.isoformat(),
                "address": [{"city": "Springfield", "postalCode": "00000", "country": "US"}]}

    # ---- medications
    def _concept(self, drug: tuple[str, str], text: str | None = None) -> dict[str, Any]:
        return {"coding": [{"system": RXNORM, "code": drug[0], "display": drug[1]}], "text": text or drug[1]}

    def _dosage(self, mg: float | None, route: tuple[str, str] | None, period: tuple[int, str] | None,
                text: str | None = None) -> dict[str, Any]:
        d: dict[str, Any] = {"sequence": 1}
        if text:
            d["text"] = text
        if period:
            d["timing"] = {"repeat": {"frequency": 1, "period": period[0], "periodUnit": period[1]}}
        if route:
            d["route"] = {"coding": [{"system": SNOMED, "code": route[0], "display": route[1]}]}
        if mg is not None:
            d["doseAndRate"] = [{"doseQuantity": {"value": mg, "unit": "mg", "system": UCUM, "code": "mg"}}]
        return d

    def administration(self, drug: tuple[str, str], d: date, mg: float | None, route: tuple[str, str] | None,
                       status: str = "completed") -> dict[str, Any]:
        body: dict[str, Any] = {
            "resourceType": "MedicationAdministration", "id": self.id("ma"), "meta": self.meta(d),
            "status": status, "medicationCodeableConcept": self._concept(drug), "subject": self.subject(),
            "context": {"reference": f"Encounter/enc-{self.pid}-{self.rng.randint(1000, 9999)}"},
            "effectiveDateTime": self.dt(d),
            "performer": [{"actor": {"reference": "Practitioner/nurse-1"}}]}
        dosage: dict[str, Any] = {}
        if route:
            dosage["route"] = {"coding": [{"system": SNOMED, "code": route[0], "display": route[1]}]}
        if mg is not None:
            dosage["dose"] = {"value": mg, "unit": "mg", "system": UCUM, "code": "mg"}
        if dosage:
            body["dosage"] = dosage
        return body

    def request(self, drug: tuple[str, str], d: date, *, status: str = "active", mg: float | None = None,
                route: tuple[str, str] | None = None, period: tuple[int, str] | None = None,
                reason: tuple[str, str, str] | None = None, text: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "resourceType": "MedicationRequest", "id": self.id("mr"), "meta": self.meta(d), "status": status,
            "intent": "order", "medicationCodeableConcept": self._concept(drug), "subject": self.subject(),
            "authoredOn": self.dt(d), "requester": {"reference": "Practitioner/prac-1"},
            "dosageInstruction": [self._dosage(mg, route, period, text)]}
        if reason:
            body["reasonCode"] = [{"coding": [{"system": reason[0], "code": reason[1], "display": reason[2]}]}]
        return body

    def statement(self, drug: tuple[str, str], start: date, *, status: str = "active",
                  end: date | None = None) -> dict[str, Any]:
        period = {"start": start.isoformat()} | ({"end": end.isoformat()} if end else {})
        return {"resourceType": "MedicationStatement", "id": self.id("ms"), "meta": self.meta(start),
                "status": status, "medicationCodeableConcept": self._concept(drug), "subject": self.subject(),
                "effectivePeriod": period, "dateAsserted": start.isoformat(),
                "dosage": [{"text": "1 tablet by mouth daily",
                            "route": {"coding": [{"system": SNOMED, "code": "26643006", "display": "Oral route"}]}}]}

    def dispense(self, drug: tuple[str, str], d: date, days_supply: int, *, status: str = "completed") -> dict[str, Any]:
        return {"resourceType": "MedicationDispense", "id": self.id("md"), "meta": self.meta(d), "status": status,
                "medicationCodeableConcept": self._concept(drug), "subject": self.subject(),
                "quantity": {"value": days_supply, "unit": "tablet"},
                "daysSupply": {"value": days_supply, "unit": "d", "system": UCUM, "code": "d"},
                "whenHandedOver": self.dt(d),
                "dosageInstruction": [{"text": "1 tablet by mouth daily"}]}

    # ---- labs, conditions, procedures
    def observation(self, lab: str, d: date) -> dict[str, Any]:
        loinc, display, unit, low, high, places = LABS[lab]
        span = high - low
        value = round(self.rng.uniform(low - 0.05 * span, high + 0.05 * span), places)
        if places == 0:
            value = int(value)
        body: dict[str, Any] = {
            "resourceType": "Observation", "id": self.id("obs"), "meta": self.meta(d), "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                      "code": "laboratory", "display": "Laboratory"}]}],
            "code": {"coding": [{"system": LOINC, "code": loinc, "display": display}], "text": display},
            "subject": self.subject(), "effectiveDateTime": self.dt(d), "issued": self.dt(d).replace("Z", ".000Z"),
            "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit},
            "referenceRange": [{"low": {"value": low, "unit": unit, "system": UCUM, "code": unit},
                                "high": {"value": high, "unit": unit, "system": UCUM, "code": unit}}]}
        if value < low or value > high:
            code = "L" if value < low else "H"
            body["interpretation"] = [{"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": code}]}]
        return body

    def condition(self, code: tuple[str, str, str], onset: date, *, clinical: str = "active") -> dict[str, Any]:
        return {"resourceType": "Condition", "id": self.id("cond"), "meta": self.meta(onset),
                "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                               "code": clinical}]},
                "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                                                   "code": "confirmed"}]},
                "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-category",
                                          "code": "problem-list-item"}]}],
                "code": {"coding": [{"system": code[0], "code": code[1], "display": code[2]}], "text": code[2]},
                "subject": self.subject(), "onsetDateTime": onset.isoformat(), "recordedDate": onset.isoformat()}

    def procedure(self, code: tuple[str, str, str], d: date) -> dict[str, Any]:
        return {"resourceType": "Procedure", "id": self.id("proc"), "meta": self.meta(d), "status": "completed",
                "code": {"coding": [{"system": code[0], "code": code[1], "display": code[2]}], "text": code[2]},
                "subject": self.subject(), "performedDateTime": self.dt(d)}

    def labs_over(self, counts: dict[str, int], days: int) -> list[dict[str, Any]]:
        """``counts[lab]`` results of each lab spread evenly over ``days`` (jittered), newest last."""
        out = []
        for lab, n in counts.items():
            step = days / n
            for i in range(n):
                ago = int(days - i * step - self.rng.uniform(0, step * 0.5))
                out.append(self.observation(lab, self.days_ago(max(1, ago))))
        return out


SC = ("34206005", "Subcutaneous route")
IV = ("47625008", "Intravenous route")
ORAL = ("26643006", "Oral route")
OSTEOPOROSIS = (SNOMED, "64859006", "Osteoporosis (disorder)")


def typical_patient(rng: random.Random, anchor: date, pid: str = "bench-typical") -> list[dict[str, Any]]:
    """50 Observations over 2 years, 10 medication records, 3 Conditions, 2 Procedures: a patient on
    denosumab 60 mg whose next dose is due, with a pre-dose calcium/albumin/eGFR a few days old."""
    g = _Gen(rng, anchor, pid)
    out: list[dict[str, Any]] = [g.patient(date(1951, 3, 14), "female")]
    out += g.labs_over({"calcium": 11, "albumin": 9, "egfr": 7, "creatinine": 8, "vitd": 4,
                        "magnesium": 4, "phosphate": 4}, 730)
    pre_dose = g.days_ago(rng.randint(5, 20))            # the pre-dose check: calcium, albumin, eGFR
    out += [g.observation(lab, pre_dose) for lab in ("calcium", "albumin", "egfr")]
    # denosumab 60 mg every 6 months, the next one due now (last ~6 months ago), the standing order
    # written before the first dose, calcium and vitamin D supplements
    last = rng.randint(172, 185)
    for k in range(4):
        out.append(g.administration(DMAB60, g.days_ago(last + 182 * k + rng.randint(-5, 5)), 60, SC))
    out.append(g.request(DMAB60, g.days_ago(last + 3 * 182 + 10), mg=60, route=SC, period=(6, "mo"),
                         reason=OSTEOPOROSIS))
    out.append(g.statement(CALCIUM_CARB, g.days_ago(700)))
    out.append(g.statement(CHOLECALCIFEROL, g.days_ago(700)))
    out.append(g.dispense(CHOLECALCIFEROL, g.days_ago(rng.randint(20, 60)), 90))
    out.append(g.request(rng.choice(UNRELATED_DRUGS), g.days_ago(rng.randint(30, 400)), mg=10, route=ORAL,
                         period=(1, "d")))
    out.append(g.statement(rng.choice(UNRELATED_DRUGS), g.days_ago(rng.randint(100, 700))))
    out.append(g.condition(OSTEOPOROSIS, g.days_ago(900)))
    out.append(g.condition(CONDITIONS_OTHER[0], g.days_ago(2000)))
    out.append(g.condition(CONDITIONS_OTHER[2], g.days_ago(1500)))
    out.append(g.procedure(PROCEDURES_OURS[0], g.days_ago(rng.randint(200, 300))))
    out.append(g.procedure(PROCEDURES_OTHER[2], g.days_ago(rng.randint(300, 500))))
    return out


def heavy_patient(rng: random.Random, anchor: date, pid: str = "bench-heavy") -> list[dict[str, Any]]:
    """500 Observations over 4 years, 100 medication records (25 per type), 50 Conditions, 10 Procedures."""
    g = _Gen(rng, anchor, pid)
    days = 4 * 365
    out: list[dict[str, Any]] = [g.patient(date(1946, 8, 2), "female")]
    out += g.labs_over({"calcium": 120, "albumin": 100, "egfr": 80, "creatinine": 80, "vitd": 16,
                        "magnesium": 40, "phosphate": 40, "pth": 24}, days)
    last = rng.randint(150, 170)
    dmab_dates = [g.days_ago(last + 182 * k + rng.randint(-7, 7)) for k in range(8)]
    # MedicationAdministration x25: 8 denosumab, 2 zoledronic acid (before denosumab), 15 unrelated
    admins = [g.administration(DMAB60, d, 60, SC) for d in dmab_dates]
    admins += [g.administration(ZOL5, g.days_ago(days + 365 * k + rng.randint(0, 20)), 5, IV) for k in (0, 1)]
    admins += [g.administration(rng.choice(UNRELATED_DRUGS[10:]), g.days_ago(rng.randint(10, days)), 4, IV)
               for _ in range(15)]
    # MedicationRequest x25: 8 denosumab (the latest active), 2 alendronate (stopped), 4 supplements, 11 other
    reqs = [g.request(DMAB60, d - timedelta(days=10), status="active" if i == 0 else "completed", mg=60,
                      route=SC, period=(6, "mo"), reason=OSTEOPOROSIS) for i, d in enumerate(dmab_dates)]
    reqs += [g.request(ALENDRONATE, g.days_ago(days + 400 + 30 * k), status="stopped", mg=70, route=ORAL,
                       period=(1, "wk")) for k in range(2)]
    reqs += [g.request(drug, g.days_ago(rng.randint(30, days)), status=rng.choice(("active", "completed")),
                       route=ORAL, period=(1, "d")) for drug in (CALCIUM_CARB, CHOLECALCIFEROL, CALCITRIOL, CINACALCET)]
    reqs += [g.request(rng.choice(UNRELATED_DRUGS[:10]), g.days_ago(rng.randint(10, days)),
                       status=rng.choice(("active", "completed", "stopped")), mg=10, route=ORAL, period=(1, "d"))
             for _ in range(11)]
    # MedicationStatement x25: supplements, calcitriol, cinacalcet, past alendronate, 19 other
    stmts = [g.statement(CALCIUM_CARB, g.days_ago(days)), g.statement(CHOLECALCIFEROL, g.days_ago(days)),
             g.statement(CALCITRIOL, g.days_ago(700)), g.statement(CINACALCET, g.days_ago(500)),
             g.statement(ALENDRONATE, g.days_ago(days + 1200), status="completed", end=g.days_ago(days + 30)),
             g.statement(ALENDRONATE, g.days_ago(days + 2000), status="stopped", end=g.days_ago(days + 1300))]
    stmts += [g.statement(rng.choice(UNRELATED_DRUGS[:10]), g.days_ago(rng.randint(30, days)),
                          status=rng.choice(("active", "completed", "stopped"))) for _ in range(19)]
    # MedicationDispense x25: calcium and vitamin D every ~6 months, 9 other
    disp = [g.dispense(CALCIUM_CARB if k % 2 else CHOLECALCIFEROL, g.days_ago(20 + 90 * k + rng.randint(0, 10)), 90)
            for k in range(16)]
    disp += [g.dispense(rng.choice(UNRELATED_DRUGS[:10]), g.days_ago(rng.randint(10, days)), 30) for _ in range(9)]
    out += admins + reqs + stmts + disp
    # Condition x50: 10 in our value sets, 40 other (some resolved)
    for i in range(10):
        code = CONDITIONS_OURS[i % len(CONDITIONS_OURS)]
        clinical = "resolved" if code[1] in ("68566005", "E83.51") else "active"
        out.append(g.condition(code, g.days_ago(rng.randint(60, 3000)), clinical=clinical))
    for _ in range(40):
        out.append(g.condition(rng.choice(CONDITIONS_OTHER), g.days_ago(rng.randint(30, 5000)),
                               clinical=rng.choice(("active", "active", "resolved", "inactive"))))
    # Procedure x10
    for i in range(5):
        out.append(g.procedure(PROCEDURES_OURS[i % len(PROCEDURES_OURS)], g.days_ago(rng.randint(60, days))))
    for _ in range(5):
        out.append(g.procedure(rng.choice(PROCEDURES_OTHER), g.days_ago(rng.randint(30, days))))
    return out


PATIENTS = {"typical": typical_patient, "heavy": heavy_patient}


# ------------------------------------------------------------------ requests


def searchset(resources: Iterable[dict[str, Any]]) -> dict[str, Any]:
    entries = [{"fullUrl": f"{FHIR_BASE}/{r['resourceType']}/{r['id']}", "resource": r,
                "search": {"mode": "match"}} for r in resources]
    return {"resourceType": "Bundle", "type": "searchset", "total": len(entries),
            "link": [{"relation": "self", "url": f"{FHIR_BASE}/search"}], "entry": entries}


def resources_by_type(resources: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Resource type -> resources, every type of :data:`PREFETCH_KEYS` present (maybe empty)."""
    out: dict[str, list[dict[str, Any]]] = {t: [] for t in PREFETCH_KEYS}
    for r in resources:
        out[r["resourceType"]].append(r)
    return out


def prefetch_of(resources: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Every prefetch key of hooks/services.py filled: ``patient`` a Patient, the rest searchsets."""
    by_type = resources_by_type(resources)
    prefetch: dict[str, Any] = {"patient": by_type["Patient"][0] if by_type["Patient"] else None}
    for rtype, key in PREFETCH_KEYS.items():
        if rtype != "Patient":
            prefetch[key] = searchset(by_type[rtype])
    return prefetch


def denosumab_draft(rng: random.Random, pid: str) -> dict[str, Any]:
    """A draft denosumab 60 mg order as an EHR sends it in ``context.draftOrders``."""
    return {"resourceType": "MedicationRequest", "id": f"draft-dmab-{rng.randint(10**5, 10**6 - 1)}",
            "status": "draft", "intent": "order",
            "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": DMAB60[0], "display": DMAB60[1]}],
                                          "text": "Prolia 60 mg/mL prefilled syringe"},
            "subject": {"reference": f"Patient/{pid}"},
            "dosageInstruction": [{"text": "60 mg subcutaneously every 6 months",
                                   "timing": {"repeat": {"frequency": 1, "period": 6, "periodUnit": "mo"}},
                                   "route": {"coding": [{"system": SNOMED, "code": SC[0], "display": SC[1]}]},
                                   "doseAndRate": [{"doseQuantity": {"value": 60, "unit": "mg", "system": UCUM,
                                                                     "code": "mg"}}]}],
            "reasonCode": [{"coding": [{"system": OSTEOPOROSIS[0], "code": OSTEOPOROSIS[1],
                                        "display": OSTEOPOROSIS[2]}]}]}


def hook_body(hook: str, pid: str, rng: random.Random, *, prefetch: dict[str, Any] | None,
              fhir_server: str | None = None, token: str | None = None) -> dict[str, Any]:
    """A CDS Hooks 2.0 request for ``hook`` (order hooks carry one denosumab 60 mg draft)."""
    context: dict[str, Any] = {"userId": "Practitioner/prac-1", "patientId": pid,
                               "encounterId": f"enc-{pid}"}
    if hook != "patient-view":
        draft = denosumab_draft(rng, pid)
        context["draftOrders"] = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": draft}]}
        if hook == "order-select":
            context["selections"] = [f"MedicationRequest/{draft['id']}"]
    body: dict[str, Any] = {"hook": hook, "hookInstance": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                            "context": context}
    if fhir_server is not None:
        body["fhirServer"] = fhir_server
        if token is not None:
            body["fhirAuthorization"] = {"access_token": token, "token_type": "Bearer", "expires_in": 300,
                                         "scope": "patient/*.read", "subject": "bone-safety-cds"}
    if prefetch is not None:
        body["prefetch"] = prefetch
    return body


@dataclass(frozen=True)
class Workload:
    """One benchmark case: a patient and a hook, with the request body (full prefetch) as bytes."""

    patient: str                       # "typical" | "heavy"
    hook: str
    service_id: str
    pid: str
    body: bytes                        # JSON request with every prefetch key
    resources: tuple[dict[str, Any], ...] = field(repr=False, default=())

    @property
    def name(self) -> str:
        return f"{self.patient}/{self.hook}"

    def counts(self) -> dict[str, int]:
        by = resources_by_type(self.resources)
        return {t: len(v) for t, v in by.items()}

    def no_prefetch_body(self, fhir_server: str, token: str = "bench-token") -> bytes:
        """The same call without prefetch, naming ``fhir_server`` (the fallback path)."""
        body = json.loads(self.body)
        body.pop("prefetch", None)
        body["fhirServer"] = fhir_server
        body["fhirAuthorization"] = {"access_token": token, "token_type": "Bearer", "expires_in": 300,
                                     "scope": "patient/*.read", "subject": "bone-safety-cds"}
        return json.dumps(body, separators=(",", ":")).encode()

    def new_patients(self) -> "Callable[[], bytes]":
        """A thread-safe source of this request for a new patient each call: the patient id (in
        ids, references and context) gets a fresh suffix, so every resource is new to the service
        and nothing is served from its validation cache; the clinical content is unchanged."""
        pid = self.pid.encode()
        body = self.body

        def next_body() -> bytes:
            return body.replace(pid, pid + b"-%07d" % next(_NEW_PATIENT))
        return next_body


#: numbers the "new patient" variants, unique across workloads and runs in this process
_NEW_PATIENT = itertools.count(1)


def build_workloads(seed: int = DEFAULT_SEED, anchor: date = DEFAULT_ANCHOR,
                    patients: Iterable[str] = ("typical", "heavy"), hooks: Iterable[str] = HOOKS) -> list[Workload]:
    """The workloads of ``patients`` x ``hooks``; deterministic for (seed, anchor)."""
    out = []
    for p_index, patient in enumerate(patients):
        # one RNG per patient, so adding a patient kind never changes another's data
        rng = random.Random(f"{seed}:{patient}:{p_index}")
        pid = f"bench-{patient}"
        resources = PATIENTS[patient](rng, anchor, pid)
        prefetch = prefetch_of(resources)
        for hook in hooks:
            hrng = random.Random(f"{seed}:{patient}:{hook}")
            body = hook_body(hook, pid, hrng, prefetch=prefetch)
            out.append(Workload(patient, hook, SERVICE_IDS[hook], pid,
                                json.dumps(body, separators=(",", ":")).encode(), tuple(resources)))
    return out


__all__ = ["Workload", "build_workloads", "resources_by_type", "prefetch_of", "searchset", "hook_body",
           "DEFAULT_SEED", "DEFAULT_ANCHOR", "HOOKS", "SERVICE_IDS", "PREFETCH_KEYS"]
