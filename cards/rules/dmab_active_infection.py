"""DMAB-ACTIVE-INFECTION — active infection when starting or continuing denosumab.

RULES.md §3 (with D2, D6).
Evidence: seed 001_282e696d69a84463.txt §Mandatory Pre-Treatment Requirements › Infection
Assessment ("ensure complete clinical resolution of active infections, particularly urinary
tract infections, before starting") and §Other Adverse Effects (serious infections);
seed 003_0a5546957735fee5.txt §Side Effects (infections, "a significant concern"); Prolia label
§5 (serious infections: skin, urinary tract, pneumonia, sepsis).

Fires (``info``) on an order hook for any denosumab draft when an ``active-infection`` Condition
is active (D6: clinicalStatus active/recurrence/relapse, or no status and no abatement) and its
onset **or** recordedDate is within ``infection_recent_days``. Older "active" entries without a
recent date are not used (stale problem lists). Resolved, refuted and entered-in-error
conditions never count (D2).
"""

from __future__ import annotations

from ..builders import override_reasons
from ..model import Card
from ..registry import ORDER_HOOKS, RuleInput, rule
from . import _dmab_common as dm
from . import _text as tx

RULE_ID = "DMAB-ACTIVE-INFECTION"
TITLE = "Active infection when starting or continuing denosumab"


@rule(RULE_ID, TITLE, hooks=ORDER_HOOKS, needs={"Condition"})
def dmab_active_infection(inp: RuleInput) -> Card | None:
    drafts = dm.dmab_drafts(inp)
    if not drafts:
        return None
    days = inp.thresholds.infection_recent_days

    def recent(d) -> bool:  # noqa: ANN001 - a date or None
        return d is not None and 0 <= (inp.today - d).days <= days

    infections = [c for c in inp.chart.conditions_in("active-infection", active=True)
                  if recent(c.onset) or recent(c.recorded)]
    if not infections:
        return None
    infections.sort(key=lambda c: max(d for d in (c.onset, c.recorded) if d is not None), reverse=True)
    main = infections[0]
    since = main.onset or main.recorded
    name = tx.plain(main.display or "infection") + (" (suspected)" if main.suspected else "")
    summary = tx.fit(f"Active infection on record ({name} since {tx.iso(since)}): consider "
                     "resolving it before denosumab",
                     f"Active infection on record ({tx.plain(name, 25)} since {tx.iso(since)}): consider "
                     "resolving it before denosumab")
    details = [f"Ordered: {tx.draft_list(drafts)}"]
    details += [f"Problem list: {tx.condition_text(c)}" for c in infections]
    details.append(f"Looked for: active infections with an onset or recorded date in the last "
                   f"{days} days (older entries are not used)")
    detail = tx.layout(
        f"Active infection on record: {tx.escape_record(main.display or 'infection')}"
        + (" (suspected)" if main.suspected else "") + f" since {tx.iso(since)}",
        "Denosumab is associated with serious infections (cellulitis, urinary tract infection, "
        "pneumonia); an infection is not a contraindication, but starting or continuing is best "
        "after clinical resolution.",
        ["Check whether the infection has resolved", "consider deferring the dose until it has, "
         "unless giving it now outweighs the risk (for example an overdue dose with rebound risk)",
         "update the problem list if resolved"],
        [tx.EVIDENCE["prolia-infection"]], details, t=inp.thresholds)
    return Card(rule_id=RULE_ID, rule_title=TITLE, summary=summary, indicator="info",
                **tx.source(tx.label_link(drafts)), detail=detail,
                suggestions=tx.remove_drafts(drafts), selection_behavior="any",
                override_reasons=override_reasons("infection-resolved", "benefit-outweighs-risk"))
