"""Kidney function as the BP-RENAL-* and AR-RENAL-FUNCTION-UNKNOWN rules judge it (RULES.md D5
"Kidney function for an IV bisphosphonate", A10, A35; D9 order indication, A5; §6.1, A32).

- An IV bisphosphonate is judged by the Cockcroft-Gault CrCl (actual body weight, mL/min) when
  it is computable — the latest serum creatinine within ``egfr_lookback_days_iv_bp`` and the
  latest body weight within ``weight_lookback_days`` both usable, age and sex known — else by
  the eGFR of its window. A CrCl replaces the eGFR (it is not re-checked against it).
- Denosumab and oral bisphosphonates are judged by eGFR only: a computable CrCl never stands in.
- The measure is "stale" for the recheck suggestion when older than ``renal_recheck_days_iv_bp``
  (IV) / ``renal_recheck_days_oral_bp`` (oral) days (A32).

Pure: reads the chart of the :class:`~cards.registry.RuleInput`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from cds_service.chart import DENOSUMAB, DraftOrder, Drug, Lab, below, default_value_sets, display
from cds_service.chart.labs import CreatinineClearance

from ..builders import LOINC, OrderContext, lab_request
from ..model import Action, Suggestion
from ..registry import RuleInput
from ._definitions import draft_reason_sets, reason_conditions

ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
TEXT_PATTERN = "urn:bone-safety-cds:text-pattern"
#: Oncology bone indications other than hypercalcemia of malignancy (D9).
OTHER_ONCOLOGY = frozenset({"bone-metastases", "multiple-myeloma", "giant-cell-tumor-of-bone"})
#: Reason texts naming an oncology bone indication other than HCM (D6, D9).
_OTHER_ONCOLOGY_TEXT = re.compile(r"bone metasta|metasta\w* (to|of|in) (the )?bone|osseous metasta|"
                                  r"skeletal metasta|myeloma|giant[- ]cell tumou?r|\bgctb\b", re.IGNORECASE)
#: The one HCM code that is not specific to malignancy (A4).
NONSPECIFIC_HCM = "E83.52"


@dataclass(frozen=True)
class KidneyMeasure:
    """The kidney function a rule judges: ``kind`` ``crcl`` (Cockcroft-Gault, mL/min) or
    ``egfr`` (mL/min/1.73 m²), with its value (rounded per D5), comparator and date."""

    kind: str
    value: Decimal
    comparator: str | None
    date: date
    egfr: Lab | None = None
    crcl: CreatinineClearance | None = None

    @property
    def name(self) -> str:
        return "CrCl" if self.kind == "crcl" else "eGFR"

    def below(self, limit: int | Decimal) -> bool:
        """Strictly below ``limit`` (D5 comparators for an eGFR; a CrCl has none)."""
        if self.egfr is not None:
            return below(self.egfr, limit)
        return self.value < Decimal(limit)

    def number(self) -> str:
        """The value as shown, with its comparator ("29", "<15"; A40)."""
        return f"{self.comparator or ''}{display.number(self.value, 0)}"

    def words(self) -> str:
        """"CrCl 29 mL/min by Cockcroft-Gault" or "eGFR 33 mL/min/1.73 m²" (D5)."""
        if self.kind == "crcl":
            return f"CrCl {display.crcl(self.value)} by Cockcroft-Gault"
        return f"eGFR {display.egfr(self.value, self.comparator)}"

    def inputs(self) -> str | None:
        """The Cockcroft-Gault inputs for Details (§1.2 rule 3), else None."""
        c = self.crcl
        if c is None or c.creatinine is None or c.weight is None:
            return None
        return (f"Cockcroft-Gault with actual body weight: age {c.age}, {c.sex}, weight "
                f"{display.weight(c.weight.value)} on {c.weight.date.isoformat()}, serum creatinine "
                f"{display.creatinine(c.creatinine.value)} on {c.creatinine.date.isoformat()}"
                f" → CrCl {display.crcl(c.value)}")


def is_iv(drug: Drug) -> bool:
    """An IV bisphosphonate (D3): judged by CrCl when computable (A10)."""
    return drug.drug_class != DENOSUMAB and drug.is_iv_bisphosphonate


def egfr_window(inp: RuleInput, drug: Drug) -> int:
    """The eGFR look-back of a drug (D10): denosumab, IV bisphosphonate, oral bisphosphonate."""
    t = inp.thresholds
    if drug.drug_class == DENOSUMAB:
        return t.egfr_lookback_days_denosumab
    return t.egfr_lookback_days_iv_bp if is_iv(drug) else t.egfr_lookback_days_oral_bp


def crcl_of(inp: RuleInput) -> CreatinineClearance:
    """The Cockcroft-Gault CrCl with the IV windows (creatinine ``egfr_lookback_days_iv_bp``,
    weight ``weight_lookback_days``), computable or not."""
    t = inp.thresholds
    return inp.chart.crcl(t.egfr_lookback_days_iv_bp, t.weight_lookback_days)


def egfr_measure(lab: Lab | None) -> KidneyMeasure | None:
    if lab is None or lab.value is None:
        return None
    return KidneyMeasure("egfr", lab.value, lab.comparator, lab.date, egfr=lab)


def kidney_function(inp: RuleInput, drug: Drug) -> KidneyMeasure | None:
    """The measure judged for ``drug`` (D5): CrCl for an IV bisphosphonate when computable, else
    the eGFR of the drug's window; None when there is no usable measure (A39)."""
    if is_iv(drug):
        crcl = crcl_of(inp)
        if crcl.computable and crcl.date is not None:
            return KidneyMeasure("crcl", Decimal(crcl.value or 0), None, crcl.date, crcl=crcl)
    return egfr_measure(inp.chart.egfr(egfr_window(inp, drug)))


