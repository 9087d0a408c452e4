"""BP-RENAL-DOSE-ADJUST — oncology zoledronic acid needs a reduced dose.

RULES.md §4 (with D3 strength, D5 eGFR, D10 ``egfr_lookback_days_iv_bp``, §8 item 3).
Evidence: Zometa (zoledronic acid 4 mg) label §Dosage and Administration, renal dose adjustment
for multiple myeloma and bone metastases (baseline CrCl > 60 → 4 mg; 50–60 → 3.5 mg; 40–49 →
3.3 mg; 30–39 → 3.0 mg); seed 001_282e696d69a84463.txt §Special Populations › Renal Impairment
(bisphosphonates are renally cleared); seed 000_01a4571caa474e4a.txt (myeloma and bone
metastases as bisphosphonate indications).

Fires for a zoledronic acid 4 mg (oncology) draft whose kidney function is in the band
``zol4_dose_band_low``–``zol4_dose_band_high`` (30–60) inclusive and whose ordered dose is 4 mg
or not stated. Kidney function (D5, A10): the Cockcroft-Gault CrCl (actual body weight) when
computable, else the eGFR of 30 days. Below the band is BP-RENAL-CONTRAINDICATION's finding; an
eGFR with a comparator (">60") cannot be placed in a band and does not fire. Not when the
order's indication is hypercalcemia of malignancy (D9, A5: the label needs no adjustment there).
Suggestions (``at-most-one``): the same order at the reduced dose; remove the draft (A32).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from cds_service.chart import DraftOrder, display

from ..builders import RXNORM, SNOMED, UCUM, OrderContext, override_reasons
from ..model import Action, Card, Suggestion
from ..registry import ORDER_HOOKS, RuleInput, rule
from . import _bp_common as bp
from . import _definitions as defs
from . import _renal as renal
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


def adjusted_dose(egfr: int, lower: int, upper: int = FULL_DOSE_ABOVE) -> Decimal | None:
    """The label dose for a kidney function in [lower, upper] (``zol4_dose_band_low``/``_high``),
    else None."""
    if egfr > upper or egfr < lower:
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
    targets: list[tuple[DraftOrder, str]] = []
    for d in bp.bp_drafts(inp):
        regimen, note = bp.zoledronic_regimen(inp, d)
        if d.drug.agent != "zoledronic-acid" or regimen != "4mg":
            continue
        if d.dose_mg is not None and d.dose_mg != FULL_DOSE_MG:
            continue  # already adjusted (or another dose chosen on purpose)
        if defs.order_indication_is_hcm(inp.chart, d):
            continue  # A5: no dose reduction in hypercalcemia of malignancy
        targets.append((d, note))
    if not targets:
        return None
    measure = renal.kidney_function(inp, targets[0][0].drug)
    if measure is None or measure.comparator is not None:
        return None
    value = int(measure.value)
    dose = adjusted_dose(value, t.zol4_dose_band_low, t.zol4_dose_band_high)
    if dose is None:
        return None

    summary = (f"{measure.name} {value} on {measure.date.isoformat()}: zoledronic acid (oncology) dose "
               f"should be {dose:.1f} mg, not 4 mg")
    stated = ("the stated dose of 4 mg" if any(d.dose_mg for d, _ in targets)
              else "an unstated dose (read as 4 mg)")
    details = [f"Ordered: {bp.draft_names(d for d, _ in targets)}, zoledronic acid 4 mg (oncology) "
               f"at {stated}"]
    for d, note in targets:
        if note:
            details.append(f"{tx.escape_record(bp.draft_title(d))}: {note}")
    if measure.kind == "crcl":
        details.append(measure.inputs())
    else:
        eg = measure.egfr
        crcl = renal.crcl_of(inp)
        if eg is not None:
            details.append(f"eGFR reported as {display.lab_measured(eg)} (LOINC {eg.code}) on "
                           f"{eg.date.isoformat()}, within {window} days; Cockcroft-Gault creatinine "
                           f"clearance could not be computed ({crcl.reason}), so the eGFR was used")
    details.append("Dose table (creatinine clearance): above 60 → 4 mg; 50–60 → 3.5 mg; 40–49 → "
                   f"3.3 mg; 30–39 → 3.0 mg; {measure.name} {value} → {dose:.1f} mg")
    detail = tx.layout(
        f"{measure.words()} on {measure.date.isoformat()}: the oncology dose of zoledronic acid "
        f"should be {dose:.1f} mg, not 4 mg",
        "Zoledronic acid is cleared by the kidney; full doses at reduced clearance raise the risk "
        "of kidney injury with repeated 3–4-weekly dosing.",
        [f"Order {dose:.1f} mg instead of 4 mg (above 60 mL/min creatinine clearance, 4 mg is right)",
         "check serum creatinine before each dose and withhold it if creatinine has risen"],
        [tx.EVIDENCE["zol4-dose"], "Cockcroft DW, Gault MH, Nephron 1976"], details, t=inp.thresholds)
    return Card(rule_id=RULE_ID, rule_title=TITLE, summary=tx.summary(summary), indicator="warning",
                **tx.source("LBL-ZOL4"), detail=detail,
                suggestions=[reduced_dose_order(inp.orders, targets[0][0], dose),
                             renal.remove_draft(targets[0][0], "zoledronic acid")],
                selection_behavior="at-most-one",
                override_reasons=override_reasons("crcl-above-60", "specialist-decision", "hcm-indication"))
