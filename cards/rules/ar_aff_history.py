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

    lines = [f"**Finding.** {tx.draft_list(drafts)} ordered; the problem list records an atypical "
             "femoral fracture:"]
    for c in found:
        how = " — identified by name, not code" if c.by_text else ""
        lines.append(f"- {tx.cut(c.display) or 'atypical femoral fracture'}: {c.status_text}, "
                     f"onset/recorded {tx.iso(c.date)}{how}")
    lines.append("")
    lines.append("**Why it matters.** Atypical (subtrochanteric or diaphyseal) femoral fractures "
                 "are linked to long-term bisphosphonate and denosumab therapy; after one, "
                 "bisphosphonates are usually discontinued and the contralateral femur is at risk.")
    lines.append("")
    lines.append("**What to do.** Decide with a bone specialist whether any antiresorptive should "
                 "be given; ask about new thigh or groin pain and image both femurs if present.")
    lines.append("")
    lines.append(f"**Evidence.** {tx.SEED_001} §Atypical Femoral Fractures; {tx.SEED_003} §Side "
                 "Effects; Prolia and bisphosphonate labels (atypical femoral fractures); ASBMR "
                 "task force 2016. RULES.md §5 AR-AFF-HISTORY.")
    return Card(rule_id=RULE_ID, rule_title=TITLE, summary=summary, indicator="warning",
                source_label="FDA labels: denosumab and bisphosphonates (atypical femoral fractures)",
                detail="\n".join(lines), override_reasons=override_reasons("specialist-decision"),
                links=[tx.label_link(drafts)])
