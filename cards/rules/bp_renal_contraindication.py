"""BP-RENAL-CONTRAINDICATION — kidney function below the agent's cut-off.

RULES.md §4 (with D3 route/strength, D5 eGFR, D6/D7 CKD and dialysis records, D10 cut-offs,
§7 exclusive with AR-RENAL-FUNCTION-UNKNOWN, §8 item 3 eGFR as the surrogate for CrCl).
Evidence: seed 001_282e696d69a84463.txt §Special Populations › Renal Impairment (bisphosphonates
are renally cleared, unlike denosumab); seed 000_01a4571caa474e4a.txt (oral and IV forms);
Reclast / zoledronic acid 5 mg label (contraindicated with CrCl < 35 mL/min and acute renal
impairment); Fosamax label (not recommended CrCl < 35); Actonel and Boniva labels (not
recommended CrCl < 30); Zometa label (not recommended in severe renal impairment); Aredia /
pamidronate label (renal toxicity).

Fires for a bisphosphonate draft when the latest eGFR in the agent's window (IV 30 days, oral
365 days) is strictly below the agent's cut-off (zoledronic acid 5 mg and alendronate 35; the
others 30), or when an active CKD 4/5, ESRD or dialysis record exists (any agent). ``critical``
for IV zoledronic acid 5 mg and for any IV bisphosphonate with dialysis/ESRD, ``warning``
otherwise. A zoledronic acid order without a strength is read as 4 mg when an oncology bone
indication is on record, else 5 mg (the stricter cut-off); the card says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from cds_service.chart import DraftOrder, Lab, below

from ..builders import lab_suggestion, override_reasons
from ..model import Card
from ..registry import ORDER_HOOKS, RuleInput, rule
from . import _bp_common as bp
from . import _text as tx

RULE_ID = "BP-RENAL-CONTRAINDICATION"
TITLE = "Kidney function below the agent's cut-off"

#: What each label says about renal impairment (detail text).
LABEL_STATEMENT = {
    "zoledronic-5mg": "Reclast label, Contraindications (creatinine clearance below 35 mL/min; "
                      "acute renal impairment)",
    "zoledronic-4mg": "zoledronic acid 4 mg label, Dosage (not recommended in severe renal "
                      "impairment; reduced doses for creatinine clearance 30–60 mL/min)",
    "alendronate": "Fosamax label (not recommended with creatinine clearance below 35 mL/min)",
    "risedronate": "risedronate label (not recommended with creatinine clearance below 30 mL/min)",
    "ibandronate": "ibandronate label (not recommended with creatinine clearance below 30 mL/min)",
    "pamidronate": "pamidronate label, Warnings (renal toxicity; creatinine before each dose)",
    "etidronate": "etidronate label (renally excreted; not recommended in severe renal impairment)",
}


@dataclass
class Finding:
    draft: DraftOrder
    agent: str
    regimen: str | None
    regimen_note: str
    cutoff: int
    parameter: str
    window: int
    egfr: Lab | None
    low: bool
    critical: bool
    contraindicated: bool


def _label_key(f: Finding) -> str:
    if f.draft.drug.agent == "zoledronic-acid":
        return "zoledronic-4mg" if f.regimen == "4mg" else "zoledronic-5mg"
    return f.draft.drug.agent


def _cockcroft_gault(inp: RuleInput, window: int) -> str:
    """How to compute the label's CrCl from what the chart has (weight is not in the prefetch)."""
    creat = inp.chart.latest("creatinine", window)
    age, sex = inp.chart.patient.age, inp.chart.patient.sex
    female = " × 0.85" if sex == "female" else ""
    age_text = str(age) if age is not None else "age"
    if creat is not None and creat.value is not None:
        return (f"Serum creatinine {tx.lab_desc(creat)} on {creat.date.isoformat()} "
                f"({tx.fmt(creat.value)} mg/dL) is on record: Cockcroft-Gault CrCl = "
                f"(140 − {age_text}) × weight (kg) / (72 × {tx.fmt(creat.value)}){female}, with "
                "today's weight, gives the value the label's limit refers to.")
    return (f"No serum creatinine in the last {window} days, so the Cockcroft-Gault creatinine "
            f"clearance ((140 − {age_text}) × weight / (72 × creatinine){female}) could not be "
            "prepared either.")


