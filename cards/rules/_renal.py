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

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from cds_service.chart import DENOSUMAB, DraftOrder, Drug, Lab, below, display
from cds_service.chart.labs import CreatinineClearance

from ..builders import LOINC, OrderContext, lab_request
from ..model import Action, Suggestion
from ..registry import RuleInput



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
