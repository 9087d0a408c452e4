"""AR-RENAL-FUNCTION-UNKNOWN — no recent eGFR before an antiresorptive.

RULES.md §5 (with D5 "eGFR", D6, D9, §7 exclusive pairs, §8 item 3).
Evidence: FDA Drug Safety Communication, 19 January 2024 (evaluate kidney function before
prescribing Prolia; boxed warning for eGFR < 30 and dialysis); Reclast label (measure creatinine
clearance before each dose; contraindicated when CrCl < 35); seed 001_282e696d69a84463.txt
§Critical Clinical Pitfalls #5 ("never overlook renal function") and §Special Populations ›
Renal Impairment (bisphosphonates are renally cleared).

Fires for a denosumab draft or any bisphosphonate draft when no usable eGFR is dated within the
window of the draft (denosumab and oral bisphosphonates ``egfr_lookback_days_denosumab`` /
``egfr_lookback_days_oral_bp``, IV bisphosphonates ``egfr_lookback_days_iv_bp``) and no active
CKD stage 4/5, ESRD or dialysis record exists (a known severe CKD is not "unknown"; then
DMAB-CKD-CALCIUM-MONITORING / BP-RENAL-CONTRAINDICATION speak). A creatinine without an eGFR
still fires, naming the creatinine value; this service does not calculate eGFR (optional, §8.3).
A39: an eGFR whose latest date in the window holds only unusable results (unit not recognised, no
value, no numeric value) is no usable kidney measure, even with an older usable eGFR in the window:
the card names it in D5's wording, and the older eGFR ("was below N" when it crosses a cut-off of
the drafts).

Version 2: an IV bisphosphonate has a usable kidney measure when the Cockcroft-Gault CrCl is
computable (latest serum creatinine in 30 days and latest weight in 365 days usable, age and sex
known; D5, A10) or its eGFR of 30 days is usable; denosumab and oral agents need the eGFR (a CrCl
never stands in, A35). ``warning`` for IV bisphosphonates and for denosumab initiation (A13),
``info`` otherwise. The suggestion adds a body weight for IV agents.
"""

from __future__ import annotations

from datetime import timedelta

from cds_service.chart import DENOSUMAB, DraftOrder, Lab, below, display

from ..builders import LINKS, OrderContext, override_reasons
from ..model import Card, Suggestion
from ..registry import ORDER_HOOKS, RuleInput, rule
from . import _ar_common as ar
from . import _definitions as defs
from . import _renal as renal
from . import _text as tx

RULE_ID = "AR-RENAL-FUNCTION-UNKNOWN"
TITLE = "No recent eGFR"


def window_for(inp: RuleInput, draft: DraftOrder) -> int:
    """The eGFR look-back of a draft: IV bisphosphonate 30 days, denosumab/oral 365 (D10).

    A bisphosphonate whose route could not be read (D3) is treated as oral (the common form)."""
    t = inp.thresholds
    if draft.drug.drug_class == DENOSUMAB:
        return t.egfr_lookback_days_denosumab
    if draft.drug.is_iv_bisphosphonate:
        return t.egfr_lookback_days_iv_bp
    return t.egfr_lookback_days_oral_bp


def _suggestion(ctx: OrderContext, iv: bool = False) -> Suggestion:
    """Creatinine with eGFR (2160-0), plus a body weight for an IV bisphosphonate (CrCl, A10)."""
    return renal.kidney_lab_order(ctx, "Kidney function before antiresorptive therapy (no recent eGFR)",
                                  weight=iv)


def _has_measure(inp: RuleInput, draft: DraftOrder) -> bool:
    """A usable kidney measure for the draft (D5): IV bisphosphonate a computable CrCl or its
    eGFR; denosumab and oral agents their eGFR only (A10, A35)."""
    return renal.kidney_function(inp, draft.drug) is not None


def _describe_newest(lab: Lab | None, today) -> str:  # noqa: ANN001 - a date
    if lab is None:
        return "none on record"
    if not lab.usable:
        return f"{tx.unusable_finding(lab)} ({(today - lab.date).days} days old), not used"
    return f"{display.lab_measured(lab)} on {lab.date.isoformat()} ({(today - lab.date).days} days old, stale)"