@rule(RULE_ID, TITLE, hooks=ORDER_HOOKS, needs={"Observation", "Condition", "Procedure"})
def bp_renal_contraindication(inp: RuleInput) -> Card | None:
    drafts = bp.bp_drafts(inp)
    if not drafts:
        return None
    t = inp.thresholds
    records = bp.severe_kidney_records(inp)
    dialysis_esrd = any(r.kind in ("dialysis", "esrd") for r in records)
    findings: list[Finding] = []
    for d in drafts:
        regimen, note = bp.zoledronic_regimen(inp, d)
        cutoff, parameter = bp.renal_cutoff(t, d.drug, regimen)
        window = bp.egfr_window(t, d.drug)
        egfr = inp.chart.egfr(window)
        low = egfr is not None and below(egfr, cutoff)
        if not low and not records:
            continue
        zol5 = d.drug.agent == "zoledronic-acid" and regimen == "5mg"
        iv = d.drug.route == "iv"
        findings.append(Finding(d, bp.agent_phrase(d.drug, regimen), regimen, note, cutoff, parameter,
                                window, egfr, low, critical=iv and (zol5 or dialysis_esrd),
                                contraindicated=zol5))
    if not findings:
        return None

    main = next((f for f in findings if f.critical), findings[0])
    indicator = "critical" if any(f.critical for f in findings) else "warning"
    verdict = "contraindicated" if main.contraindicated else "not recommended"
    if main.low and main.egfr is not None:
        value = f"{main.egfr.comparator or ''}{tx.fmt(main.egfr.value)}"
        summary = (f"eGFR {value} on {main.egfr.date.isoformat()} "
                   f"(below {main.cutoff}): {main.agent} is {verdict} at this kidney function")
    else:
        summary = (f"{bp.kidney_record_phrase(records)} on record: {main.agent} is {verdict} "
                   "in severe kidney disease")
    summary = tx.summary(summary)

    details = []
    for f in findings:
        level = "critical" if f.critical else "warning"
        what = (f"latest eGFR {tx.lab_desc(f.egfr)} on {f.egfr.date.isoformat()} is below the cut-off"
                if f.low and f.egfr is not None else
                (f"latest eGFR {tx.lab_desc(f.egfr)} on {f.egfr.date.isoformat()} is not below the cut-off, "
                 "but a severe kidney disease record is on file (the diagnosis decides)"
                 if f.egfr is not None else
                 f"no eGFR in the last {f.window} days; a severe kidney disease record is on file"))
        details.append(f"{bp.draft_names([f.draft])} — {f.agent}: cut-off eGFR < {f.cutoff}, "
                       f"look-back {f.window} days; {what} → "
                       f"{'contraindicated' if f.contraindicated else 'not recommended'} ({level})"
                       + (f". Note: {f.regimen_note}" if f.regimen_note else ""))
    if records:
        details.append("Severe kidney disease on record: " + "; ".join(r.text for r in records))
    egfr_lab = main.egfr
    if egfr_lab is not None:
        comp = f" (comparator '{egfr_lab.comparator}')" if egfr_lab.comparator else ""
        details.append(f"eGFR as reported: {tx.lab_desc(egfr_lab)} (LOINC {egfr_lab.code}) on "
                       f"{egfr_lab.date.isoformat()}{comp}, judged as {tx.fmt(egfr_lab.value)}; the "
                       f"card fires only strictly below the cut-off (laboratory eGFR used as the "
                       "surrogate of the label's creatinine clearance)")
        finding = f"eGFR {tx.lab_desc(egfr_lab)} on {egfr_lab.date.isoformat()}, below {main.cutoff}" \
            if main.low else f"{bp.kidney_record_phrase(records)} on record"
    else:
        newest = inp.chart.newest_any("egfr")
        last = (f"last eGFR {tx.lab_desc(newest)} on {newest.date.isoformat()}, not used"
                if newest is not None else "no eGFR on record at all")
        details.append(f"No eGFR was found in the last {main.window} days ({last}); the card rests "
                       "on the kidney disease record alone")
        finding = f"{bp.kidney_record_phrase(records)} on record"
    details.append(_cockcroft_gault(inp, main.window).rstrip("."))
    statements = []
    for f in findings:
        s = LABEL_STATEMENT.get(_label_key(f))
        if s and s not in statements:
            statements.append(s.replace("**", ""))
    todo = ["Do not give as ordered without review",
            "if it is given after review: hydrate, infuse over at least 15 minutes and recheck "
            "creatinine before each dose" if any(f.draft.drug.route == "iv" for f in findings)
            else "recheck kidney function",
            "alternatives need specialist input (denosumab carries its own severe-hypocalcemia "
            "warning in advanced kidney disease)"]
    detail = tx.layout(
        f"{finding}: {main.agent} is {verdict}",
        "Bisphosphonates are cleared by the kidney and can injure it.",
        todo, statements[:2] or [tx.EVIDENCE["bp-renal"]], details, t=inp.thresholds)
    suggestions = []
    measure = main.egfr
    iv = main.draft.drug.route == "iv"
    recheck = t.renal_recheck_days_iv_bp if iv else t.renal_recheck_days_oral_bp
    if measure is None or (inp.today - measure.date).days > recheck:
        suggestions.append(lab_suggestion(inp.orders, "Order creatinine with eGFR", ["creatinine"],
                                          "Kidney function before a bisphosphonate"))
    suggestions += tx.remove_drafts(f.draft for f in findings)
    return Card(rule_id=RULE_ID, rule_title=TITLE, summary=summary, indicator=indicator,
                **bp.source_for(main.draft.drug, main.regimen), detail=detail,
                suggestions=suggestions, selection_behavior="any",
                override_reasons=override_reasons("crcl-above-cutoff", "specialist-decision",
                                                  "acute-value-recovered"))
