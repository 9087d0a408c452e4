"""AR-CALCIUM-NOT-CHECKED — no recent calcium before denosumab or an IV bisphosphonate.

RULES.md §5 (with D5 "Calcium to judge", D9 "Hypocalcemia-prone", §7 exclusive pairs, §8 item 16).
Evidence: seed 001_282e696d69a84463.txt §Mandatory Pre-Treatment Requirements › Calcium and
Vitamin D Supplementation ("monitor serum calcium levels"); seed 002_b4619149f75727a9.txt
§Getting your injection ("your doctor takes a blood test before the infusion"); FDA Prolia label
(hypocalcemia must be corrected before starting; check calcium before each dose in predisposed
patients, and 10–14 days after the injection); Reclast label (contraindicated in hypocalcemia;
check calcium before treatment).

Fires when a denosumab draft or an IV bisphosphonate draft is ordered and no *usable* calcium
(total, lab-corrected or ionized, D5) is dated within ``calcium_lookback_days``: none at all,
only stale results, only ignored statuses (entered-in-error, cancelled: removed by the chart, D2)
or a latest calcium date whose results are all unusable (A39: unit not recognised, no value, no
numeric value — named in D5's wording; an older usable calcium in the window does not stand in
for it, and is named, "was low" when it was). Oral bisphosphonates never (§8 item 16). Exclusive with
DMAB-HYPOCALCEMIA and BP-HYPOCALCEMIA by construction: as soon as a usable calcium exists in the
window, this rule is silent and those rules judge it.
"""

from __future__ import annotations

from datetime import timedelta

from cds_service.chart import DENOSUMAB, Lab

from ..builders import LAB_CODES, OrderContext, lab_request, override_reasons
from ..model import Action, Card, Suggestion
from ..registry import ORDER_HOOKS, RuleInput, rule
from . import _ar_common as ar
from . import _definitions as defs
from . import _text as tx

RULE_ID = "AR-CALCIUM-NOT-CHECKED"
TITLE = "No recent calcium before denosumab or an IV bisphosphonate"
CALCIUM_CONCEPTS = ("calcium-serum", "calcium-corrected", "calcium-ionized")
_CONCEPT_WORDS = {"calcium-serum": "total calcium", "calcium-corrected": "albumin-corrected calcium",
                  "calcium-ionized": "ionized calcium"}


def _newest_calcium(inp: RuleInput) -> Lab | None:
    """The newest counting calcium result of any form, age or unit (for "last: …")."""
    found = [lab for c in CALCIUM_CONCEPTS if (lab := inp.chart.newest_any(c)) is not None]
    return max(found, key=lambda l: l.date, default=None)


def _renal_missing(inp: RuleInput, has_iv_bp: bool) -> bool:
    """Creatinine/eGFR "also missing": the AR-RENAL-FUNCTION-UNKNOWN test for these drafts."""
    t = inp.thresholds
    window = t.egfr_lookback_days_iv_bp if has_iv_bp else t.egfr_lookback_days_denosumab
    return inp.chart.egfr(window) is None and not defs.kidney_records(inp.chart, inp.thresholds).present


def _calcimimetic_names(inp: RuleInput) -> list[str]:
    """"Calcimimetic active" as DMAB-CALCIMIMETIC reads it (D9 companion, RULES.md §3): names."""
    names: list[str] = []
    for r in defs.calcimimetic_records(inp):
        if r.drug.name not in names:
            names.append(r.drug.name)
    return names


def _suggestion(ctx: OrderContext, with_creatinine: bool) -> Suggestion:
    reason = "Calcium before antiresorptive therapy (no result in the look-back window)"
    labs = ["calcium", "albumin"] + (["creatinine"] if with_creatinine else [])
    actions = []
    for lab in labs:
        body = lab_request(ctx, lab, reason)
        if lab == "creatinine":
            body["code"]["text"] = "Creatinine with eGFR (CKD-EPI 2021)"
        actions.append(Action(f"Order {LAB_CODES[lab][1].split(' [')[0].lower()}", body))
    label = "Order serum calcium + albumin" + (" + creatinine/eGFR" if with_creatinine else "")
    return Suggestion(label, actions)


