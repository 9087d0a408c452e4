"""BP-VITD-DEFICIENCY — vitamin D deficiency before zoledronic acid 5 mg.

RULES.md §4 BP-VITD-DEFICIENCY, §8.2 A20 (decision 20); D5 "25-OH vitamin D", A39 (the latest
result decides), §1.2 rule 6 (display rounding, A40).
Evidence: Reclast label §2, §5 (treat hypocalcemia and disturbances of mineral metabolism before
treatment; supplement calcium and vitamin D).

Fires on an order hook for a zoledronic acid 5 mg draft (strength as D3 reads it; an unstated
strength without an oncology indication is the 5 mg regimen, as for the other BP-* rules) when the
latest 25-OH vitamin D within ``vitd_lookback_days`` is usable and strictly below
``vitd_deficient_ng_ml`` after conversion to ng/mL and rounding to 0.1 (exactly 20.0 does not fire;
"<10" is below). ``warning`` at every level below the cut-off (A20); below ``vitd_severe_ng_ml``
the finding says "severe deficiency". No result, or a latest result that is not usable → no card
(there is no "not checked" rule for bisphosphonates; an older result never stands in, A39).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from cds_service.chart import DraftOrder, Lab, below

from ..builders import cholecalciferol_order, lab_request, override_reasons
from ..model import Action, Card, Suggestion
from ..registry import MEDS, ORDER_HOOKS, RuleInput, rule
from . import _bp_common as bp
from . import _text as tx

RULE_ID = "BP-VITD-DEFICIENCY"
TITLE = "Zoledronic acid 5 mg with vitamin D deficiency"
SOURCE_LABEL = "FDA label: Reclast (zoledronic acid) 5 mg/100 mL"
SOURCE_URL = "https://dailymed.nlm.nih.gov/dailymed/drugInfo.cfm?setid=5a9b3737-9ce6-4a89-b76e-6aab79eba9cf"


def zol5_drafts(inp: RuleInput) -> list[DraftOrder]:
    """The triggering zoledronic acid 5 mg drafts (D3 strength; see the module docstring)."""
    return [d for d in bp.bp_drafts(inp)
            if d.drug.agent == "zoledronic-acid" and bp.zoledronic_regimen(inp, d)[0] == "5mg"]


def ordered_list(drafts: list[DraftOrder]) -> str:
    """The drafts for the Details section, record text escaped (§1.2 rule 4), with D3's
    "identified by name, not code" for a text match."""
    return "; ".join(tx.escape_record(d.label) + (f" ({tx.BY_TEXT_NOTE})" if d.drug.by_text else "")
                     for d in drafts)


def shown_ng_ml(lab: Lab, cutoffs: tuple[Decimal, ...]) -> str:
    """The judged value in ng/mL for a card (§1.2 rule 6): an integer, except where rounding
    would reach a cut-off the card states (19.5–19.9 → "19.6"), then D5's one decimal."""
    value = lab.value if lab.value is not None else Decimal(0)
    whole = value.quantize(Decimal(1), rounding=ROUND_HALF_UP)
    if any(value < c <= whole for c in cutoffs):
        return f"{lab.comparator or ''}{value:f}"
    return f"{lab.comparator or ''}{whole:f}"


@rule(RULE_ID, TITLE, hooks=ORDER_HOOKS, needs=MEDS | {"Observation"})
def bp_vitd_deficiency(inp: RuleInput) -> Card | None:
    drafts = zol5_drafts(inp)
    if not drafts:
        return None
    t = inp.thresholds
    lab = inp.chart.latest("vitamin-d-25oh", t.vitd_lookback_days)
    if lab is None or not below(lab, t.vitd_deficient_ng_ml):
        return None
    severe = below(lab, t.vitd_severe_ng_ml)
    value = shown_ng_ml(lab, (t.vitd_deficient_ng_ml, t.vitd_severe_ng_ml))
    when = lab.date.isoformat()
    summary = tx.fit(f"25-OH vitamin D {value} ng/mL on {when}: replete vitamin D before zoledronic acid "
                     "5 mg (hypocalcemia risk)",
                     f"25-OH vitamin D {value} ng/mL on {when}: replete vitamin D before zoledronic acid")
    cutoff = f"{t.vitd_deficient_ng_ml.normalize():f}"
    finding = (f"25-OH vitamin D {value} ng/mL on {when}, "
               + (f"severe deficiency (below {t.vitd_severe_ng_ml.normalize():f} ng/mL)" if severe
                  else f"below {cutoff} ng/mL"))
    sent = lab.shown_value()
    details = [f"- Ordered: {ordered_list(drafts)}",
               f"- Laboratory result, {when}"
               + (f": {sent} {tx.escape_record(lab.measured_unit or '')} as sent" if lab.unit != "ng/mL" and sent
                  else "")
               + f"; the latest 25-OH vitamin D of the last {t.vitd_lookback_days} days decides"]
    detail = "\n".join([
        f"**{finding}.** Vitamin D deficiency raises the risk of hypocalcemia after a zoledronic acid "
        "infusion.",
        "",
        "**What to do:** replete vitamin D and make sure calcium intake is adequate before the "
        "infusion; recheck 25-OH vitamin D before it is given.",
        "",
        "**Evidence:** FDA label: Reclast (treat hypocalcemia and disturbances of mineral metabolism "
        "before treatment; supplement calcium and vitamin D).",
        "",
        "#### Details",
        *details,
    ])
    ctx = inp.orders
    recheck = Suggestion("Recheck 25-OH vitamin D after repletion",
                         [Action("Order 25-OH vitamin D",
                                 lab_request(ctx, "vitamin-d", "Recheck 25-OH vitamin D before zoledronic acid"))])
    return Card(rule_id=RULE_ID, rule_title=TITLE, summary=summary, indicator="warning",
                source_label=SOURCE_LABEL, source_url=SOURCE_URL, detail=detail,
                suggestions=[cholecalciferol_order(ctx), recheck], selection_behavior="any",
                override_reasons=override_reasons("repletion-in-progress", "recent-result-elsewhere"))
