"""BP-RENAL-DOSE-ADJUST — oncology zoledronic acid needs a reduced dose.

RULES.md §4 (with D3 strength, D5 eGFR, D10 ``egfr_lookback_days_iv_bp``, §8 item 3).
Evidence: Zometa (zoledronic acid 4 mg) label §Dosage and Administration, renal dose adjustment
for multiple myeloma and bone metastases (baseline CrCl > 60 → 4 mg; 50–60 → 3.5 mg; 40–49 →
3.3 mg; 30–39 → 3.0 mg); seed 001_282e696d69a84463.txt §Special Populations › Renal Impairment
(bisphosphonates are renally cleared); seed 000_01a4571caa474e4a.txt (myeloma and bone
metastases as bisphosphonate indications).

Fires for a zoledronic acid 4 mg (oncology) draft whose latest eGFR within 30 days is 30–60
inclusive (eGFR as the surrogate for the label's CrCl) and whose ordered dose is 4 mg or not
stated. Below 30 is BP-RENAL-CONTRAINDICATION's finding; an eGFR with a comparator (">60")
cannot be placed in a band and does not fire. The suggestion is the same order at the reduced dose.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from cds_service.chart import DraftOrder, Lab

from ..builders import RXNORM, SNOMED, UCUM, OrderContext, override_reasons
from ..model import Action, Card, Suggestion
from ..registry import ORDER_HOOKS, RuleInput, rule
from . import _bp_common as bp
from . import _text as tx

RULE_ID = "BP-RENAL-DOSE-ADJUST"
TITLE = "Oncology zoledronic acid needs a reduced dose"

#: Zometa label dose table (label content, not a site parameter): lowest eGFR of the band → mg.
DOSE_TABLE: tuple[tuple[int, Decimal], ...] = ((50, Decimal("3.5")), (40, Decimal("3.3")),
                                               (30, Decimal("3.0")))
#: Above this (CrCl > 60) the full 4 mg dose is given.
FULL_DOSE_ABOVE = 60
FULL_DOSE_MG = Decimal(4)
ZOL4_VIAL = {"system": RXNORM, "code": "351114", "display": "5 ML zoledronic acid 0.8 MG/ML Injection"}


def adjusted_dose(egfr: int, lower: int) -> Decimal | None:
    """The label dose for an eGFR in [lower, 60], else None."""
    if egfr > FULL_DOSE_ABOVE or egfr < lower:
        return None
    for floor, dose in DOSE_TABLE:
        if egfr >= floor:
            return dose
    return DOSE_TABLE[-1][1]  # between a lower configured cut-off and 30: the lowest dose


def reduced_dose_order(ctx: OrderContext, draft: DraftOrder, dose: Decimal) -> Suggestion:
    """MedicationRequest: the drafted zoledronic acid at the renal dose (same product and
    schedule as the draft, dose replaced)."""
    body = ctx.base("MedicationRequest")
    source = draft.resource.get("medicationCodeableConcept") or {}
    codings = [c for c in source.get("coding") or [] if isinstance(c, dict) and c.get("code")]
    text = f"zoledronic acid {dose:.1f} mg IV (renal dose adjustment)"
    body["medicationCodeableConcept"] = {"coding": codings or [ZOL4_VIAL], "text": text}
    dosage: dict[str, Any] = {
        "text": f"{dose:.1f} mg IV over no less than 15 minutes (Zometa renal dose table)",
        "route": {"coding": [{"system": SNOMED, "code": "47625008", "display": "Intravenous route"}]},
        "doseAndRate": [{"doseQuantity": {"value": float(dose), "unit": "mg", "system": UCUM, "code": "mg"}}],
    }
    first = (draft.resource.get("dosageInstruction") or [{}])[0]
    if isinstance(first, dict) and isinstance(first.get("timing"), dict):
        dosage["timing"] = first["timing"]
    body["dosageInstruction"] = [dosage]
    if draft.resource.get("reasonCode"):
        body["reasonCode"] = draft.resource["reasonCode"]
    return Suggestion(f"Order zoledronic acid {dose:.1f} mg IV instead of 4 mg",
                      [Action(f"Create a draft order: {text}", body)], is_recommended=True)


@rule(RULE_ID, TITLE, hooks=ORDER_HOOKS, needs={"Observation"})
def bp_renal_dose_adjust(inp: RuleInput) -> Card | None:
    t = inp.thresholds
    window = t.egfr_lookback_days_iv_bp
    lower = t.egfr_cutoff_zoledronic_4mg
    egfr: Lab | None = inp.chart.egfr(window)
    if egfr is None or egfr.value is None or egfr.comparator is not None:
        return None
    value = int(egfr.value)
    dose = adjusted_dose(value, lower)
    if dose is None:
        return None
    targets: list[tuple[DraftOrder, str]] = []
    for d in bp.bp_drafts(inp):
        regimen, note = bp.zoledronic_regimen(inp, d)
        if d.drug.agent != "zoledronic-acid" or regimen != "4mg":
            continue
        if d.dose_mg is not None and d.dose_mg != FULL_DOSE_MG:
            continue  # already adjusted (or another dose chosen on purpose)
        targets.append((d, note))
    if not targets:
        return None

    summary = (f"eGFR {value} on {egfr.date.isoformat()}: zoledronic acid (oncology) dose should be "
               f"{dose:.1f} mg, not 4 mg")
    hcm = [d for d, _ in targets if bp.hcm_indication(inp, d)]
    stated = ("the stated dose of 4 mg" if any(d.dose_mg for d, _ in targets)
              else "an unstated dose (read as 4 mg)")
    details = [f"Ordered: {bp.draft_names(d for d, _ in targets)}, zoledronic acid 4 mg (oncology) "
               f"at {stated}",
               f"Latest eGFR {tx.lab_desc(egfr)} (LOINC {egfr.code}) on {egfr.date.isoformat()}, "
               f"within the {window}-day window, rounded to {value}",
               "Dose table (creatinine clearance, laboratory eGFR used as its surrogate): above 60 → "
               f"4 mg; 50–60 → 3.5 mg; 40–49 → 3.3 mg; 30–39 → 3.0 mg; eGFR {value} → {dose:.1f} mg"]
    for d, note in targets:
        if note:
            details.append(f"{tx.escape_record(bp.draft_title(d))}: {note}")
    if hcm:
        details.append("This order's indication is hypercalcemia of malignancy; the reduction "
                       "table is written for multiple myeloma and bone metastases")
    detail = tx.layout(
        f"eGFR {value} on {egfr.date.isoformat()}: the oncology dose of zoledronic acid should be "
        f"{dose:.1f} mg, not 4 mg",
        "Zoledronic acid is cleared by the kidney; full doses at reduced clearance raise the risk "
        "of kidney injury with repeated 3–4-weekly dosing.",
        [f"Order {dose:.1f} mg instead of 4 mg, or calculate creatinine clearance with today's "
         "weight (above 60 mL/min: 4 mg is right)", "check serum creatinine before each dose and "
         "withhold it if creatinine has risen"],
        [tx.EVIDENCE["zol4-dose"]], details, t=inp.thresholds)
    return Card(rule_id=RULE_ID, rule_title=TITLE, summary=tx.summary(summary), indicator="warning",
                **tx.source("LBL-ZOL4"), detail=detail,
                suggestions=[reduced_dose_order(inp.orders, targets[0][0], dose),
                             *tx.remove_drafts(d for d, _ in targets)],
                selection_behavior="at-most-one",
                override_reasons=override_reasons("crcl-above-60", "specialist-decision"))
