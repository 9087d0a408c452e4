"""AR-RECENT-INVASIVE-DENTAL — invasive dental procedure in the healing window.

RULES.md §5 (with D4 "Initiation", D7, D10 ``dental_healing_days``, §7, §8 items 8 and 9).
Evidence: seed 001_282e696d69a84463.txt §Mandatory Pre-Treatment Requirements › Dental
Evaluation ("wait 2-4 weeks after dental work to allow adequate healing before the first
injection"); AAOMS position paper on MRONJ, 2022 update (start once the extraction site has
mucosal coverage).

Fires (``warning``) for a denosumab draft or an IV bisphosphonate draft that is an initiation
(no dose of the same drug class in ``initiation_gap_days``, D4) when a completed Procedure in
``invasive-dental-procedure`` is dated within ``dental_healing_days`` before today (inclusive, D1).
A22: also (``info``) for a continuation dose of an oncology regimen (D9: denosumab 120 mg,
zoledronic acid 4 mg, pamidronate); an initiation in the same request keeps the card ``warning``.
Suggested earliest start = procedure date + ``dental_healing_days``. An extraction is not a dental
evaluation: DMAB-DENTAL-CLEARANCE / BP-DENTAL may fire alongside only when no evaluation is on
record (they decide that themselves).
"""

from __future__ import annotations

from datetime import timedelta

from ..builders import LINKS, override_reasons
from ..model import Card
from ..registry import MEDS, ORDER_HOOKS, RuleInput, rule
from cds_service.chart import DENOSUMAB, DraftOrder

from . import _ar_common as ar
from . import _bp_common as bp
from . import _definitions as defs
from . import _text as tx

RULE_ID = "AR-RECENT-INVASIVE-DENTAL"
TITLE = "Invasive dental procedure in the healing window"


def oncology_regimen(inp: RuleInput, d: DraftOrder) -> bool:
    """D9 "Oncology regimen" (A22): denosumab 120 mg, zoledronic acid 4 mg (a zoledronic acid of
    unstated strength is read as the bisphosphonate rules read it), or pamidronate."""
    if d.drug.drug_class == DENOSUMAB:
        return d.drug.regimen == "120mg"
    if d.drug.agent == "pamidronate":
        return True
    return d.drug.agent == "zoledronic-acid" and bp.zoledronic_regimen(inp, d)[0] == "4mg"


@rule(RULE_ID, TITLE, hooks=ORDER_HOOKS, needs=MEDS | {"Procedure"})
def ar_recent_invasive_dental(inp: RuleInput) -> Card | None:
    candidates = ar.antiresorptive_drafts(inp, bisphosphonates="iv")
    drafts = [d for d in candidates if defs.draft_initiation(inp, d)]
    oncology = [d for d in candidates if d not in drafts and oncology_regimen(inp, d)]
    if not drafts and not oncology:
        return None
    healing = inp.thresholds.dental_healing_days
    recent = [p for p in inp.chart.procedures_in("invasive-dental-procedure", within_days=healing)
              if p.date is not None]
    if not recent:
        return None
    newest = recent[0]  # newest first
    assert newest.date is not None
    n = (inp.today - newest.date).days
    earliest = newest.date + timedelta(days=healing)
    name = tx.cut(newest.display) or "Invasive dental procedure"
    name = name[0].upper() + name[1:]
    if drafts:
        agent = ar.agents_phrase(d.drug for d in drafts)
        summary = (f"{name} on {newest.date.isoformat()} ({n} days ago): allow 2–4 weeks of healing "
                   f"before starting {agent}")
        if len(summary) >= 140:
            summary = (f"{name} on {newest.date.isoformat()} ({n} days ago): allow 2–4 weeks of healing "
                       "before starting")
        lines = [f"**Finding.** {tx.draft_list(drafts)} ordered as a first dose (no dose of the same "
                 f"drug class in the last {inp.thresholds.initiation_gap_days} days), and an invasive "
                 f"dental procedure was done in the last {healing} days:"]
        if oncology:
            lines.insert(1, f"Also ordered: {tx.draft_list(oncology)}, a continuation dose of an "
                            "oncology regimen.")
    else:
        agent = ar.agents_phrase(d.drug for d in oncology)
        summary = tx.fit(f"{name} on {newest.date.isoformat()}: consider delaying this {agent} dose "
                         "until healed",
                         f"{name} on {newest.date.isoformat()}: consider delaying this dose until healed")
        lines = [f"**Finding.** {tx.draft_list(oncology)} ordered as a continuation dose of an "
                 "oncology regimen (higher risk of osteonecrosis of the jaw than osteoporosis "
                 f"dosing), and an invasive dental procedure was done in the last {healing} days:"]
    for p in recent:
        assert p.date is not None
        lines.append(f"- {tx.cut(p.display) or 'invasive dental procedure'} on {p.date.isoformat()} "
                     f"({(inp.today - p.date).days} days ago)")
    lines.append("")
    lines.append(f"**Suggested earliest {'start' if drafts else 'next dose'}: {earliest.isoformat()}** "
                 f"({healing} days after the procedure of {newest.date.isoformat()}), once the "
                 "extraction site has mucosal coverage on examination.")
    lines.append("")
    lines.append("**Why it matters.** Starting an antiresorptive while an extraction socket or "
                 "implant site is still healing raises the risk of osteonecrosis of the jaw; "
                 "invasive dental work should be finished, with 2–4 weeks of healing, before the "
                 "first dose.")
    lines.append("")
    lines.append("**What to do.** " + ("Defer the first dose until the site has healed (check with "
                 "the dentist), unless an urgent oncology start outweighs the risk." if drafts else
                 "Consider delaying this dose until the site has healed (check with the dentist); "
                 "weigh this against the oncology benefit of keeping the schedule."))
    lines.append("")
    lines.append(f"**Evidence.** {tx.SEED_001} §Dental Evaluation (\"wait 2–4 weeks after dental "
                 "work\"); AAOMS MRONJ position paper 2022 (mucosal coverage). RULES.md §5 "
                 "AR-RECENT-INVASIVE-DENTAL; healing window §8 item 9.")
    return Card(rule_id=RULE_ID, rule_title=TITLE, summary=summary,
                indicator="warning" if drafts else "info",
                source_label="AAOMS position paper on MRONJ (2022)", detail="\n".join(lines),
                override_reasons=override_reasons("healed-on-exam", "urgent-oncology-start"),
                links=[LINKS["aaoms-2022"]])
