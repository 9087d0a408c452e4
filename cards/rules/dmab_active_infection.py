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
    name = tx.cut(main.display or "infection") + (" (suspected)" if main.suspected else "")
    summary = tx.fit(f"Active infection on record ({name} since {tx.iso(since)}): consider "
                     "resolving it before denosumab",
                     f"Active infection on record ({tx.cut(name, 25)} since {tx.iso(since)}): consider "
                     "resolving it before denosumab")
    lines = [f"**Finding.** {tx.draft_list(drafts)} ordered while an infection is recorded as "
             f"active with a date in the last {days} days:"]
    lines += [f"- {tx.condition_text(c)}" for c in infections]
    lines += [
        "Active infection entries whose onset and recorded dates are both older than "
        f"{days} days are not used (stale problem lists).",
        "",
        "**Why it matters.** Denosumab is associated with serious infections (skin infections "
        "such as cellulitis and erysipelas, urinary tract infections, pneumonia, sepsis), some "
        "requiring hospitalisation. An infection is not a contraindication, but starting or "
        "continuing is best after clinical resolution.",
        "",
        "**What to do.** Check whether the infection has resolved; consider deferring the dose "
        "until it has, unless the benefit of giving it now outweighs the risk (e.g. overdue dose "
        "with rebound risk). Update the problem list if resolved.",
        "",
        f"**Evidence.** {tx.SEED_001} §Infection Assessment and §Other Adverse Effects; "
        f"{tx.SEED_003} §Side Effects (infections); Prolia label §5 (serious infections). "
        "RULES.md §3 DMAB-ACTIVE-INFECTION.",
    ]
    return Card(rule_id=RULE_ID, rule_title=TITLE, summary=summary, indicator="info",
                source_label="FDA label: Prolia §5 (serious infections)", detail="\n".join(lines),
                override_reasons=override_reasons("infection-resolved", "benefit-outweighs-risk"),
                links=[tx.label_link(drafts)])
