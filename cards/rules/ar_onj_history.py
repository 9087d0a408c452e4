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

from ..builders import LINKS, dental_referral, override_reasons
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

    details = [f"Ordered: {tx.draft_list(drafts)}"]
    for c in found:
        when = f"onset/recorded {tx.iso(c.date)}" + (f", resolved {c.abated.isoformat()}" if c.abated else "")
        how = " — identified by name, not code" if c.by_text else ""
        details.append(f"Problem list: {tx.escape_record(c.display or 'osteonecrosis of the jaw')}: "
                       f"{c.status_text}, {when}{how}")
    detail = tx.layout(
        f"Osteonecrosis of the jaw on record ({status}, {tx.iso(main.date)})",
        ("An active lesion can worsen with continued antiresorptive exposure; "
         if main.active else "Recurrence is possible on re-exposure; ")
        + "rechallenge is considered only after resolution and specialist review.",
        ["Review the indication with dental/oral surgery (and oncology where relevant) before "
         "ordering", "document the shared decision", "no elective invasive dental work during therapy"],
        [tx.EVIDENCE["labels-onj"], tx.EVIDENCE["aaoms"]], details, t=inp.thresholds)
    return Card(rule_id=RULE_ID, rule_title=TITLE, summary=tx.summary(summary), indicator=indicator,
                **tx.source(tx.label_link(drafts)), detail=detail,
                suggestions=[dental_referral(inp.orders, label="Refer to dental/oral surgery",
                                             reason="Osteonecrosis of the jaw: review before antiresorptive therapy"),
                             *tx.remove_drafts(drafts)], selection_behavior="any",
                override_reasons=override_reasons("specialist-approved-rechallenge", "oncology-benefit"),
                links=[LINKS["aaoms-2022"]])
