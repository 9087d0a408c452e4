"""DMAB-CKD-CALCIUM-MONITORING — advanced CKD or dialysis with denosumab.

RULES.md §3 (with D5 "eGFR", D6, D7, D9 "Advanced CKD", §7 exclusive pairs).
Evidence: seed 001_282e696d69a84463.txt §Calcium and Vitamin D Supplementation, §Hypocalcemia,
§Special Populations › Renal Impairment and §Critical Clinical Pitfalls #5; FDA Prolia label,
boxed warning and §5.1 (2024: severe hypocalcemia in advanced CKD, eGFR < 30, dialysis, CKD-MBD;
evaluate CKD-MBD before starting; calcium weekly for the first month, then monthly); FDA Drug
Safety Communication, 19 January 2024; Xgeva label (higher risk with CrCl < 30 or dialysis).

Fires on an order hook for any denosumab draft when advanced CKD (D9) is present: the latest
eGFR within ``egfr_lookback_days_denosumab`` strictly below ``egfr_advanced_ckd`` (30 exactly is
not advanced), an active CKD 4/5 or ESRD condition, or dialysis (active condition, or a dialysis
procedure within ``dialysis_procedure_lookback_days``). A diagnosis wins over a normal eGFR and
the card names it. No eGFR and no diagnosis → silent (AR-RENAL-FUNCTION-UNKNOWN speaks).
"""

from __future__ import annotations

from datetime import timedelta

from ..builders import LINKS, lab_request, lab_suggestion, override_reasons
from ..model import Action, Card, Suggestion
from ..registry import ORDER_HOOKS, RuleInput, rule
from . import _dmab_common as dm
from . import _definitions as defs
from . import _text as tx

RULE_ID = "DMAB-CKD-CALCIUM-MONITORING"
TITLE = "Predisposed to severe hypocalcemia with denosumab"
#: The weekly calcium series starts this many days after the dose (catalog: "7 days after").
MONITORING_START_DAYS = 7
MONITORING_WEEKS = 4


def _evidence_phrase(ckd: defs.AdvancedCkd) -> list[str]:
    """The short evidence phrases of the summary, most specific first."""
    out: list[str] = []
    if ckd.egfr is not None:
        out.append(f"eGFR {ckd.egfr.comparator or ''}{tx.fmt_rounded(ckd.egfr.value)} on {ckd.egfr.date.isoformat()}")
    if ckd.dialysis:
        dates = [p.date for p in ckd.dialysis_procedures if p.date]
        out.append(f"dialysis {max(dates).isoformat()}" if dates and not ckd.dialysis_conditions
                   else "dialysis")
    if ckd.ckd_conditions and not ckd.dialysis:
        out.append("CKD stage 4/5")
    return out


