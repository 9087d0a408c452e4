"""BP-RENAL-CONTRAINDICATION — kidney function below the agent's cut-off.

RULES.md §4 (with D3 route/strength, D5 eGFR, D6/D7 CKD and dialysis records, D10 cut-offs,
§7 exclusive with AR-RENAL-FUNCTION-UNKNOWN, §8 item 3 eGFR as the surrogate for CrCl).
Evidence: seed 001_282e696d69a84463.txt §Special Populations › Renal Impairment (bisphosphonates
are renally cleared, unlike denosumab); seed 000_01a4571caa474e4a.txt (oral and IV forms);
Reclast / zoledronic acid 5 mg label (contraindicated with CrCl < 35 mL/min and acute renal
impairment); Fosamax label (not recommended CrCl < 35); Actonel and Boniva labels (not
recommended CrCl < 30); Zometa label (not recommended in severe renal impairment); Aredia /
pamidronate label (renal toxicity).

Fires for a bisphosphonate draft when its kidney function is strictly below the agent's cut-off
(zoledronic acid 5 mg and alendronate 35; the others 30), or when an active CKD 4/5, ESRD or
dialysis record exists (any agent). Kidney function (D5, A10): an IV bisphosphonate is judged by
the Cockcroft-Gault CrCl (actual body weight, mL/min) when creatinine (30 days) and weight (365
days) allow it — the IV cut-offs then apply to the CrCl, and its eGFR is not judged again —
else by the eGFR of 30 days; an oral one by the eGFR of 365 days (never a CrCl, A35).
``critical`` for every IV bisphosphonate (A14), ``warning`` for oral agents. A zoledronic acid
order without a strength is read as 4 mg when an oncology bone indication is on record, else
5 mg (the stricter cut-off); the card says so.

On patient-view (A21), ``info``: a current oral bisphosphonate course (D4, the existing course
helper) whose eGFR is below the agent's cut-off, or with an active CKD 4/5/dialysis record.
Suggestions (A32, ``any``): creatinine with eGFR when the measure used is older than the recheck
days (IV 7, oral 90) or absent, and always on patient-view; on order hooks, remove the draft.
"""

from __future__ import annotations

from dataclasses import dataclass

from cds_service.chart import DraftOrder, Drug

from ..builders import override_reasons
from ..model import Card, Suggestion
from ..registry import ALL_HOOKS, RuleInput, rule
from . import _bp_common as bp
from . import _renal as renal
from . import _text as tx

RULE_ID = "BP-RENAL-CONTRAINDICATION"
TITLE = "Kidney function below the agent's cut-off"

#: What each label says about renal impairment (detail text).
LABEL_STATEMENT = {
    "zoledronic-5mg": "Reclast / zoledronic acid 5 mg label: **contraindicated** with creatinine "
                      "clearance < 35 mL/min and in acute renal impairment (renal failure, some "
                      "fatal or needing dialysis, has followed a single infusion)",
    "zoledronic-4mg": "Zometa label: not recommended for bone metastases in severe renal impairment "
                      "(CrCl < 30 mL/min); reduced doses for CrCl 30–60; withhold if creatinine rises",
    "alendronate": "Fosamax label: not recommended with creatinine clearance < 35 mL/min",
    "risedronate": "Actonel label: not recommended with creatinine clearance < 30 mL/min",
    "ibandronate": "Boniva label: not recommended with creatinine clearance < 30 mL/min",
    "pamidronate": "Aredia / pamidronate label: renal toxicity; not recommended in severe renal "
                   "impairment; check serum creatinine before each dose",
    "etidronate": "Didronel / etidronate label: renally excreted; not recommended in severe "
                  "renal impairment",
}


@dataclass
class Finding:
    draft: DraftOrder | None          # None on patient-view (a current oral course)
    drug: Drug
    agent: str
    regimen: str | None
    regimen_note: str
    cutoff: int
    window: int
    measure: renal.KidneyMeasure | None
    low: bool
    critical: bool
    contraindicated: bool


def _label_key(f: Finding) -> str:
    if f.drug.agent == "zoledronic-acid":
        return "zoledronic-4mg" if f.regimen == "4mg" else "zoledronic-5mg"
    return f.drug.agent


