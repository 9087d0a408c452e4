"""Suggestion resources, override reasons and evidence links (RULES.md §6).

Suggestions are FHIR R4 resources ready to become draft orders: ``ServiceRequest`` for a dental
evaluation or a lab, ``MedicationRequest`` for denosumab, zoledronic acid or calcium + vitamin D,
each with ``status: draft``, ``intent: order``, the patient as subject, ``authoredOn`` today and
the user as requester (§6.1).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Mapping

from cds_service.chart.valuesets import DEFAULT_PATH

from .model import OVERRIDE_SYSTEM, Action, Coding, Link, Suggestion, new_uuid

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"

#: The HL7 non-adherence reason carried in each override reason's Coding extension (§1.1, §6.3, A34).
HL7_REASON_EXTENSION = "urn:bone-safety-cds:hl7-non-adherence-reason"
#: At most this many override reasons per card, the most likely first (§6.3).
MAX_OVERRIDE_REASONS = 5


@lru_cache(maxsize=1)
def _override_value_set() -> dict[str, tuple[str, dict[str, str] | None]]:
    """code → (display, HL7 Coding or None) of the ``override-reason`` value set of codes.json."""
    data = json.loads(Path(DEFAULT_PATH).read_text(encoding="utf-8"))
    out: dict[str, tuple[str, dict[str, str] | None]] = {}
    for entry in data.get("override-reason", []):
        mapped = entry.get("map")
        hl7 = ({k: mapped[k] for k in ("system", "code", "display") if mapped.get(k)}
               if isinstance(mapped, dict) and mapped.get("code") else None)
        out[entry["code"]] = (entry["display"], hl7)
    return out


#: §6.3 override reason codes with the text a clinician picks (CARD-8 requires ``display``);
#: the displays are those of codes.json.
OVERRIDE_DISPLAY: dict[str, str] = {code: d for code, (d, _) in _override_value_set().items()}


def override_reason(code: str) -> Coding:
    """One override reason Coding, with its HL7 non-adherence reason in the extension (A34)."""
    display, hl7 = _override_value_set()[code]
    return Coding(OVERRIDE_SYSTEM, code, display,
                  extension={HL7_REASON_EXTENSION: dict(hl7)} if hl7 else None)


def override_reasons(*codes: str) -> list[Coding]:
    """Override reasons in the given order (most likely first), each code once, at most 5 (§6.3)."""
    unique = list(dict.fromkeys(codes))
    return [override_reason(c) for c in unique[:MAX_OVERRIDE_REASONS]]


def dailymed(setid: str) -> str:
    """The DailyMed page of one label (§6.2: the label itself, never a search page)."""
    return f"https://dailymed.nlm.nih.gov/dailymed/drugInfo.cfm?setid={setid}"


def drugs_at_fda(application: str) -> str:
    """The Drugs@FDA page of a product's application (§6.2: a label whose setid is not configured)."""
    return f"https://www.accessdata.fda.gov/scripts/cder/daf/index.cfm?event=overview.process&ApplNo={application}"


#: Evidence sources of §6.2 by key: ``label`` is the card's ``source.label`` (or a link label),
#: ``url`` its ``source.url``. Pamidronate and etidronate have no verified setid: their
#: Drugs@FDA application pages stand in (Aredia NDA 020036, Didronel NDA 017831).
SOURCES: dict[str, Link] = {
    "LBL-PROLIA": Link("FDA label: Prolia (denosumab) 60 mg",
                       dailymed("49e5afe9-a0c7-40c4-af9f-f287a80c5c88")),
    "LBL-XGEVA": Link("FDA label: Xgeva (denosumab) 120 mg",
                      dailymed("628f0998-1206-4001-aeee-18133aa9f3bf")),
    "LBL-RECLAST": Link("FDA label: Reclast (zoledronic acid) 5 mg/100 mL",
                        dailymed("5a9b3737-9ce6-4a89-b76e-6aab79eba9cf")),
    "LBL-ZOL4": Link("FDA label: zoledronic acid injection 4 mg/5 mL (Zometa-type)",
                     dailymed("20cd29cc-cef5-48c4-adfe-6b3dfee0ab61")),
    "LBL-FOSAMAX": Link("FDA label: Fosamax (alendronate)",
                        dailymed("14e931fd-2c5f-4d90-b7db-5980706f4a56")),
    "LBL-RISEDRONATE": Link("FDA label: risedronate sodium tablets (Actonel-type)",
                            dailymed("b90f2e5b-10b8-29a7-0360-31bd0dae0ec2")),
    "LBL-IBANDRONATE-ORAL": Link("FDA label: ibandronate sodium tablets 150 mg (Boniva-type)",
                                 dailymed("86c0b4ae-5e38-4efe-88af-50ac560e294f")),
    "LBL-IBANDRONATE-IV": Link("FDA label: ibandronate sodium injection 3 mg/3 mL",
                               dailymed("e81f2c5b-bead-48ac-be3e-016cf963d7ed")),
    "LBL-PAMIDRONATE": Link("FDA label: pamidronate disodium injection (Aredia)", drugs_at_fda("020036")),
    "LBL-ETIDRONATE": Link("FDA label: etidronate disodium tablets (Didronel)", drugs_at_fda("017831")),
    "FDA-DSC-2024": Link("FDA Drug Safety Communication, 19 Jan 2024 (Prolia boxed warning)",
                         "https://www.fda.gov/drugs/drug-safety-and-availability/fda-adds-boxed-warning-increased-risk-severe-hypocalcemia-patients-advanced-chronic-kidney-disease-taking"),
    "ECTS-2021": Link("Tsourdi E et al. Discontinuation of denosumab therapy for osteoporosis. "
                      "J Clin Endocrinol Metab 2021", "https://doi.org/10.1210/clinem/dgaa756"),
    "AAOMS-2022": Link("Ruggiero SL et al. AAOMS position paper on MRONJ, 2022 update. "
                       "J Oral Maxillofac Surg 2022", "https://doi.org/10.1016/j.joms.2022.02.008"),
    "ASBMR-2016": Link("Adler RA et al. Managing osteoporosis in patients on long-term "
                       "bisphosphonate treatment. J Bone Miner Res 2016", "https://doi.org/10.1002/jbmr.2708"),
    "ENDO-2019": Link("Eastell R et al. Pharmacological management of osteoporosis in "
                      "postmenopausal women. J Clin Endocrinol Metab 2019", "https://doi.org/10.1210/jc.2019-00221"),
}