def _egfr_words(lab: Lab) -> str:
    """A usable eGFR for a card, rounded for display (§1.2 rule 6): "eGFR 25 mL/min/1.73 m²"."""
    return f"eGFR {display.egfr(lab.value, lab.comparator)}"


def _cutoff_crossed(inp: RuleInput, lab: Lab, drafts: list[DraftOrder]) -> int | None:
    """The highest cut-off of these drafts the (older, not judged) eGFR is below: advanced CKD
    for denosumab, the agent's cut-off for a bisphosphonate (D5 A39: such a previous result is
    named in the finding); None when it is below none."""
    from . import _bp_common as bp
    t = inp.thresholds
    crossed = []
    for d in drafts:
        if d.drug.drug_class == DENOSUMAB:
            limit = t.egfr_advanced_ckd
        else:
            limit = bp.renal_cutoff(t, d.drug, bp.zoledronic_regimen(inp, d)[0])[0]
        if below(lab, limit):
            crossed.append(limit)
    return max(crossed, default=None)


@rule(RULE_ID, TITLE, hooks=ORDER_HOOKS, needs={"Observation", "Condition", "Procedure"})
def ar_renal_function_unknown(inp: RuleInput) -> Card | None:
    drafts = ar.antiresorptive_drafts(inp, bisphosphonates="any")
    concerned = [d for d in drafts if not _has_measure(inp, d)]
    if not concerned or defs.kidney_records(inp.chart, inp.thresholds).present:
        return None
    window = max(window_for(inp, d) for d in concerned)
    iv = [d for d in concerned if d.drug.is_iv_bisphosphonate]
    dmab_start = any(d.drug.drug_class == DENOSUMAB for d in concerned) \
        and defs.is_initiation(inp, DENOSUMAB)
    indicator = "warning" if iv or dmab_start else "info"   # A13: denosumab initiation
    agent = ar.agents_phrase(d.drug for d in concerned)

    latest = inp.chart.egfr_day(window)    # A39: the latest eGFR date decides, usable or not
    creatinine = inp.chart.latest("creatinine", window)
    if latest.present_unusable:
        why_not = tx.reason_word(latest.results[0])
        summary = tx.fit(f"No usable eGFR in the last {window} days (latest {latest.date.isoformat()}: "
                         f"{why_not}): check kidney function before {agent}",
                         f"No usable eGFR in the last {window} days (latest {latest.date.isoformat()}: "
                         f"{why_not}): check kidney function first")
    else:
        crea = (f" (creatinine {display.lab_measured(creatinine)} on {creatinine.date.isoformat()})"
                if creatinine else "")
        summary = f"No eGFR in the last {window} days before {agent}{crea}: check kidney function first"
        if len(summary) >= 140:
            summary = f"No eGFR in the last {window} days before {agent}: check kidney function first"

    start = inp.today - timedelta(days=window)
    if latest.present_unusable:
        previous = inp.chart.previous_egfr(window, latest.date)
        finding = (f"**Finding.** {tx.draft_list(concerned)} ordered; the latest eGFR in the last "
                   f"{window} days cannot be used: "
                   + "; ".join(tx.unusable_finding(l) for l in latest.results)
                   + ". No active CKD stage 4/5, end-stage renal disease or dialysis record was found.")
        crossed = _cutoff_crossed(inp, previous, concerned) if previous is not None else None
        if previous is not None and crossed is not None:
            finding += (f" The previous result, {_egfr_words(previous)} on "
                        f"{previous.date.isoformat()}, was below {crossed}.")
        lines = [finding]
    else:
        previous = None
        lines = [f"**Finding.** {tx.draft_list(concerned)} ordered; no usable eGFR is on record in the "
                 f"last {window} days ({start.isoformat()} to {inp.today.isoformat()}), and no active "
                 "CKD stage 4/5, end-stage renal disease or dialysis record was found."]
    windows = sorted({window_for(inp, d) for d in concerned})
    if len(windows) > 1:
        lines.append("Windows: " + "; ".join(f"{d.label}: {window_for(inp, d)} days" for d in concerned) + ".")
    if previous is not None:
        lines.append(f"Previous usable eGFR: {_egfr_words(previous)} on {previous.date.isoformat()} "
                     "— not used: a newer result exists.")
    elif latest.present_unusable:
        stale = inp.chart.previous_egfr(None, latest.date)  # type: ignore[arg-type]
        lines.append("Last usable eGFR: " + (
            f"{_egfr_words(stale)} on {stale.date.isoformat()} "
            f"({(inp.today - stale.date).days} days old, stale)." if stale else "none on record."))
    else:
        lines.append(f"Last eGFR: {_describe_newest(inp.chart.newest_any('egfr'), inp.today)}.")
    if iv:
        crcl = renal.crcl_of(inp)
        lines.append("Cockcroft-Gault creatinine clearance could not be computed: "
                     + (f"{crcl.reason} in the last {inp.thresholds.egfr_lookback_days_iv_bp} days"
                        if crcl.reason == "no serum creatinine" else
                        f"{crcl.reason} in the last {inp.thresholds.weight_lookback_days} days"
                        if crcl.reason == "no body weight" else str(crcl.reason)) + ".")
    if creatinine is not None:
        lines.append(f"Serum creatinine {display.lab_measured(creatinine)} on "
                     f"{creatinine.date.isoformat()} is on record without an eGFR "
                     "(this service does not calculate eGFR from it; a calculated CKD-EPI 2021 "
                     "value needs age and sex and must be labelled \"calculated\").")
    else:
        older = inp.chart.newest_any("creatinine")
        lines.append("No usable serum creatinine in the window either" + (
            f" (last: {display.lab_measured(older) + ' on ' + older.date.isoformat() if older.usable else tx.unusable_finding(older)})."
            if older else " (none on record)."))
    lines.append("")
    why = ["Kidney function decides how these drugs are used:"]
    if any(d.drug.drug_class == DENOSUMAB for d in concerned):
        why.append("denosumab carries a boxed warning for severe hypocalcemia when eGFR is below "
                   "30 or on dialysis (FDA 2024) — evaluate kidney function before prescribing;")
    if iv:
        why.append("IV bisphosphonates are renally cleared: zoledronic acid 5 mg is contraindicated "
                   "with CrCl < 35 and the label asks for creatinine before each dose;")
    if any(d.drug.is_oral_bisphosphonate or (d.drug.drug_class != DENOSUMAB and not d.drug.is_iv_bisphosphonate)
           for d in concerned):
        why.append("oral bisphosphonates are not recommended below CrCl 30–35;")
    lines.append("**Why it matters.** " + " ".join(why).rstrip(";") + ".")
    lines.append("")
    lines.append("**What to do.** Check creatinine with eGFR before the dose"
                 + (" (within 30 days of an IV bisphosphonate)" if iv else "")
                 + "; labels use Cockcroft-Gault creatinine clearance (needs weight).")
    lines.append("")
    lines.append("**Evidence.** FDA Drug Safety Communication 19 Jan 2024 (Prolia boxed warning); "
                 "Reclast label (measure CrCl before each dose).")
    if iv:
        source, link = "FDA label: Reclast (measure creatinine clearance before each dose)", tx.label_link(iv)
    elif any(d.drug.drug_class == DENOSUMAB for d in concerned):
        source, link = "FDA Drug Safety Communication 2024 (Prolia boxed warning)", LINKS["fda-dsc-2024"]
    else:
        source, link = "FDA label: Fosamax (not recommended with CrCl < 35)", tx.label_link(concerned)
    return Card(rule_id=RULE_ID, rule_title=TITLE, summary=summary, indicator=indicator,
                source_label=source, detail="\n".join(lines), suggestions=[_suggestion(inp.orders, bool(iv))],
                selection_behavior="any", override_reasons=override_reasons("result-elsewhere", "drawn-today"),
                links=[link])
