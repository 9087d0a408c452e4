"""AR-AFF-HISTORY — history of atypical femoral fracture.

RULES.md §5 (with D2, D3 text fallback: ``atypical (femoral|femur) fracture`` and ICD-10-CM
``M84.75*``, D6, §8 item 19).
Evidence: seed 001_282e696d69a84463.txt §Common and Serious Adverse Effects › Atypical Femoral
Fractures (rare, with long-term denosumab as with bisphosphonates; new thigh or groin pain needs
radiographs); seed 003_0a5546957735fee5.txt §Side Effects; Prolia and bisphosphonate labels
(Warnings: atypical femoral fractures — consider interrupting therapy); ASBMR task force 2016.

Fires (``warning``) for a denosumab draft or any bisphosphonate draft when a counting Condition in
``atypical-femoral-fracture`` (ICD-10-CM M84.75* prefix, or text) exists, any clinical status;
refuted / entered-in-error Conditions do not count (D2).
"""

from __future__ import annotations

from datetime import date

from ..builders import override_reasons
from ..model import Card
from ..registry import ORDER_HOOKS, RuleInput, rule
from . import _ar_common as ar
from . import _text as tx

RULE_ID = "AR-AFF-HISTORY"
TITLE = "History of atypical femoral fracture"


@rule(RULE_ID, TITLE, hooks=ORDER_HOOKS, needs={"Condition"})
def ar_aff_history(inp: RuleInput) -> Card | None:
    drafts = ar.antiresorptive_drafts(inp, bisphosphonates="any")
    if not drafts:
        return None
    found = sorted(inp.chart.conditions_in("atypical-femoral-fracture"),
                   key=lambda c: c.date or date.min, reverse=True)
    if not found:
        return None
    dated = next((c for c in found if c.date), found[0])
    summary = (f"History of atypical femoral fracture ({tx.iso(dated.date)}): antiresorptive "
               "therapy is usually stopped; review before ordering")

    details = [f"Ordered: {tx.draft_list(drafts)}"]
    for c in found:
        how = " — identified by name, not code" if c.by_text else ""
        details.append(f"Problem list: {tx.escape_record(c.display or 'atypical femoral fracture')}: "
                       f"{c.status_text}, onset/recorded {tx.iso(c.date)}{how}")
    detail = tx.layout(
        f"Atypical femoral fracture on record ({tx.iso(dated.date)})",
        "Atypical femoral fractures are linked to long-term bisphosphonate and denosumab therapy; "
        "after one, antiresorptives are usually stopped and the other femur is at risk.",
        ["Decide with a bone specialist whether any antiresorptive should be given",
         "ask about new thigh or groin pain and image both femurs if present"],
        [tx.EVIDENCE["labels-aff"], tx.EVIDENCE["asbmr"]], details, t=inp.thresholds)
    return Card(rule_id=RULE_ID, rule_title=TITLE, summary=tx.summary(summary), indicator="warning",
                **tx.source(tx.label_link(drafts)), detail=detail,
                suggestions=tx.remove_drafts(drafts), selection_behavior="any",
                override_reasons=override_reasons("specialist-decision"))
