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
"""

from __future__ import annotations

from datetime import timedelta

from cds_service.chart import DENOSUMAB, DraftOrder, Lab

from ..builders import LINKS, OrderContext, lab_request, override_reasons
from ..model import Action, Card, Suggestion
from ..registry import ORDER_HOOKS, RuleInput, rule
from . import _ar_common as ar
from . import _definitions as defs
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


def _suggestion(ctx: OrderContext) -> Suggestion:
    body = lab_request(ctx, "creatinine", "Kidney function before antiresorptive therapy (no recent eGFR)")
    body["code"]["text"] = "Creatinine with eGFR (CKD-EPI 2021)"
    return Suggestion("Order creatinine with eGFR", [Action("Order creatinine with eGFR", body)])


def _describe_newest(lab: Lab | None, today) -> str:  # noqa: ANN001 - a date
    if lab is None:
        return "none on record"
    if not lab.usable:
        return f"{lab.describe()} on {lab.date.isoformat()} — result present but unit not recognised, not used"
    return f"{lab.describe()} on {lab.date.isoformat()} ({(today - lab.date).days} days old, stale)"


@rule(RULE_ID, TITLE, hooks=ORDER_HOOKS, needs={"Observation", "Condition", "Procedure"})
def ar_renal_function_unknown(inp: RuleInput) -> Card | None:
    drafts = ar.antiresorptive_drafts(inp, bisphosphonates="any")
    concerned = [d for d in drafts if inp.chart.egfr(window_for(inp, d)) is None]
    if not concerned or defs.kidney_records(inp.chart, inp.thresholds).present:
        return None
    window = max(window_for(inp, d) for d in concerned)
    iv = [d for d in concerned if d.drug.is_iv_bisphosphonate]
    indicator = "warning" if iv else "info"
    agent = ar.agents_phrase(d.drug for d in concerned)

    creatinine = inp.chart.latest("creatinine", window)
    crea = f" (creatinine {creatinine.describe()} on {creatinine.date.isoformat()})" if creatinine else ""
    summary = f"No eGFR in the last {window} days before {agent}{crea}: check kidney function first"
    if len(summary) >= 140:
        summary = f"No eGFR in the last {window} days before {agent}: check kidney function first"

    start = inp.today - timedelta(days=window)
    lines = [f"**Finding.** {tx.draft_list(concerned)} ordered; no usable eGFR is on record in the "
             f"last {window} days ({start.isoformat()} to {inp.today.isoformat()}), and no active "
             "CKD stage 4/5, end-stage renal disease or dialysis record was found."]
    windows = sorted({window_for(inp, d) for d in concerned})
    if len(windows) > 1:
        lines.append("Windows: " + "; ".join(f"{d.label}: {window_for(inp, d)} days" for d in concerned) + ".")
    lines.append(f"Last eGFR: {_describe_newest(inp.chart.newest_any('egfr'), inp.today)}.")
    if creatinine is not None:
        lines.append(f"Serum creatinine {tx.lab_text(creatinine)} is on record without an eGFR "
                     "(this service does not calculate eGFR from it; a calculated CKD-EPI 2021 "
                     "value needs age and sex and must be labelled \"calculated\").")
    else:
        older = inp.chart.newest_any("creatinine")
        lines.append("No serum creatinine in the window either" + (
            f" (last: {tx.lab_text(older)})." if older else " (none on record)."))
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
    lines.append(f"**Evidence.** FDA Drug Safety Communication 19 Jan 2024 (Prolia boxed warning); "
                 f"Reclast label (measure CrCl before each dose); {tx.SEED_001} §Critical Clinical "
                 "Pitfalls #5 and §Special Populations › Renal Impairment. RULES.md §5 "
                 "AR-RENAL-FUNCTION-UNKNOWN.")
    if iv:
        source, link = "FDA label: Reclast (measure creatinine clearance before each dose)", tx.label_link(iv)
    elif any(d.drug.drug_class == DENOSUMAB for d in concerned):
        source, link = "FDA Drug Safety Communication 2024 (Prolia boxed warning)", LINKS["fda-dsc-2024"]
    else:
        source, link = "FDA label: Fosamax (not recommended with CrCl < 35)", tx.label_link(concerned)
    return Card(rule_id=RULE_ID, rule_title=TITLE, summary=summary, indicator=indicator,
                source_label=source, detail="\n".join(lines), suggestions=[_suggestion(inp.orders)],
                selection_behavior="any", override_reasons=override_reasons("result-elsewhere", "drawn-today"),
                links=[link])