def _finding(inp: RuleInput, draft: DraftOrder | None, drug: Drug, regimen: str | None, note: str,
             records: list) -> Finding | None:
    cutoff, _ = bp.renal_cutoff(inp.thresholds, drug, regimen)
    measure = renal.kidney_function(inp, drug)
    low = measure is not None and measure.below(cutoff)
    if not low and not records:
        return None
    iv = renal.is_iv(drug)
    zol5 = drug.agent == "zoledronic-acid" and regimen == "5mg"
    return Finding(draft, drug, bp.agent_phrase(drug, regimen), regimen, note, cutoff,
                   renal.egfr_window(inp, drug), measure, low, critical=iv, contraindicated=zol5)


def _current_oral_drug(inp: RuleInput) -> Drug | None:
    """The drug of the current oral bisphosphonate course (D4, A21), its newest record's."""
    t = inp.thresholds
    courses = bp.oral_courses(inp, t.oral_course_gap_days, t.oral_course_current_days)
    if not courses or not courses[-1].current:
        return None
    newest = max(courses[-1].records, key=lambda r: r.date or inp.today)
    return newest.drug


def _measure_text(f: Finding) -> str:
    m = f.measure
    if m is None:
        return f"no usable kidney function result in the last {f.window} days"
    return f"{m.words()} on {m.date.isoformat()}"


@rule(RULE_ID, TITLE, hooks=ALL_HOOKS, needs={"Observation", "Condition", "Procedure"})
def bp_renal_contraindication(inp: RuleInput) -> Card | None:
    records = bp.severe_kidney_records(inp)
    findings: list[Finding] = []
    pv = inp.hook == "patient-view"
    if pv:
        if getattr(inp.chart.patient, "deceased", False):
            return None    # no patient-view card for a deceased patient (A37)
        drug = _current_oral_drug(inp)
        f = _finding(inp, None, drug, drug.regimen, "", records) if drug is not None else None
        findings = [f] if f is not None else []
    else:
        for d in bp.bp_drafts(inp):
            regimen, note = bp.zoledronic_regimen(inp, d)
            f = _finding(inp, d, d.drug, regimen, note, records)
            if f is not None:
                findings.append(f)
    if not findings:
        return None

    main = next((f for f in findings if f.critical), findings[0])
    indicator = "info" if pv else "critical" if any(f.critical for f in findings) else "warning"
    verdict = "contraindicated" if main.contraindicated else "not recommended"
    m = main.measure
    if pv and main.low and m is not None:
        summary = (f"eGFR {m.number()} on {m.date.isoformat()} is below {main.cutoff} for "
                   f"{main.agent}: reassess oral bisphosphonate therapy")
    elif main.low and m is not None and m.kind == "crcl":
        summary = (f"CrCl {m.number()} mL/min (Cockcroft-Gault) on {m.date.isoformat()}, below "
                   f"{main.cutoff}: {main.agent} is {verdict}")
    elif main.low and m is not None:
        summary = (f"eGFR {m.number()} on {m.date.isoformat()} "
                   f"(below {main.cutoff}): {main.agent} is {verdict} at this kidney function")
    else:
        summary = (f"{bp.kidney_record_phrase(records)} on record: {main.agent} is {verdict} "
                   "in severe kidney disease")
    if len(summary) >= 140:
        summary = tx.cut(summary, 139)

    lines = ["**Finding.**"]
    for f in findings:
        level = "info" if pv else "critical" if f.critical else "warning"
        unit = "mL/min" if f.measure is not None and f.measure.kind == "crcl" else "mL/min/1.73 m²"
        what = (f"{_measure_text(f)} is below the cut-off" if f.low else
                f"{_measure_text(f)} is not below the cut-off, but a severe kidney disease record "
                "is on file (the diagnosis decides)" if f.measure is not None else
                f"{_measure_text(f)}; a severe kidney disease record is on file")
        who = bp.draft_names([f.draft]) if f.draft is not None else "Current oral course"
        lines.append(f"- {who} — {f.agent}: cut-off {f.cutoff} {unit}; {what} → "
                     f"{'contraindicated' if f.contraindicated else 'not recommended'} ({level})."
                     + (f" Note: {f.regimen_note}." if f.regimen_note else ""))
    if records:
        lines.append("- Severe kidney disease on record: " + "; ".join(r.text for r in records) + ".")
    lines.append("")
    lines.append("**How this was judged.** " + _how(inp, main))
    lines.append("")
    statements = []
    for f in findings:
        s = LABEL_STATEMENT.get(_label_key(f))
        if s and s not in statements:
            statements.append(s)
    lines.append("**Why it matters.** Bisphosphonates are cleared by the kidney and can injure it. "
                 + "; ".join(statements) + ".")
    lines.append("")
    if pv:
        todo = ("**What to do.** Reassess the oral bisphosphonate at this kidney function: recheck "
                "creatinine with eGFR, and stop or switch with specialist input if it is confirmed.")
    else:
        todo = ("**What to do.** Do not give as ordered without review; if kidney function is truly "
                "below the cut-off, choose an alternative with specialist input (denosumab is not "
                "renally cleared but carries its own boxed warning of severe hypocalcemia in "
                "advanced CKD and dialysis).")
        if any(renal.is_iv(f.drug) for f in findings):
            todo += (" If an IV bisphosphonate is given after review: hydrate before the infusion, "
                     "infuse over at least 15 minutes, and recheck creatinine before each dose.")
    lines.append(todo)
    lines.append("")
    lines.append("**Evidence.** Reclast, Zometa, Fosamax, Actonel, Boniva and pamidronate labels "
                 "(renal impairment); Cockcroft DW, Gault MH, Nephron 1976.")
    source, link = bp.label_for(main.drug, main.regimen)
    return Card(rule_id=RULE_ID, rule_title=TITLE, summary=summary, indicator=indicator,
                source_label=source, detail="\n".join(lines),
                suggestions=_suggestions(inp, findings, pv), selection_behavior="any",
                override_reasons=override_reasons("crcl-above-cutoff", "specialist-decision",
                                                  "acute-value-recovered"),
                links=[link])