@rule(RULE_ID, TITLE, hooks=ORDER_HOOKS, needs={"Observation", "Condition", "Procedure"})
def dmab_ckd_calcium_monitoring(inp: RuleInput) -> Card | None:
    drafts = dm.dmab_drafts(inp)
    if not drafts:
        return None
    ckd = defs.advanced_ckd(inp.chart, inp.thresholds)
    if not ckd.present:
        return None
    t, chart = inp.thresholds, inp.chart

    phrases = _evidence_phrase(ckd)
    tail = "): high risk of severe hypocalcemia with denosumab"
    summary = tx.fit("Advanced CKD (" + ", ".join(phrases) + tail,
                     "Advanced CKD (" + phrases[0] + tail)

    finding = "Advanced kidney disease: " + "; ".join(ckd.words())
    lines = [f"Ordered: {tx.draft_list(drafts)}"]
    latest = ckd.latest_egfr
    if latest is not None and ckd.egfr is None:
        lines.append(f"The latest eGFR, {tx.lab_text(latest)}, is not below {t.egfr_advanced_ckd}, "
                     "but the diagnosis on record is used (a recorded CKD stage 4/5 or dialysis "
                     "wins over a single eGFR)")
    elif latest is None:
        egfr_day = chart.egfr_day(t.egfr_lookback_days_denosumab)
        if egfr_day.present_unusable:   # A39: an unusable latest eGFR is not "< 30"; named, not judged
            lines.append(f"The latest eGFR cannot be used ({tx.unusable_finding(egfr_day.results[0])}); "
                         "the diagnosis on record is used")
        else:
            lines.append(f"No usable eGFR in the last {t.egfr_lookback_days_denosumab} days"
                         + (f" (last: {tx.lab_text(chart.newest_any('egfr'))})" if chart.newest_any("egfr") else
                            " (none on record)") + "; the diagnosis on record is used")
    context: list[str] = []
    for concept, words in (("pth-intact", "intact PTH"), ("vitamin-d-25oh", "25-OH vitamin D"),
                           ("phosphate", "phosphate")):
        lab = chart.newest_any(concept)
        context.append(f"{words} {tx.lab_text(lab)}" if lab else f"{words}: none on record")
    judged = chart.calcium(t.calcium_lookback_days, t.calcium_limits)
    calcium_day = chart.calcium_day(t.calcium_lookback_days)
    if calcium_day.present_unusable:
        # A39: a latest calcium date whose results are all unusable is no usable calcium: said in
        # the finding, and the older calcium is not used as monitoring evidence
        finding += (f". No usable calcium in the last {t.calcium_lookback_days} days: "
                    + "; ".join(tx.unusable_finding(l) for l in calcium_day.results))
        previous = chart.previous_calcium(t.calcium_lookback_days, calcium_day.date, t.calcium_limits)
        context.append("calcium: latest not usable" + (
            f"; previous {previous.describe()} on {previous.date.isoformat()} — not used: a newer "
            "result exists" if previous is not None else ""))
    else:
        context.append(f"{judged.describe()} on {judged.date.isoformat()}" if judged else
                       f"calcium: none in the last {t.calcium_lookback_days} days")
    lines.append("Mineral and bone data on record: " + "; ".join(context))
    if any(d.drug.regimen == "120mg" for d in drafts):
        lines.append("For the 120 mg regimen the Xgeva label also notes a higher risk of "
                     "hypocalcemia with creatinine clearance below 30 mL/min or dialysis")
    detail = tx.layout(
        finding,
        "Severe, sometimes fatal hypocalcemia occurs with denosumab in advanced kidney disease, "
        "including dialysis; the drug is not contraindicated, the risk is managed by preparation "
        "and monitoring.",
        ["Before the dose check calcium, phosphate, PTH and 25-OH vitamin D, supervised by a "
         "clinician experienced in kidney mineral bone disorder", "ensure adequate calcium and "
         "(active) vitamin D", "calcium weekly for the first month after the dose, then monthly"],
        [tx.EVIDENCE["prolia-boxed"], tx.EVIDENCE["fda-dsc"]]
        + ([tx.EVIDENCE["xgeva-renal"]] if any(d.drug.regimen == "120mg" for d in drafts) else []),
        lines, t=t)

    ctx = inp.orders
    start = inp.today + timedelta(days=MONITORING_START_DAYS)
    weekly = lab_request(ctx, "calcium", "Weekly calcium after denosumab in advanced kidney disease",
                         weekly_count=MONITORING_WEEKS, start=start)
    suggestions = [
        lab_suggestion(ctx, "Order calcium + albumin now", ["calcium", "albumin"],
                       "Calcium before denosumab in advanced kidney disease"),
        Suggestion(f"Order calcium weekly × {MONITORING_WEEKS} from {start.isoformat()}",
                   [Action(f"Order serum calcium weekly × {MONITORING_WEEKS}, starting "
                           f"{start.isoformat()}", weekly)]),
        lab_suggestion(ctx, "Order PTH, phosphate and 25-OH vitamin D before the dose",
                       ["pth", "phosphate", "vitamin-d"],
                       "Mineral and bone assessment before denosumab"),
    ]
    return Card(rule_id=RULE_ID, rule_title=TITLE, summary=summary, indicator="warning",
                **tx.source(tx.label_link(drafts)), detail=detail,
                suggestions=suggestions, selection_behavior="any",
                override_reasons=override_reasons("nephrology-supervised", "monitoring-arranged",
                                                  "benefit-outweighs-risk", "specialist-supervised"),
                links=[LINKS["fda-dsc-2024"]])
