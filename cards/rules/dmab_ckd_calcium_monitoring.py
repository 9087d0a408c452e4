"""DMAB-CKD-CALCIUM-MONITORING — predisposed to severe hypocalcemia with denosumab.

RULES.md §3 (with D5 "eGFR", D6, D7, D9 "Advanced CKD" and "Predisposed to severe hypocalcemia",
§7 exclusive pairs, §8 A16).
Evidence: seed 001_282e696d69a84463.txt §Calcium and Vitamin D Supplementation, §Hypocalcemia,
§Special Populations › Renal Impairment and §Critical Clinical Pitfalls #5; FDA Prolia label,
boxed warning and §5.1 (severe hypocalcemia in advanced CKD, eGFR < 30, dialysis, CKD-MBD;
patients predisposed to hypocalcemia — hypoparathyroidism, thyroid or parathyroid surgery,
malabsorption, excision of small intestine — monitor calcium within 14 days of the injection);
FDA Drug Safety Communication, 19 January 2024; Xgeva label (higher risk with CrCl < 30 or dialysis).

Fires on an order hook for any denosumab draft in a patient predisposed to severe hypocalcemia
(D9, A16: advanced CKD — latest eGFR strictly below ``egfr_advanced_ckd``, an active CKD 4/5 or
ESRD condition, dialysis —; active hypoparathyroidism; parathyroidectomy or total thyroidectomy
at any date; active celiac disease; bariatric surgery at any date). At initiation (D4) it fires
whenever the patient is predisposed; at a continuation dose only when no usable calcium is dated
within ``predisposed_calcium_evidence_days`` (30) (A39: a latest calcium date whose results are
all unusable is no usable calcium). The card names the first predisposition found.
"""

from __future__ import annotations

from datetime import timedelta

from cds_service.chart import DENOSUMAB

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


def usable_calcium_within(inp: RuleInput, days: int) -> bool:
    """A16 continuation: a usable calcium (D5) dated within ``days`` (A39: the latest calcium date
    decides; all its results unusable → no usable calcium)."""
    day = inp.chart.calcium_day(days)
    return bool(day.usable)


