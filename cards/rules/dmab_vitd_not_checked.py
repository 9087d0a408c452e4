"""DMAB-VITD-NOT-CHECKED — no vitamin D level before starting denosumab.

RULES.md §3 (with D4 "Initiation", D5 "Which result" / "Value forms", §7 exclusive pairs).
Evidence: seed 001_282e696d69a84463.txt §Mandatory Pre-Treatment Requirements › Calcium and
Vitamin D Supplementation ("correct vitamin D deficiency before the first dose"); Prolia label
(adequate calcium and vitamin D before and during treatment).

Fires on an order hook when a denosumab draft is an **initiation** (D4) and no usable 25-OH
vitamin D result is dated within ``vitd_lookback_days``: none at all, only stale ones, only ones
with an unrecognised unit, or a latest result that is unusable (A39: unit not recognised, no
value, no numeric value — an older usable result does not stand in for it; the card names the
latest result in D5's wording and the older one as "not used"). Entered-in-error and
cancelled results never reach the chart (D2). Continuation doses never fire. Exclusive with
DMAB-VITD-DEFICIENCY by construction (that rule needs a usable result in the same window).
"""

from __future__ import annotations

from datetime import timedelta

from ..builders import lab_suggestion, override_reasons
from ..model import Card
from ..registry import MEDS, ORDER_HOOKS, RuleInput, rule
from . import _dmab_common as dm
from . import _definitions as defs
from . import _text as tx

RULE_ID = "DMAB-VITD-NOT-CHECKED"
TITLE = "No vitamin D level before starting"


@rule(RULE_ID, TITLE, hooks=ORDER_HOOKS, needs=MEDS | {"Observation"})
def dmab_vitd_not_checked(inp: RuleInput) -> Card | None:
    drafts = dm.dmab_drafts(inp)
    if not drafts or not defs.is_initiation(inp, dm.DENOSUMAB):
        return None
    window = inp.thresholds.vitd_lookback_days
    chart = inp.chart
    if chart.latest("vitamin-d-25oh", window) is not None:
        return None

    start = inp.today - timedelta(days=window)
    latest = chart.latest_day("vitamin-d-25oh", window)   # A39: the latest date decides
    span = "12 months" if window == 365 else f"{window} days"
    if latest.present_unusable:
        # A39: the latest result is unusable; an older usable one does not stand in for it
        why_not = tx.reason_word(latest.results[0])
        summary = tx.fit(f"No usable 25-OH vitamin D in the last {span} (latest "
                         f"{latest.date.isoformat()}: {why_not}) before starting denosumab",
                         f"No usable 25-OH vitamin D in the last {span} before starting denosumab")
        finding = (f"No usable 25-OH vitamin D in the last {span}: "
                   + "; ".join(tx.unusable_finding(l) for l in latest.results))
        lines = [f"Ordered as a start of denosumab: {tx.draft_list(drafts)}"]
        previous = chart.previous_usable("vitamin-d-25oh", latest.date, window)
        if previous is not None:
            lines.append(f"Previous usable result: 25-OH vitamin D {tx.vitamin_d_value(previous.value, inp.thresholds.vitd_deficient_ng_ml)} ng/mL "
                         f"on {previous.date.isoformat()} — not used: a newer result exists.")
        stale = previous or chart.previous_usable("vitamin-d-25oh", latest.date)
        if previous is None and stale is not None:
            lines.append(f"Last usable result: {tx.lab_text(stale)} ({tx.vitamin_d_value(stale.value, inp.thresholds.vitd_deficient_ng_ml)} ng/mL) — "
                         f"stale ({(inp.today - stale.date).days} days old), not used.")
    else:
        summary = ("No 25-OH vitamin D result in the last 12 months before starting denosumab"
                   if window == 365 else
                   tx.fit(f"No 25-OH vitamin D result in the last {window} days before starting denosumab"))
        finding = f"No 25-OH vitamin D result on record in the last {span}"
        lines = [f"Ordered as a start of denosumab: {tx.draft_list(drafts)}",
                 f"Looked for: a usable 25-OH vitamin D result between {start.isoformat()} and "
                 f"{inp.today.isoformat()} ({window} days)"]
        newest = chart.newest_any("vitamin-d-25oh")
        stale = next((lab for lab in chart.labs("vitamin-d-25oh") if lab.usable), None)
        if newest is not None and not newest.usable:
            lines.append(f"Last result: {tx.unusable_finding(newest)} — stale "
                         f"({(inp.today - newest.date).days} days old), not used.")
        if stale is not None:
            lines.append(f"Last usable result: {tx.lab_text(stale)} ({tx.vitamin_d_value(stale.value, inp.thresholds.vitd_deficient_ng_ml)} ng/mL) — "
                         f"stale ({(inp.today - stale.date).days} days old), not used.")
        elif newest is None:
            lines.append("No 25-OH vitamin D result of any age is on record (results entered in error "
                         "or cancelled are not counted).")
    detail = tx.layout(
        finding,
        "Vitamin D deficiency increases the risk of hypocalcemia after denosumab; it should be "
        "found and corrected before the first dose.",
        ["Check 25-OH vitamin D before the first dose (or document a result from elsewhere)",
         "supplement vitamin D 400–800 IU and calcium to a total intake of 1,200–1,500 mg/day "
         "throughout treatment"],
        [tx.EVIDENCE["prolia-supplement"], tx.EVIDENCE["endo"]], lines, t=inp.thresholds)
    suggestion = lab_suggestion(inp.orders, "Order 25-OH vitamin D", ["vitamin-d"],
                                "25-OH vitamin D before starting denosumab")
    return Card(rule_id=RULE_ID, rule_title=TITLE, summary=summary, indicator="info",
                **tx.source(tx.label_link(drafts)), detail=detail,
                suggestions=[suggestion], selection_behavior="any",
                override_reasons=override_reasons("result-elsewhere", "supplemented-empirically"))