def _how(inp: RuleInput, f: Finding) -> str:
    """What was computed from what (Details-type text: inputs, windows, exactly-at-cut-off)."""
    m = f.measure
    at = f"a value exactly at {f.cutoff} does not fire."
    if m is not None and m.kind == "crcl":
        return (f"{m.inputs()} (creatinine within {inp.thresholds.egfr_lookback_days_iv_bp} days, "
                f"weight within {inp.thresholds.weight_lookback_days} days). The label limits are "
                "creatinine clearance: the CrCl is compared with the cut-off and the eGFR is not "
                f"judged again; {at}")
    text = ""
    if m is not None and m.egfr is not None:
        from cds_service.chart import display
        text = (f"eGFR reported as {display.lab_measured(m.egfr)} (LOINC {m.egfr.code}) on "
                f"{m.egfr.date.isoformat()}, compared with the cut-off; {at} ")
    else:
        text = f"No usable kidney function result in the last {f.window} days; the card rests on the kidney disease record. "
    if renal.is_iv(f.drug):
        crcl = renal.crcl_of(inp)
        text += (f"Cockcroft-Gault creatinine clearance could not be computed ({crcl.reason}), "
                 "so the eGFR was judged.")
    return text.strip()


def _suggestions(inp: RuleInput, findings: list[Finding], pv: bool) -> list[Suggestion]:
    """A32: creatinine with eGFR when the measure is older than the recheck days (or absent;
    always on patient-view); on order hooks, remove each draft concerned."""
    out: list[Suggestion] = []
    if pv or any(renal.recheck_due(inp, f.measure, f.drug) for f in findings):
        iv = any(renal.is_iv(f.drug) for f in findings)
        out.append(renal.kidney_lab_order(inp.orders, "Recheck kidney function before bisphosphonate therapy",
                                          weight=iv))
    for f in findings:
        if f.draft is not None:
            out.append(renal.remove_draft(f.draft, bp.agent_word(f.drug.agent)))
    return out
