"""AR-CONCURRENT-ANTIRESORPTIVE — overlapping antiresorptives.

RULES.md §5 (with D4 "Active therapy", "Dose events", D10 ``dmab60_interval_months`` and
``dmab60_early_margin_days``).
Evidence: seed 001_282e696d69a84463.txt §Rebound Bone Loss and Multiple Vertebral Fractures
(zoledronic acid 5 mg IV about 6 months after the last denosumab injection); ECTS working group
(Tsourdi et al., J Clin Endocrinol Metab 2021;106:264: start the alternative antiresorptive
6 months after the final denosumab injection).

Fires (``info``) when
(a) a denosumab draft is ordered while a bisphosphonate is active therapy (D4): an active
    MedicationRequest/MedicationStatement, a completed dispense whose supply covers today, or for
    an IV agent a dose within its dosing interval (:func:`_definitions.iv_interval_end`); or
(b) a bisphosphonate draft is ordered while ``today < add_months(L, 6) − 28 days`` after the last
    denosumab dose ``L`` (too early for the transition), only when ``L`` was not a 120 mg dose
    (A7: 60 mg, or strength unknown).
One card per request, naming every draft concerned.
"""

from __future__ import annotations

from datetime import timedelta

from cds_service.chart import BISPHOSPHONATE, DENOSUMAB, Drug, add_months

from ..builders import LINKS, override_reasons
from ..model import Card
from ..registry import MEDS, ORDER_HOOKS, RuleInput, rule
from . import _ar_common as ar
from . import _definitions as defs
from . import _text as tx

RULE_ID = "AR-CONCURRENT-ANTIRESORPTIVE"
TITLE = "Overlapping antiresorptives"

def _active_bisphosphonates(inp: RuleInput) -> list[tuple[Drug, str]]:
    """Bisphosphonates that are active therapy today (D4), each with its evidence in words."""
    chart = inp.chart
    out: list[tuple[Drug, str]] = []
    for r in chart.active_records(BISPHOSPHONATE):
        what = {"MedicationRequest": "active order", "MedicationStatement": "active medication statement",
                "MedicationDispense": "dispensed"}.get(r.resource_type, r.resource_type)
        supply = ""
        if r.resource_type == "MedicationDispense":
            days = r.days_supply if r.days_supply is not None else inp.thresholds.dispense_default_days_supply
            supply = f", {days}-day supply"
        out.append((r.drug, f"{what} {tx.iso(r.date)}{supply}"))
    for e, end in defs.active_iv_bisphosphonate_doses(chart, inp.thresholds):
        low = " (date of a completed order: lowest confidence)" if e.low_confidence else ""
        out.append((e.drug, f"IV dose {e.date.isoformat()}{low}, effect within its dosing "
                            f"interval until {end.isoformat()}"))
    return out


@rule(RULE_ID, TITLE, hooks=ORDER_HOOKS, needs=MEDS)
def ar_concurrent_antiresorptive(inp: RuleInput) -> Card | None:
    t = inp.thresholds
    dmab_drafts = inp.drafts_of(DENOSUMAB)
    bp_drafts = inp.drafts_of(BISPHOSPHONATE)
    active_bp = _active_bisphosphonates(inp) if dmab_drafts else []

    last_dmab = inp.chart.last_dose(DENOSUMAB) if bp_drafts else None
    early = None
    # A7: (b) only after a 60 mg dose; after a 120 mg (oncology) dose a switch is an oncology
    # decision. Safe reading: a dose of unknown strength is judged like a 60 mg dose (info card).
    if last_dmab is not None and last_dmab.drug.regimen != "120mg":
        due = add_months(last_dmab.date, t.dmab60_interval_months)
        if inp.today < due - timedelta(days=t.dmab60_early_margin_days):
            early = (last_dmab, due)
    if not active_bp and early is None:
        return None

    lines: list[str] = []
    if active_bp:
        agents = {ar.agent_word(d) for d, _ in active_bp}
        agent = ar.agents_phrase(d for d, _ in active_bp)
        verb, it = ("are", "them") if len(agents) > 1 else ("is", "it")
        summary = (f"{agent[0].upper()}{agent[1:]} {verb} still active: stop {it} when starting "
                   "denosumab (no benefit from combining)")
        lines.append(f"**Finding.** {tx.draft_list(dmab_drafts)} ordered while a bisphosphonate is "
                     "active therapy:")
        for drug, evidence in active_bp:
            lines.append(f"- {tx.cut(drug.name)}: {evidence}")
    if early is not None:
        dose, due = early
        start = due - timedelta(days=t.dmab60_early_margin_days)
        text = (f"Denosumab given {dose.date.isoformat()}: a bisphosphonate now is early; transition "
                f"is planned for about {due.isoformat()}")
        if not active_bp:
            summary = text
            lines.append(f"**Finding.** {tx.draft_list(bp_drafts)} ordered {(inp.today - dose.date).days} "
                         f"days after the last denosumab dose ({dose.date.isoformat()}).")
        else:
            lines.append("")
            lines.append(f"Also: {tx.draft_list(bp_drafts)} ordered {(inp.today - dose.date).days} days "
                         f"after the last denosumab dose ({dose.date.isoformat()}).")
        if dose.low_confidence:
            lines.append("The denosumab dose date is taken from a completed order (lowest "
                         "confidence: no administration or dispense was found).")
        lines.append(f"The follow-on bisphosphonate is due about {t.dmab60_interval_months} months "
                     f"after the last injection, {due.isoformat()}; orders before "
                     f"{start.isoformat()} are more than {t.dmab60_early_margin_days} days early.")
    lines.append("")
    lines.append("**Why it matters.** Combining denosumab with a bisphosphonate adds no fracture "
                 "benefit and adds side-effect risk (hypocalcemia, osteonecrosis of the jaw). The "
                 "hand-off from denosumab to a bisphosphonate is timed to the waning of the last "
                 "injection (about 6 months) to prevent rebound bone loss and vertebral fractures.")
    lines.append("")
    todo = []
    if active_bp:
        todo.append("stop the bisphosphonate (discontinue the active order) when denosumab starts")
    if early is not None:
        todo.append(f"plan the bisphosphonate for about {early[1].isoformat()} instead of now, "
                    "unless a specialist intends otherwise")
    what = "; ".join(todo)
    lines.append("**What to do.** " + what[0].upper() + what[1:] + ".")
    lines.append("")
    lines.append(f"**Evidence.** {tx.SEED_001} §Rebound Bone Loss and Multiple Vertebral Fractures "
                 "(zoledronic acid about 6 months after the last injection); ECTS 2021 (Tsourdi et al., "
                 "JCEM 2021;106:264). RULES.md §5 AR-CONCURRENT-ANTIRESORPTIVE, D4 active therapy.")
    return Card(rule_id=RULE_ID, rule_title=TITLE, summary=summary, indicator="info",
                source_label="ECTS position on denosumab discontinuation (Tsourdi 2021)",
                detail="\n".join(lines),
                override_reasons=override_reasons("switch-in-progress", "specialist-combination"),
                links=[LINKS["ects-2021"]])
