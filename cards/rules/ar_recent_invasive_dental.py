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

from ..builders import dental_referral, override_reasons
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
    name = tx.plain(newest.display) or "Invasive dental procedure"
    name = name[0].upper() + name[1:]
    if drafts:
        agent = ar.agents_phrase(d.drug for d in drafts)
        summary = tx.fit(f"{name} on {newest.date.isoformat()} ({n} days ago): allow 2–4 weeks of "
                         f"healing before starting {agent}",
                         f"{name} on {newest.date.isoformat()} ({n} days ago): allow 2–4 weeks of "
                         "healing before starting")
        details = [f"Ordered as a first dose: {tx.draft_list(drafts)} (no dose of the same drug "
                   f"class in the last {inp.thresholds.initiation_gap_days} days)"]
        if oncology:
            details.append(f"Also ordered: {tx.draft_list(oncology)}, a continuation dose of an "
                           "oncology regimen")
    else:
        agent = ar.agents_phrase(d.drug for d in oncology)
        summary = tx.fit(f"{name} on {newest.date.isoformat()}: consider delaying this {agent} dose "
                         "until healed",
                         f"{name} on {newest.date.isoformat()}: consider delaying this dose until healed")
        details = [f"Ordered as a continuation dose of an oncology regimen: {tx.draft_list(oncology)} "
                   "(higher risk of osteonecrosis of the jaw than osteoporosis dosing)"]
    for p in recent:
        assert p.date is not None
        details.append(f"Procedure record: {tx.escape_record(p.display or 'invasive dental procedure')} "
                       f"on {p.date.isoformat()} ({(inp.today - p.date).days} days ago; window "
                       f"{healing} days)")
    shown = tx.escape_record(newest.display) if newest.display else "Invasive dental procedure"
    detail = tx.layout(
        f"{shown} on {newest.date.isoformat()}, {n} days ago. Suggested earliest "
        f"{'start' if drafts else 'next dose'}: {earliest.isoformat()}",
        "Starting or continuing an antiresorptive while an extraction socket or implant site is "
        "still healing raises the risk of osteonecrosis of the jaw.",
        [f"Defer the first dose until the site has mucosal coverage on examination (earliest "
         f"{earliest.isoformat()}, {healing} days after the procedure)",
         "start earlier only if an urgent oncology start outweighs the risk"] if drafts else
        [f"Consider delaying this dose until the site has healed on examination (earliest "
         f"{earliest.isoformat()})", "weigh this against the oncology benefit of keeping the schedule"],
        [tx.EVIDENCE["aaoms"], tx.EVIDENCE["xgeva-zol-dental"]], details, t=inp.thresholds)
    return Card(rule_id=RULE_ID, rule_title=TITLE, summary=summary,
                indicator="warning" if drafts else "info",
                **tx.source("AAOMS-2022"), detail=detail,
                suggestions=[dental_referral(inp.orders, label="Refer for dental review of healing",
                                             reason="Review of healing after invasive dental "
                                                    "procedure before antiresorptive therapy")],
                selection_behavior="any",
                override_reasons=override_reasons("healed-on-exam", "urgent-oncology-start"))