@rule(RULE_ID, TITLE, hooks=ORDER_HOOKS, needs={"Observation", "Condition", "Procedure"})
def dmab_ckd_calcium_monitoring(inp: RuleInput) -> Card | None:
    drafts = dm.dmab_drafts(inp)
    if not drafts:
        return None
    t, chart = inp.thresholds, inp.chart
    found = defs.predispositions(chart, t)
    if not found:
        return None
    initiation = defs.is_initiation(inp, DENOSUMAB)
    evidence_days = t.predisposed_calcium_evidence_days
    if not initiation and usable_calcium_within(inp, evidence_days):
        return None  # continuation with calcium monitoring evidenced (A16)
    first = found[0]
    if initiation:
        summary = tx.fit(f"{first.name}: high risk of severe hypocalcemia with denosumab; plan "
                         "calcium checks before and after the dose",
                         f"{first.name}: high risk of severe hypocalcemia with denosumab")
    else:
        summary = tx.fit(f"{first.name} and no calcium in the last {evidence_days} days: check calcium "
                         "before this denosumab dose",
                         f"{first.name}, no calcium in {evidence_days} days: check calcium before "
                         "this denosumab dose")

    ckd = defs.advanced_ckd(chart, t)
    lines = ["**Finding.** " + tx.draft_list(drafts) + (" ordered (initiation)" if initiation else
                                                         " ordered (continuation)")
             + " for a patient predisposed to severe hypocalcemia. Evidence used: "
             + "; ".join(f"{p.name.lower() if p.kind != 'advanced-ckd' else 'advanced CKD'} — "
                         + "; ".join(p.evidence) for p in found) + "."]
    latest = ckd.latest_egfr
    if ckd.present and latest is not None and ckd.egfr is None:
        lines.append(f"The latest eGFR, {tx.lab_text(latest)}, is not below {t.egfr_advanced_ckd}, "
                     "but the diagnosis on record is used (a recorded CKD stage 4/5 or dialysis "
                     "wins over a single eGFR).")
    elif ckd.present and latest is None:
        egfr_day = chart.egfr_day(t.egfr_lookback_days_denosumab)
        if egfr_day.present_unusable:   # A39: an unusable latest eGFR is not "< 30"; named, not judged
            lines.append(f"The latest eGFR cannot be used ({tx.unusable_finding(egfr_day.results[0])}); "
                         "the diagnosis on record is used.")
        else:
            lines.append(f"No usable eGFR in the last {t.egfr_lookback_days_denosumab} days"
                         + (f" (last: {tx.lab_text(chart.newest_any('egfr'))})" if chart.newest_any("egfr") else
                            " (none on record)") + "; the diagnosis on record is used.")
    if not initiation and not chart.calcium_day(evidence_days).present_unusable:
        olds = [lab for lab in (chart.newest_any(c) for c in ("calcium-serum", "calcium-corrected",
                                                              "calcium-ionized")) if lab is not None]
        last = max(olds, key=lambda lab: lab.date) if olds else None
        lines.append(f"No usable calcium in the last {evidence_days} days"
                     + (f"; last calcium on record: {tx.lab_text(last)}" if last else "; none on record")
                     + ".")
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
        lines[0] += (f" No usable calcium in the last {t.calcium_lookback_days} days: "
                     + "; ".join(tx.unusable_finding(l) for l in calcium_day.results) + ".")
        previous = chart.previous_calcium(t.calcium_lookback_days, calcium_day.date, t.calcium_limits)
        context.append("calcium: latest not usable" + (
            f"; previous {previous.describe()} on {previous.date.isoformat()} — not used: a newer "
            "result exists" if previous is not None else ""))
    else:
        context.append(f"{judged.describe()} on {judged.date.isoformat()}" if judged else
                       f"calcium: none in the last {t.calcium_lookback_days} days")
    lines.append("Mineral data on record: " + "; ".join(context) + ".")
    regimen_note = (" For the 120 mg regimen the Xgeva label also notes a higher risk of "
                    "hypocalcemia with CrCl < 30 or dialysis."
                    if any(d.drug.regimen == "120mg" for d in drafts) else "")
    ckd_first = first.kind == "advanced-ckd"
    lines += [
        "",
        "**Why it matters.** Severe, sometimes fatal hypocalcemia has followed denosumab in "
        "advanced CKD (eGFR < 30) including dialysis, above all with CKD-mineral bone disorder, and "
        "in patients with hypoparathyroidism, thyroid or parathyroid surgery or malabsorption "
        "(celiac disease, bariatric surgery). Denosumab is not contraindicated; the risk is "
        "managed by preparation and monitoring." + regimen_note,
        "",
        "**What to do.** Before the dose check calcium, phosphate, PTH and 25-OH vitamin D"
        + (" and assess CKD-MBD, supervised by a clinician experienced in it" if ckd_first else "")
        + "; ensure adequate calcium and (active) vitamin D. After the dose check calcium "
        + ("weekly for the first month, then monthly." if ckd_first else
           "10–14 days after the injection."),
        "",
        "**Evidence.** Prolia label, boxed warning and section 5.1; FDA Drug Safety "
        "Communication 19 Jan 2024.",
    ]

    ctx = inp.orders
    start = inp.today + timedelta(days=MONITORING_START_DAYS)
    weekly = lab_request(ctx, "calcium", "Weekly calcium after denosumab: predisposed to "
                         "severe hypocalcemia", weekly_count=MONITORING_WEEKS, start=start)
    suggestions = [
        lab_suggestion(ctx, "Order calcium + albumin now", ["calcium", "albumin"],
                       "Calcium before denosumab in a patient predisposed to severe hypocalcemia"),
        Suggestion(f"Order calcium weekly × {MONITORING_WEEKS} from {start.isoformat()}",
                   [Action(f"Order serum calcium weekly × {MONITORING_WEEKS}, starting "
                           f"{start.isoformat()}", weekly)]),
        lab_suggestion(ctx, "Order PTH, phosphate and 25-OH vitamin D before the dose",
                       ["pth", "phosphate", "vitamin-d"],
                       "CKD-MBD assessment before denosumab (FDA boxed warning)"),
    ]
    return Card(rule_id=RULE_ID, rule_title=TITLE, summary=summary, indicator="warning",
                source_label="FDA label: Prolia (2024 boxed warning)", detail="\n".join(lines),
                suggestions=suggestions, selection_behavior="any",
                override_reasons=override_reasons("nephrology-supervised", "monitoring-arranged",
                                                  "benefit-outweighs-risk", "specialist-supervised"),
                links=[LINKS["fda-dsc-2024"]])
