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
    lines = ["**Finding.** " + bp.draft_names(d for d, _ in targets) + " — zoledronic acid 4 mg "
             f"(oncology) at {stated}; {measure.words()} on {measure.date.isoformat()}."]
    for d, note in targets:
        if note:
            lines.append(f"- {bp.draft_title(d)}: {note}.")
    lines.append("")
    if measure.kind == "crcl":
        how = f"{measure.inputs()}."
    else:
        eg = measure.egfr
        crcl = renal.crcl_of(inp)
        how = (f"eGFR reported as {display.lab_measured(eg)} (LOINC {eg.code}) on {eg.date.isoformat()}, "
               f"within {window} days; Cockcroft-Gault creatinine clearance could not be computed "
               f"({crcl.reason}), so the eGFR was used.") if eg is not None else ""
    lines.append("**How the dose was chosen.** " + how + " Zometa table (creatinine clearance): "
                 "> 60 → 4 mg; 50–60 → 3.5 mg; 40–49 → 3.3 mg; 30–39 → 3.0 mg. "
                 f"{measure.name} {value} → **{dose:.1f} mg**.")
    lines.append("")
    lines.append("**Why it matters.** Zoledronic acid is cleared by the kidney; full doses at reduced "
                 "clearance raise the risk of renal toxicity (rising creatinine, acute kidney injury) "
                 "with repeated 3–4-weekly oncology dosing.")
    lines.append("")
    lines.append("**What to do.** Order the reduced dose (suggestion below); if the creatinine "
                 "clearance is above 60 mL/min, 4 mg is right. Check serum creatinine before each dose "
                 "and withhold if it has risen (0.5 mg/dL from normal or 1.0 mg/dL from abnormal "
                 "baseline).")
    lines.append("")
    lines.append("**Evidence.** Zometa label, Dosage and Administration (renal dose adjustment; no "
                 "adjustment in hypercalcemia of malignancy); Cockcroft DW, Gault MH, Nephron 1976.")
    source, link = bp.LABEL["zoledronic-4mg"]
    first = targets[0][0]
    return Card(rule_id=RULE_ID, rule_title=TITLE, summary=summary, indicator="warning",
                source_label=f"{source}: renal dose adjustment", detail="\n".join(lines),
                suggestions=[reduced_dose_order(inp.orders, first, dose),
                             renal.remove_draft(first, "zoledronic acid")],
                selection_behavior="at-most-one",
                override_reasons=override_reasons("crcl-above-60", "specialist-decision"),
                links=[link])