def recheck_due(inp: RuleInput, measure: KidneyMeasure | None, drug: Drug) -> bool:
    """The measure is older than the recheck days of the drug (IV 7, oral 90; A32), or absent."""
    if measure is None:
        return True
    t = inp.thresholds
    days = t.renal_recheck_days_iv_bp if is_iv(drug) else t.renal_recheck_days_oral_bp
    return (inp.today - measure.date).days > days


# ---- suggestions (§6.1, A32) -------------------------------------------------------------------

@dataclass(frozen=True)
class DeleteAction(Action):
    """A CDS Hooks ``delete`` action: remove the draft (§6.1 "Remove the draft"); the id is in
    ``resourceId`` only, never in the description. A dataclass like :class:`Action`, so it can
    be copied (``dataclasses.replace``) as any action."""

    resource: dict[str, Any] = field(default_factory=dict)
    type: str = "delete"
    resource_id: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"type": "delete", "description": self.description, "resourceId": self.resource_id}


def remove_draft(draft: DraftOrder, drug_words: str) -> Suggestion:
    """Suggestion: remove the draft order (delete)."""
    return Suggestion(f"Remove the draft {drug_words} order",
                      [DeleteAction(f"Remove the draft {drug_words} order", resource_id=draft.ref)])


def body_weight_request(ctx: OrderContext, reason: str) -> dict[str, Any]:
    """``ServiceRequest`` for a body weight (LOINC 29463-7, a nursing measurement; §6.1)."""
    body = ctx.base("ServiceRequest")
    body["code"] = {"coding": [{"system": LOINC, "code": "29463-7", "display": "Body weight"}],
                    "text": "Body weight"}
    body["reasonCode"] = [{"text": reason}]
    return body


def kidney_lab_order(ctx: OrderContext, reason: str, *, weight: bool = False) -> Suggestion:
    """Suggestion: creatinine with eGFR (2160-0), plus a body weight for an IV agent (CrCl)."""
    body = lab_request(ctx, "creatinine", reason)
    body["code"]["text"] = "Creatinine with eGFR (CKD-EPI 2021)"
    actions = [Action("Order creatinine with eGFR", body)]
    label = "Order creatinine with eGFR"
    if weight:
        actions.append(Action("Record body weight", body_weight_request(ctx, reason)))
        label += " and a body weight"
    return Suggestion(label, actions)


# ---- indication: hypercalcemia of malignancy (D9, A4, A5) --------------------------------------

def _patterns(name: str) -> list[re.Pattern[str]]:
    return [re.compile(c.code, re.IGNORECASE) for c in default_value_sets().codes(name)
            if c.system == TEXT_PATTERN]


def _malignancy_reason(draft: DraftOrder) -> bool:
    """The order's reason says malignancy (A4): a code in ``malignancy`` (ICD-10-CM chapter C)
    or ``hypercalcemia-of-malignancy`` other than E83.52, or a text matching their patterns."""
    if any(s == ICD10 and c.upper().startswith("C") for s, c in draft.reason_codings):
        return True
    names = draft_reason_sets(draft)
    if "malignancy" in names or names & OTHER_ONCOLOGY:
        return True
    pats = _patterns("malignancy") + _patterns("hypercalcemia-of-malignancy")
    return any(p.search(t) for t in draft.reason_texts if t for p in pats)


def _active_malignancy(inp: RuleInput) -> bool:
    """An active Condition in ``malignancy`` (or a malignant bone indication) (A4)."""
    return bool(inp.chart.conditions_in("malignancy", "bone-metastases", "multiple-myeloma", active=True))



def order_is_hcm(inp: RuleInput, draft: DraftOrder) -> bool:
    """D9 "Indication of a zoledronic acid 4 mg order is hypercalcemia of malignancy" (A5, A4):
    the draft's reason is HCM — a specific text, or E83.52 with an active malignancy or a
    malignancy reason — and names no other oncology bone indication; or the draft has no reason
    and HCM is the patient's only active oncology bone indication. A local reading of the D6/D9
    facts, kept here until the shared definitions carry them."""
    has_reason = bool(draft.reason_codings or draft.reason_texts
                      or draft.resource.get("reasonReference"))
    malignant = _active_malignancy(inp) or _malignancy_reason(draft)
    if has_reason:
        names = draft_reason_sets(draft)
        conds = reason_conditions(inp.chart, draft)
        for c in conds:
            names |= set(c.concepts)
        if names & OTHER_ONCOLOGY or any(_OTHER_ONCOLOGY_TEXT.search(t) for t in draft.reason_texts if t):
            return False
        specific_text = any(p.search(t) for t in draft.reason_texts if t
                            for p in _patterns("hypercalcemia-of-malignancy"))
        coded = "hypercalcemia-of-malignancy" in names
        return specific_text or (coded and malignant)
    if inp.chart.conditions_in(*OTHER_ONCOLOGY, active=True):
        return False
    hcm = inp.chart.conditions_in("hypercalcemia-of-malignancy", active=True)
    return any(c.by_text or _active_malignancy(inp) for c in hcm)
