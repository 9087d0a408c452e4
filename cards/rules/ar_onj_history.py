"""AR-ONJ-HISTORY — history of osteonecrosis of the jaw.

RULES.md §5 (with D2 Condition statuses, D3 text fallback for osteonecrosis of the jaw, D6,
§8 item 19: no confirmed SNOMED CT concept, ICD-10-CM M87.180 and text patterns carry it).
Evidence: seed 001_282e696d69a84463.txt §Common and Serious Adverse Effects › Osteonecrosis of
the Jaw (ONJ) (infrequent but severe and treatment-limiting; rechallenge after resolution can be
considered, e.g. progressive GCTB); seed 003_0a5546957735fee5.txt §Side Effects (ONJ, risk
increased with dental procedures); AAOMS position paper on medication-related osteonecrosis of
the jaw, 2022 update.

Fires for a denosumab draft or any bisphosphonate draft when a counting Condition in
``osteonecrosis-of-jaw`` (code or text) exists, whatever its clinical status: ``critical`` when
one is active, ``warning`` when all are resolved/inactive. Refuted or entered-in-error Conditions
do not count (D2, removed by the chart).
"""

from __future__ import annotations

from datetime import date

from cds_service.chart import ConditionFact

from ..builders import LINKS, override_reasons
from ..model import Card
from ..registry import ORDER_HOOKS, RuleInput, rule
from . import _ar_common as ar
from . import _text as tx

RULE_ID = "AR-ONJ-HISTORY"
TITLE = "History of osteonecrosis of the jaw"


def _order(c: ConditionFact) -> tuple[bool, date]:
    return (c.active, c.date or date.min)


@rule(RULE_ID, TITLE, hooks=ORDER_HOOKS, needs={"Condition"})
def ar_onj_history(inp: RuleInput) -> Card | None:
    drafts = ar.antiresorptive_drafts(inp, bisphosphonates="any")
    if not drafts:
        return None
    found = sorted(inp.chart.conditions_in("osteonecrosis-of-jaw"), key=_order, reverse=True)
    if not found:
        return None
    main = found[0]  # an active one first, then the most recent
    indicator = "critical" if main.active else "warning"
    status = main.status_text.replace(" (suspected)", ", suspected")
    summary = (f"History of osteonecrosis of the jaw ({status}, {tx.iso(main.date)}): "
               "review antiresorptive therapy with dental/oral surgery")

    lines = [f"**Finding.** {tx.draft_list(drafts)} ordered; the problem list records "
             "osteonecrosis of the jaw:"]
    for c in found:
        when = f"onset/recorded {tx.iso(c.date)}" + (f", resolved {c.abated.isoformat()}" if c.abated else "")
        how = " — identified by name, not code" if c.by_text else ""
        lines.append(f"- {tx.cut(c.display) or 'osteonecrosis of the jaw'}: {c.status_text}, {when}{how}")
    lines.append("")
    lines.append("**Why it matters.** Osteonecrosis of the jaw is a severe, treatment-limiting "
                 "complication of denosumab and bisphosphonates (about 2 % with oncology doses); "
                 + ("an active lesion can worsen with continued antiresorptive exposure. "
                    if main.active else "recurrence is possible on re-exposure. ")
                 + "Rechallenge is considered only after resolution and specialist review (for "
                 "example progressive giant cell tumour of bone).")
    lines.append("")
    lines.append("**What to do.** Review the indication with dental/oral surgery (and oncology "
                 "where relevant) before ordering; document the shared decision; meticulous oral "
                 "hygiene and no elective invasive dental work during therapy.")
    lines.append("")
    lines.append(f"**Evidence.** {tx.SEED_001} §Osteonecrosis of the Jaw (ONJ); {tx.SEED_003} "
                 "§Side Effects; AAOMS MRONJ position paper 2022. RULES.md §5 AR-ONJ-HISTORY.")
    return Card(rule_id=RULE_ID, rule_title=TITLE, summary=summary, indicator=indicator,
                source_label="AAOMS position paper on MRONJ (2022)", detail="\n".join(lines),
                override_reasons=override_reasons("specialist-approved-rechallenge", "oncology-benefit"),
                links=[LINKS["aaoms-2022"]])
