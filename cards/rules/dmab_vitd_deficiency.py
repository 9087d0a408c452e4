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
    value = tx.vitamin_d_value(lab.value, t.vitd_deficient_ng_ml, t.vitd_severe_ng_ml,
                               comparator=lab.comparator)   # A40: integer, one decimal near a cut-off
    when = "before starting" if initiation else "alongside"
    summary = tx.fit(f"25-OH vitamin D {value} ng/mL on {lab.date.isoformat()}: correct deficiency "
                     f"{when} denosumab")

    supplements = defs.supplement_records(inp)
    vit_d = [r for r in supplements if r.drug.vitamin_d]
    converted = "" if lab.unit == "ng/mL" else f" = {value} ng/mL after conversion"
    details = [f"Ordered: {tx.draft_list(drafts)}, "
               + ("a start of denosumab" if initiation else "a continuation dose"),
               f"Result: {tx.lab_shown(lab)}{converted} on {lab.date.isoformat()} "
               f"({(inp.today - lab.date).days} days ago; look-back {t.vitd_lookback_days} days)",
               "Vitamin D on the medication list: " + ("; ".join(dm.record_text(r) for r in vit_d)
               if vit_d else "none found (active orders and statements, recent dispenses)")]
    detail = tx.layout(
        f"25-OH vitamin D {value} ng/mL on {lab.date.isoformat()}, below "
        f"{tx.fmt(t.vitd_deficient_ng_ml)} ng/mL" + (" (severe deficiency)" if severe else ""),
        "Vitamin D deficiency increases the risk of hypocalcemia after denosumab, which can be severe.",
        ["Replete vitamin D per local protocol, then maintain 400–800 IU daily with 1,200–1,500 mg "
         "of total calcium intake", f"recheck 25-OH vitamin D in {RECHECK_WEEKS[0]}–{RECHECK_WEEKS[1]} weeks"],
        [tx.EVIDENCE["prolia-supplement"]], details, t=inp.thresholds)
    ctx = inp.orders
    recheck = lab_request(ctx, "vitamin-d", "Recheck 25-OH vitamin D after repletion")
    recheck["occurrencePeriod"] = {
        "start": (inp.today + timedelta(weeks=RECHECK_WEEKS[0])).isoformat(),
        "end": (inp.today + timedelta(weeks=RECHECK_WEEKS[1])).isoformat()}
    suggestions = [cholecalciferol_order(ctx),
                   Suggestion(f"Recheck 25-OH vitamin D in {RECHECK_WEEKS[0]}–{RECHECK_WEEKS[1]} weeks",
                              [Action("Order 25-OH vitamin D recheck", recheck)])]
    return Card(rule_id=RULE_ID, rule_title=TITLE, summary=summary, indicator=indicator,
                **tx.source("LBL-PROLIA"), detail=detail,
                suggestions=suggestions, selection_behavior="any",
                override_reasons=override_reasons("repletion-in-progress", "recent-result-elsewhere"))
