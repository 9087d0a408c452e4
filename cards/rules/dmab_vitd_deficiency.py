"""DMAB-VITD-DEFICIENCY — vitamin D deficiency with a denosumab order.

RULES.md §3 (with D4 "Initiation", D5 "25-OH vitamin D", §7 exclusive pairs).
Evidence: seed 001_282e696d69a84463.txt §Mandatory Pre-Treatment Requirements › Calcium and
Vitamin D Supplementation ("correct vitamin D deficiency before the first dose") and §Critical
Clinical Pitfalls #3; seed 002_b4619149f75727a9.txt §Getting your injection (adequate calcium and
vitamin D, blood test before the injection); Prolia label (hypocalcemia: ensure adequate calcium
and vitamin D).

Fires on an order hook for any denosumab draft when the latest usable 25-OH vitamin D within
``vitd_lookback_days`` is strictly below ``vitd_deficient_ng_ml`` after conversion to ng/mL and
rounding to 0.1 (nmol/L ÷ 2.496; exactly 20.0 does not fire; "<10" is below). ``warning`` at
initiation or below ``vitd_severe_ng_ml``, else ``info``. No usable result in the window → silent
(DMAB-VITD-NOT-CHECKED speaks at initiation): the two rules are exclusive by construction.
"""

from __future__ import annotations

from datetime import timedelta

from ..builders import cholecalciferol_order, lab_request, override_reasons
from ..model import Action, Card, Suggestion
from ..registry import MEDS, ORDER_HOOKS, RuleInput, rule
from . import _dmab_common as dm
from . import _definitions as defs
from . import _text as tx

RULE_ID = "DMAB-VITD-DEFICIENCY"
TITLE = "Vitamin D deficiency"
#: Recheck the level 8–12 weeks after starting repletion (catalog suggestion).
RECHECK_WEEKS = (8, 12)


@rule(RULE_ID, TITLE, hooks=ORDER_HOOKS, needs=MEDS | {"Observation"})
def dmab_vitd_deficiency(inp: RuleInput) -> Card | None:
    drafts = dm.dmab_drafts(inp)
    if not drafts:
        return None
    t = inp.thresholds
    lab = inp.chart.latest("vitamin-d-25oh", t.vitd_lookback_days)
    if lab is None or not dm.below(lab, t.vitd_deficient_ng_ml):
        return None
    initiation = defs.is_initiation(inp, dm.DENOSUMAB)
    severe = dm.below(lab, t.vitd_severe_ng_ml)
    indicator = "warning" if initiation or severe else "info"
    value = f"{lab.comparator or ''}{tx.fmt_rounded(lab.value)}"
    when = "before starting" if initiation else "alongside"
    summary = tx.fit(f"25-OH vitamin D {value} ng/mL on {lab.date.isoformat()}: correct deficiency "
                     f"{when} denosumab")

    supplements = defs.supplement_records(inp)
    vit_d = [r for r in supplements if r.drug.vitamin_d]
    converted = "" if lab.unit == "ng/mL" else f" = {value} ng/mL after conversion"
    lines = [f"**Finding.** {tx.draft_list(drafts)} ordered; the latest 25-OH vitamin D is "
             f"**{lab.describe()}{converted}** on {lab.date.isoformat()} ({(inp.today - lab.date).days} "
             f"days ago), below {tx.fmt_rounded(t.vitd_deficient_ng_ml)} ng/mL"
             + (f" and below {tx.fmt_rounded(t.vitd_severe_ng_ml)} ng/mL (severe deficiency)." if severe else ".")]
    lines.append(f"Card level {indicator}: " + ("start of denosumab" if initiation else
                 "continuation dose") + (", severe deficiency" if severe else "") + ".")
    lines.append("Vitamin D on the medication list: " + ("; ".join(dm.record_text(r) for r in vit_d)
                 if vit_d else "none found (active orders/statements, dispenses in the last "
                 f"{inp.thresholds.supplement_dispense_lookback_days} days)") + ".")
    lines += [
        "",
        "**Why it matters.** Vitamin D deficiency increases the risk of hypocalcemia after "
        "denosumab, which can be severe; the deficiency should be corrected before the first dose "
        "and supplementation maintained throughout treatment.",
        "",
        "**What to do.** Replete vitamin D per local protocol, then maintain 400–800 IU (or more "
        "per local protocol) daily with a total calcium intake of 1,200–1,500 mg/day; recheck "
        f"25-OH vitamin D in {RECHECK_WEEKS[0]}–{RECHECK_WEEKS[1]} weeks.",
        "",
        f"**Evidence.** {tx.SEED_001} §Calcium and Vitamin D Supplementation and §Critical "
        f"Clinical Pitfalls #3; {tx.SEED_002} §Getting your injection; Prolia label (adequate "
        "calcium and vitamin D). RULES.md §3 DMAB-VITD-DEFICIENCY, D5.",
    ]
    ctx = inp.orders
    recheck = lab_request(ctx, "vitamin-d", "Recheck 25-OH vitamin D after repletion")
    recheck["occurrencePeriod"] = {
        "start": (inp.today + timedelta(weeks=RECHECK_WEEKS[0])).isoformat(),
        "end": (inp.today + timedelta(weeks=RECHECK_WEEKS[1])).isoformat()}
    suggestions = [cholecalciferol_order(ctx),
                   Suggestion(f"Recheck 25-OH vitamin D in {RECHECK_WEEKS[0]}–{RECHECK_WEEKS[1]} weeks",
                              [Action("Order 25-OH vitamin D recheck", recheck)])]
    return Card(rule_id=RULE_ID, rule_title=TITLE, summary=summary, indicator=indicator,
                source_label="Prolia label; seed 001 (correct vitamin D deficiency first)",
                detail="\n".join(lines), suggestions=suggestions, selection_behavior="any",
                override_reasons=override_reasons("repletion-in-progress", "recent-result-elsewhere"),
                links=[tx.label_link(drafts)])