@rule(RULE_ID, TITLE, hooks=ORDER_HOOKS, needs={"Observation"})
def ar_calcium_not_checked(inp: RuleInput) -> Card | None:
    drafts = ar.antiresorptive_drafts(inp, bisphosphonates="iv")
    if not drafts:
        return None
    t = inp.thresholds
    window = t.calcium_lookback_days
    if inp.chart.calcium(window, t.calcium_limits) is not None:
        return None  # a usable calcium exists: DMAB-/BP-HYPOCALCEMIA judge it (§7)

    has_iv_bp = any(d.drug.is_iv_bisphosphonate for d in drafts)
    initiations = [d for d in drafts if defs.draft_initiation(inp, d)]
    prone = defs.hypocalcemia_prone(inp.chart, inp.thresholds)
    calcimimetics = _calcimimetic_names(inp)
    reasons: list[str] = []
    if initiations:
        reasons.append("starting therapy (" + ", ".join(d.label for d in initiations) + ")")
    if prone:
        reasons.append("prone to hypocalcemia: " + "; ".join(prone))
    if calcimimetics:
        reasons.append("calcimimetic active: " + ", ".join(calcimimetics))
    if has_iv_bp:
        reasons.append("IV bisphosphonate")
    indicator = "warning" if reasons else "info"

    newest = _newest_calcium(inp)
    latest = inp.chart.calcium_day(window)       # A39: its date decides, and none of it is usable
    unusable = latest.unusable
    agent = ar.agents_phrase(d.drug for d in drafts)
    if unusable:
        why_not = tx.reason_word(unusable[0])
        summary = tx.fit(f"No usable calcium in the last {window} days (latest "
                         f"{latest.date.isoformat()}: {why_not}): check calcium before {agent}",
                         f"No usable calcium in the last {window} days (latest "
                         f"{latest.date.isoformat()}: {why_not}): check calcium first")
    else:
        if newest is None:
            last = "none on record"
        else:
            last = newest.date.isoformat()
        summary = f"No serum calcium in the last {window} days (last: {last}): check calcium before {agent}"
        if len(summary) >= 140:
            summary = f"No serum calcium in the last {window} days (last: {last}): check calcium first"

    renal_missing = _renal_missing(inp, has_iv_bp)
    start = (inp.today - timedelta(days=window)).isoformat()
    if unusable:
        # A39: the latest calcium is named in D5's wording; an older usable one does not stand in
        previous = inp.chart.previous_calcium(window, latest.date, t.calcium_limits)
        finding = (f"**Finding.** {tx.draft_list(drafts)} ordered, and the latest calcium in the "
                   f"last {window} days cannot be used: "
                   + "; ".join(tx.unusable_finding(l)
                               for l in unusable) + ".")
        if previous is not None and previous.low:
            finding += (f" The previous result, {previous.describe()} on "
                        f"{previous.date.isoformat()}, was low.")
        lines = [finding]
        if previous is not None:
            lines.append(f"Previous usable calcium: {previous.describe()} on "
                         f"{previous.date.isoformat()} — not used: a newer result exists.")
        else:
            stale = inp.chart.previous_calcium(None, latest.date, t.calcium_limits)  # type: ignore[arg-type]
            if stale is not None:
                lines.append(f"Last usable calcium: {stale.describe()} on {stale.date.isoformat()} "
                             f"— stale ({(inp.today - stale.date).days} days old), not used.")
    else:
        lines = [f"**Finding.** {tx.draft_list(drafts)} ordered, and no usable serum calcium "
                 f"(total, albumin-corrected or ionized) is on record in the last {window} days "
                 f"(looked for results dated {start} to {inp.today.isoformat()})."]
        if newest is None:
            lines.append("No calcium result of any age is on record (results entered in error or "
                         "cancelled are not counted).")
        elif newest.usable:
            lines.append(f"Last result: {_CONCEPT_WORDS[newest.concept]} {tx.lab_text(newest)} — "
                         f"stale ({(inp.today - newest.date).days} days old), not used.")
        else:
            lines.append(f"Last result: {tx.unusable_finding(newest)} "
                         f"— stale ({(inp.today - newest.date).days} days old), not used.")
    lines.append("")
    lines.append("**Why it matters.** Hypocalcemia is a contraindication to denosumab and to "
                 "bisphosphonates for bone loss and must be corrected before the dose; severe, "
                 "sometimes fatal hypocalcemia after denosumab occurs mostly in advanced CKD, "
                 "dialysis and with calcimimetics. Without a recent result the safety check "
                 "cannot be done.")
    lines.append("")
    lines.append(f"**Card level: {indicator}.** " + (
        "Reasons: " + "; ".join(reasons) + "." if reasons else
        "Continuation dose, no hypocalcemia risk factor, no calcimimetic on record."))
    lines.append("")
    todo = "Check serum calcium with albumin before the dose"
    if renal_missing:
        todo += " (and creatinine/eGFR, also missing)"
    lines.append(f"**What to do.** {todo}; correct any hypocalcemia and make sure calcium + "
                 "vitamin D supplementation is in place before giving the drug.")
    lines.append("")
    lines.append("**Evidence.** FDA Prolia label (check calcium before each dose in predisposed "
                 "patients, and 10–14 days after); Reclast label (hypocalcemia is a "
                 "contraindication).")
    source = "FDA label: Reclast (hypocalcemia contraindication)" if has_iv_bp and not \
        any(d.drug.drug_class == DENOSUMAB for d in drafts) else "FDA label: Prolia (check calcium before dosing)"
    return Card(rule_id=RULE_ID, rule_title=TITLE, summary=summary, indicator=indicator,
                source_label=source, detail="\n".join(lines),
                suggestions=[_suggestion(inp.orders, renal_missing)], selection_behavior="any",
                override_reasons=override_reasons("result-elsewhere", "drawn-today"),
                links=[tx.label_link(drafts)])