#: The version-1 link names, kept as aliases of :data:`SOURCES` (rules and branches use them).
LINKS: dict[str, Link] = {
    "prolia-label": SOURCES["LBL-PROLIA"], "xgeva-label": SOURCES["LBL-XGEVA"],
    "fda-dsc-2024": SOURCES["FDA-DSC-2024"], "ects-2021": SOURCES["ECTS-2021"],
    "aaoms-2022": SOURCES["AAOMS-2022"], "asbmr-2016": SOURCES["ASBMR-2016"],
    "reclast-label": SOURCES["LBL-RECLAST"], "zometa-label": SOURCES["LBL-ZOL4"],
    "fosamax-label": SOURCES["LBL-FOSAMAX"], "endo-2019": SOURCES["ENDO-2019"],
    "risedronate-label": SOURCES["LBL-RISEDRONATE"],
    "ibandronate-oral-label": SOURCES["LBL-IBANDRONATE-ORAL"],
    "ibandronate-iv-label": SOURCES["LBL-IBANDRONATE-IV"],
    "pamidronate-label": SOURCES["LBL-PAMIDRONATE"], "etidronate-label": SOURCES["LBL-ETIDRONATE"],
}


@dataclass(frozen=True)
class OrderContext:
    """Who the draft orders are for and by whom (§6.1: subject, requester, authoredOn)."""

    patient_id: str
    user_id: str
    today: date

    def base(self, resource_type: str) -> dict[str, Any]:
        body: dict[str, Any] = {"resourceType": resource_type, "id": new_uuid(),
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


def configured_label_urls(cards: list[dict[str, Any]], urls: Mapping[str, str]) -> list[dict[str, Any]]:
    """§6.2 "a key marked 'to be configured' is a deployment setting (``label_url.<KEY>``)": each
    card's ``source.url`` and link that is the default URL of a configured key gets the site's URL
    (``BONE_CDS_LABEL_URLS``); the cards are changed in place and returned."""
    if not urls:
        return cards
    swap = {SOURCES[key].url: url for key, url in urls.items() if key in SOURCES}
    for card in cards:
        source = card.get("source") or {}
        if source.get("url") in swap:
            source["url"] = swap[source["url"]]
        for link in card.get("links") or []:
            if link.get("url") in swap:
                link["url"] = swap[link["url"]]
    return cards


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


def body_weight_request(ctx: OrderContext, reason: str) -> dict[str, Any]:
    """``ServiceRequest`` for a body weight, a nursing measurement (§6.1: LOINC 29463-7; the
    Cockcroft-Gault creatinine clearance of an IV bisphosphonate needs it, D5)."""
    body = ctx.base("ServiceRequest")
    body["category"] = [{"coding": [{"system": SNOMED, "code": "9632001",
                                     "display": "Nursing procedure"}]}]
    body["code"] = {"coding": [{"system": LOINC, "code": "29463-7", "display": "Body weight"}],
                    "text": "Body weight"}
    body["reasonCode"] = [{"text": reason}]
    return body


def lab_suggestion(ctx: OrderContext, label: str, labs: Iterable[str], reason: str,
                   **kwargs: Any) -> Suggestion:
    """One suggestion ordering several labs together (one action each)."""
    actions = [Action(f"Order {LAB_CODES[l][1].split(' [')[0].lower()}", lab_request(ctx, l, reason, **kwargs))
               for l in labs]
    return Suggestion(label, actions)


def dental_referral(ctx: OrderContext, *, label: str = "Refer for dental evaluation",
                    reason: str = "Dental clearance before antiresorptive therapy") -> Suggestion:
    """ServiceRequest: dental evaluation before antiresorptive therapy (§6.1, SNOMED 103697008);
    ``label`` and ``reason`` for the other dental referrals (oral surgery, review of healing)."""
    body = ctx.base("ServiceRequest")
    body["code"] = {"coding": [{"system": SNOMED, "code": "103697008",
                                "display": "Patient referral for dental care"}],
                    "text": "Dental evaluation before antiresorptive therapy"
                    if reason.startswith("Dental clearance") else reason}
    body["reasonCode"] = [{"text": reason}]
    return Suggestion(label, [Action("Create a dental referral", body)])


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
