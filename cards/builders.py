"""Suggestion resources, override reasons and evidence links (RULES.md §6).

Suggestions are FHIR R4 resources ready to become draft orders: ``ServiceRequest`` for a dental
evaluation or a lab, ``MedicationRequest`` for denosumab, zoledronic acid or calcium + vitamin D,
each with ``status: draft``, ``intent: order``, the patient as subject, ``authoredOn`` today and
the user as requester (§6.1).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any, Iterable

from .model import OVERRIDE_SYSTEM, Action, Coding, Link, Suggestion

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"

#: §6.3 override reason codes with the text a clinician picks (CARD-8 requires ``display``).
OVERRIDE_DISPLAY: dict[str, str] = {
    "dental-eval-done-elsewhere": "Dental evaluation done elsewhere",
    "edentulous": "Patient has no natural teeth",
    "urgent-treatment-benefit": "Urgent treatment: benefit outweighs waiting",
    "patient-declined": "Patient declined",
    "dose-given-elsewhere": "Dose given elsewhere",
    "dose-scheduled-elsewhere": "Dose already scheduled elsewhere",
    "transition-planned": "Transition already planned",
    "therapy-stopped": "Therapy deliberately stopped",
    "intentional-deescalation": "Intentional de-escalation of the interval",
    "specialist-decision": "Specialist decision",
    "specialist-supervised": "Specialist supervising",
    "nephrology-supervised": "Nephrology supervising",
    "monitoring-arranged": "Monitoring already arranged",
    "benefit-outweighs-risk": "Benefit outweighs risk",
    "repeat-result-normal": "Repeat result normal",
    "treating-hypocalcemia": "Hypocalcemia being treated",
    "repletion-in-progress": "Repletion in progress",
    "recent-result-elsewhere": "Recent result elsewhere",
    "result-elsewhere": "Result available elsewhere",
    "drawn-today": "Blood drawn today",
    "supplemented-empirically": "Supplemented empirically",
    "dietary-intake-adequate": "Dietary intake adequate",
    "taking-otc-supplement": "Taking an over-the-counter supplement",
    "hypercalcemia": "Patient has hypercalcemia",
    "pregnancy-excluded": "Pregnancy excluded",
    "result-error": "Result in error",
    "not-of-reproductive-potential": "Not of reproductive potential",
    "verified-verbally": "Pregnancy status verified verbally",
    "recent-test-elsewhere": "Recent test elsewhere",
    "skeletally-mature-gctb": "Skeletally mature, giant cell tumour of bone",
    "research-protocol": "Research protocol",
    "infection-resolved": "Infection resolved",
    "intended-regimen": "Regimen is intended",
    "indication-not-coded": "Indication present but not coded",
    "cancer-treatment-bone-loss": "Cancer treatment-induced bone loss",
    "previous-dose-not-given": "Previous dose was not given",
    "loading-dose": "Loading dose",
    "cancel-other-order": "Other order will be cancelled",
    "crcl-above-cutoff": "Creatinine clearance above the cut-off",
    "crcl-above-60": "Creatinine clearance above 60 mL/min",
    "acute-value-recovered": "Acute value has recovered",
    "high-risk-continue": "High fracture risk: continue",
    "reviewed-this-year": "Reviewed this year",
    "holiday-planned": "Drug holiday planned",
    "switching-agent": "Switching agent",
    "previous-order-to-stop": "Previous order will be stopped",
    "specialist-approved-rechallenge": "Specialist approved rechallenge",
    "oncology-benefit": "Oncology benefit outweighs risk",
    "healed-on-exam": "Healed on examination",
    "urgent-oncology-start": "Urgent oncology start",
    "switch-in-progress": "Switch in progress",
    "specialist-combination": "Combination by specialist",
    "end-of-life-care": "End-of-life care",
    "condition-treated": "Esophageal condition treated (dilated or operated)",
    "can-sit-upright": "Patient can stay upright for the required time",
    "iv-alternative-planned": "IV alternative planned",
    "paget-regimen": "Paget's disease regimen",
    "work-up-in-progress": "Work-up already ordered",
}


def override_reasons(*codes: str) -> list[Coding]:
    """Override reasons in the given order (most likely first; at most 5, §6.3)."""
    return [Coding(OVERRIDE_SYSTEM, c, OVERRIDE_DISPLAY[c]) for c in codes]


#: Evidence links (§6.2): one absolute link to the label or guideline named in the card.
LINKS: dict[str, Link] = {
    "prolia-label": Link("Prolia (denosumab) label on DailyMed",
                         "https://dailymed.nlm.nih.gov/dailymed/search.cfm?labeltype=all&query=prolia"),
    "xgeva-label": Link("Xgeva (denosumab) label on DailyMed",
                        "https://dailymed.nlm.nih.gov/dailymed/search.cfm?labeltype=all&query=xgeva"),
    "fda-dsc-2024": Link("FDA Drug Safety Communication, 19 Jan 2024 (Prolia boxed warning)",
                         "https://www.fda.gov/drugs/drug-safety-and-availability/fda-adds-boxed-warning-increased-risk-severe-hypocalcemia-patients-advanced-chronic-kidney-disease-taking"),
    "ects-2021": Link("ECTS position: discontinuation of denosumab (Tsourdi 2021)",
                      "https://doi.org/10.1210/clinem/dgaa756"),
    "aaoms-2022": Link("AAOMS position paper on MRONJ, 2022 update",
                       "https://doi.org/10.1016/j.joms.2022.02.008"),
    "asbmr-2016": Link("ASBMR task force: long-term bisphosphonate therapy (Adler 2016)",
                       "https://doi.org/10.1002/jbmr.2708"),
    "reclast-label": Link("Reclast (zoledronic acid 5 mg) label on DailyMed",
                          "https://dailymed.nlm.nih.gov/dailymed/search.cfm?labeltype=all&query=reclast"),
    "zometa-label": Link("Zometa (zoledronic acid 4 mg) label on DailyMed",
                         "https://dailymed.nlm.nih.gov/dailymed/search.cfm?labeltype=all&query=zometa"),
    "fosamax-label": Link("Fosamax (alendronate) label on DailyMed",
                          "https://dailymed.nlm.nih.gov/dailymed/search.cfm?labeltype=all&query=fosamax"),
}


@dataclass(frozen=True)
class OrderContext:
    """Who the draft orders are for and by whom (§6.1: subject, requester, authoredOn)."""

    patient_id: str
    user_id: str
    today: date

    def base(self, resource_type: str) -> dict[str, Any]:
        body: dict[str, Any] = {"resourceType": resource_type, "id": str(uuid.uuid4()),
                                "status": "draft", "intent": "order",
                                "subject": {"reference": f"Patient/{self.patient_id}"},
                                "authoredOn": self.today.isoformat()}
        if self.user_id and "/" in self.user_id:
            body["requester"] = {"reference": self.user_id}
        return body


#: Lab orders of §6.1 (LOINC code, display).
LAB_CODES: dict[str, tuple[str, str]] = {
    "calcium": ("17861-6", "Calcium [Mass/volume] in Serum or Plasma"),
    "albumin": ("1751-7", "Albumin [Mass/volume] in Serum or Plasma"),
    "vitamin-d": ("62292-8", "25-Hydroxyvitamin D2+D3 [Mass/volume] in Serum or Plasma"),
    "creatinine": ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma"),
    "pth": ("2731-8", "Parathyrin.intact [Mass/volume] in Serum or Plasma"),
    "magnesium": ("19123-9", "Magnesium [Mass/volume] in Serum or Plasma"),
    "phosphate": ("2777-1", "Phosphate [Mass/volume] in Serum or Plasma"),
    "hcg-urine": ("2106-3", "Choriogonadotropin (pregnancy test) [Presence] in Urine"),
    "hcg-serum": ("2118-8", "Choriogonadotropin (pregnancy test) [Presence] in Serum or Plasma"),
}


def lab_request(ctx: OrderContext, lab: str, reason: str, *, weekly_count: int | None = None,
                start: date | None = None) -> dict[str, Any]:
    """``ServiceRequest`` for one lab (§6.1); ``weekly_count`` adds weekly monitoring timing."""
    code, display = LAB_CODES[lab]
    body = ctx.base("ServiceRequest")
    body["category"] = [{"coding": [{"system": SNOMED, "code": "108252007",
                                     "display": "Laboratory procedure"}]}]
    body["code"] = {"coding": [{"system": LOINC, "code": code, "display": display}], "text": display}
    body["reasonCode"] = [{"text": reason}]
    if weekly_count:
        timing: dict[str, Any] = {"repeat": {"frequency": 1, "period": 1, "periodUnit": "wk",
                                             "count": weekly_count}}
        if start:
            timing["repeat"]["boundsPeriod"] = {"start": start.isoformat()}
        body["occurrenceTiming"] = timing
    return body


def lab_suggestion(ctx: OrderContext, label: str, labs: Iterable[str], reason: str,
                   **kwargs: Any) -> Suggestion:
    """One suggestion ordering several labs together (one action each)."""
    actions = [Action(f"Order {LAB_CODES[l][1].split(' [')[0].lower()}", lab_request(ctx, l, reason, **kwargs))
               for l in labs]
    return Suggestion(label, actions)


def dental_referral(ctx: OrderContext) -> Suggestion:
    """ServiceRequest: dental evaluation before antiresorptive therapy (§6.1, SNOMED 103697008)."""
    body = ctx.base("ServiceRequest")
    body["code"] = {"coding": [{"system": SNOMED, "code": "103697008",
                                "display": "Patient referral for dental care"}],
                    "text": "Dental evaluation before antiresorptive therapy"}
    body["reasonCode"] = [{"text": "Dental clearance before antiresorptive therapy"}]
    return Suggestion("Refer for dental evaluation",
                      [Action("Create a dental evaluation referral", body)])


def _medication(ctx: OrderContext, coding: dict[str, str] | None, text: str,
                dosage: dict[str, Any]) -> dict[str, Any]:
    body = ctx.base("MedicationRequest")
    concept: dict[str, Any] = {"text": text}
    if coding:
        concept["coding"] = [coding]
    body["medicationCodeableConcept"] = concept
    body["dosageInstruction"] = [dosage]
    return body


def denosumab_order(ctx: OrderContext, regimen: str = "60mg") -> Suggestion:
    """MedicationRequest denosumab 60 mg SC once (or 120 mg SC), §6.1."""
    if regimen == "120mg":
        coding = {"system": RXNORM, "code": "1046398", "display": "1.7 ML denosumab 70 MG/ML Injection"}
        text, dose, label = "denosumab 120 mg SC", 120, "Order denosumab 120 mg SC"
        repeat = {"frequency": 1, "period": 4, "periodUnit": "wk"}
    else:
        coding = {"system": RXNORM, "code": "993452", "display": "1 ML denosumab 60 MG/ML Prefilled Syringe"}
        text, dose, label = "denosumab 60 mg SC", 60, "Order denosumab 60 mg SC now"
        repeat = {"frequency": 1, "period": 6, "periodUnit": "mo"}
    dosage = {"text": f"{dose} mg subcutaneously", "timing": {"repeat": repeat},
              "route": {"coding": [{"system": SNOMED, "code": "34206005", "display": "Subcutaneous route"}]},
              "doseAndRate": [{"doseQuantity": {"value": dose, "unit": "mg", "system": UCUM, "code": "mg"}}]}
    return Suggestion(label, [Action(f"Create a draft order: {text}", _medication(ctx, coding, text, dosage))])


def zoledronic_acid_order(ctx: OrderContext, when: date, *, dose_mg: float = 5,
                          label: str | None = None) -> Suggestion:
    """MedicationRequest zoledronic acid 5 mg IV once on ``when`` (§6.1, RxNorm 705824)."""
    coding = {"system": RXNORM, "code": "705824", "display": "100 ML zoledronic acid 0.05 MG/ML Injection"}
    dose_text = f"{dose_mg:g}"
    dosage = {"text": f"{dose_text} mg IV over at least 15 minutes, once",
              "timing": {"event": [when.isoformat()]},
              "route": {"coding": [{"system": SNOMED, "code": "47625008", "display": "Intravenous route"}]},
              "doseAndRate": [{"doseQuantity": {"value": dose_mg, "unit": "mg", "system": UCUM, "code": "mg"}}]}
    text = f"zoledronic acid {dose_text} mg IV"
    return Suggestion(label or f"Order zoledronic acid {dose_text} mg IV on {when.isoformat()}",
                      [Action(f"Create a draft order: {text} on {when.isoformat()}",
                              _medication(ctx, coding, text, dosage))])


def calcium_vitamin_d_order(ctx: OrderContext) -> Suggestion:
    """MedicationRequest calcium + vitamin D daily, text only (§6.1: codes only when confirmed)."""
    text = ("Calcium carbonate 500–600 mg elemental + vitamin D3 400–800 IU by mouth daily")
    dosage = {"text": text, "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
              "route": {"coding": [{"system": SNOMED, "code": "26643006", "display": "Oral route"}]}}
    return Suggestion("Order calcium + vitamin D daily",
                      [Action("Create a draft order: calcium + vitamin D daily", _medication(ctx, None, text, dosage))])


def cholecalciferol_order(ctx: OrderContext) -> Suggestion:
    """MedicationRequest cholecalciferol (repletion per local protocol), RxNorm ingredient 2418."""
    coding = {"system": RXNORM, "code": "2418", "display": "cholecalciferol"}
    text = "Cholecalciferol (vitamin D3) repletion per local protocol, then 800–1,000 IU daily"
    dosage = {"text": text, "route": {"coding": [{"system": SNOMED, "code": "26643006", "display": "Oral route"}]}}
    return Suggestion("Order vitamin D3 repletion",
                      [Action("Create a draft order: cholecalciferol", _medication(ctx, coding, text, dosage))])
