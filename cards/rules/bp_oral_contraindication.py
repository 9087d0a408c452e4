"""BP-ORAL-CONTRAINDICATION — oral bisphosphonate with delayed esophageal emptying or no upright posture.

RULES.md §4 BP-ORAL-CONTRAINDICATION, §8.2 A18 (decision 18); D6 (active conditions, codes + text).
Evidence: Fosamax, risedronate (Actonel-type) and ibandronate (Boniva-type) labels §4
(contraindications: abnormalities of the esophagus that delay emptying such as stricture or
achalasia; inability to stand or sit upright for at least 30 minutes — 60 for ibandronate).

Fires on an order hook for a draft of an **oral** bisphosphonate: (a) an active Condition in
``esophageal-emptying-disorder`` (stricture, achalasia) → ``critical``; (b) an active Condition in
``unable-to-sit-upright`` (bed confinement, cannot sit or stand upright) → ``warning``. Resolved or
inactive entries, and refuted or entered-in-error ones (D2), do not count; a suspected
(provisional) entry counts and is named as suspected. IV bisphosphonates are not concerned (they
are the alternative suggested). One card for all oral drafts; indicator = the highest finding.
Etidronate (not named by the decision) is an oral agent of the trigger: it is judged like the
others with the 30-minute posture of alendronate (the safe reading).
"""

from __future__ import annotations

from cds_service.chart import ConditionFact, DraftOrder, Drug

from ..builders import override_reasons, zoledronic_acid_order
from ..model import Action, Card, Suggestion
from ..registry import ORDER_HOOKS, RuleInput, rule
from . import _bp_common as bp
from . import _text as tx

RULE_ID = "BP-ORAL-CONTRAINDICATION"
TITLE = "Oral bisphosphonate with delayed esophageal emptying or no upright posture"
ESOPHAGEAL = "esophageal-emptying-disorder"
UPRIGHT = "unable-to-sit-upright"
#: Minutes upright after each dose (labels §2/§4): ibandronate 60, the others 30.
UPRIGHT_MINUTES = {"ibandronate": 60}
DEFAULT_UPRIGHT_MINUTES = 30

_DAILYMED = "https://dailymed.nlm.nih.gov/dailymed/drugInfo.cfm?setid="
#: The oral bisphosphonate labels (RULES.md §6.2): agent → (source label, DailyMed page).
ORAL_LABELS: dict[str, tuple[str, str]] = {
    "alendronate": ("FDA label: Fosamax (alendronate)", _DAILYMED + "14e931fd-2c5f-4d90-b7db-5980706f4a56"),
    "risedronate": ("FDA label: risedronate sodium tablets (Actonel-type)",
                    _DAILYMED + "b90f2e5b-10b8-29a7-0360-31bd0dae0ec2"),
    "ibandronate": ("FDA label: ibandronate sodium tablets 150 mg (Boniva-type)",
                    _DAILYMED + "86c0b4ae-5e38-4efe-88af-50ac560e294f"),
}


def oral_label(drug: Drug) -> tuple[str, str]:
    """(source label, source url) of an oral agent; another agent (etidronate, an unnamed oral
    bisphosphonate) is sourced to the Fosamax label, the class's reference label."""
    return ORAL_LABELS.get(drug.agent, ORAL_LABELS["alendronate"])


def oral_drafts(inp: RuleInput) -> list[DraftOrder]:
    """The triggering drafts of an oral bisphosphonate (an ibandronate of unknown route counts
    as oral, its usual form)."""
    return [d for d in bp.bp_drafts(inp) if bp.is_oral(d.drug)]


def remove_draft(d: DraftOrder, agent: str) -> Suggestion:
    """§6.1 "Remove the draft": a delete action naming the draft (its id only in ``resourceId``)."""
    return Suggestion(f"Remove the draft {agent} order",
                      [Action(f"Remove the draft {agent} order", type="delete", resource_id=d.ref)])


def _condition_line(c: ConditionFact) -> str:
    """A condition for the Details section: escaped name, status, date, how it was identified."""
    parts = [c.status_text, f"since {c.date.isoformat()}" if c.date else "date not recorded"]
    how = f" ({tx.BY_TEXT_NOTE})" if c.by_text else ""
    return f"- Problem list: {tx.escape_record(c.display or 'condition')} ({', '.join(parts)}){how}"


def _iv_alternative(inp: RuleInput) -> Suggestion:
    """§6.1 zoledronic acid 5 mg IV once, labelled as needing its own kidney and calcium checks."""
    return zoledronic_acid_order(inp.orders, inp.today,
                                 label="Order zoledronic acid 5 mg IV once instead (after kidney "
                                       "function and calcium check)")


@rule(RULE_ID, TITLE, hooks=ORDER_HOOKS, needs={"Condition"})
def bp_oral_contraindication(inp: RuleInput) -> Card | None:
    drafts = oral_drafts(inp)
    if not drafts:
        return None
    esophageal = inp.chart.conditions_in(ESOPHAGEAL, active=True)
    upright = inp.chart.conditions_in(UPRIGHT, active=True)
    if not esophageal and not upright:
        return None
    main = drafts[0]
    agent = bp.agent_word(main.drug.agent)
    minutes = max(UPRIGHT_MINUTES.get(d.drug.agent, DEFAULT_UPRIGHT_MINUTES) for d in drafts)
    if esophageal:
        indicator = "critical"
        name = tx.cut(esophageal[0].display or "Esophageal stricture or achalasia")
        summary = tx.fit(f"{name} on record: oral {agent} is contraindicated (delayed esophageal emptying)",
                         f"Esophageal disorder on record: oral {agent} is contraindicated (delayed emptying)")
        finding = (f"{tx.escape_record(esophageal[0].display or 'Esophageal stricture or achalasia')} "
                   f"is on the problem list")
        why = ("An esophagus that empties slowly keeps the tablet in contact with the mucosa: "
               "oral bisphosphonates are contraindicated (esophagitis, ulcers, strictures).")
        if upright:
            why += f" The patient is also recorded as unable to stay upright for {minutes} minutes."
    else:
        indicator = "warning"
        summary = tx.fit(f"Recorded as unable to stay upright: oral {agent} needs {minutes} minutes "
                         "upright after each dose")
        finding = (f"{tx.escape_record(upright[0].display or 'Unable to sit or stand upright')} "
                   "is on the problem list")
        why = (f"Oral {agent} must be taken standing or sitting upright and the patient must stay "
               f"upright for at least {minutes} minutes, or the tablet can injure the esophagus.")
    source_label, source_url = oral_label(main.drug)
    details = [f"- Ordered: {'; '.join(tx.escape_record(d.label) for d in drafts)}"
               + (f" ({tx.BY_TEXT_NOTE})" if any(d.drug.by_text for d in drafts) else "")]
    details += [_condition_line(c) for c in (esophageal + upright)[:6]]
    detail = "\n".join([
        f"**{finding}.** {why}",
        "",
        "**What to do:** do not use an oral bisphosphonate; consider zoledronic acid IV or "
        "denosumab instead, each after its own checks.",
        "",
        "**Evidence:** Fosamax, risedronate and ibandronate labels (contraindications: abnormalities "
        "of the esophagus that delay emptying such as stricture or achalasia; inability to stand or "
        "sit upright for at least 30 minutes, 60 for ibandronate).",
        "",
        "#### Details",
        *details,
    ])
    suggestions = [remove_draft(d, bp.agent_word(d.drug.agent)) for d in drafts] + [_iv_alternative(inp)]
    return Card(rule_id=RULE_ID, rule_title=TITLE, summary=summary, indicator=indicator,
                source_label=source_label, source_url=source_url, detail=detail,
                suggestions=suggestions, selection_behavior="any",
                override_reasons=override_reasons("condition-treated", "can-sit-upright",
                                                  "specialist-decision", "iv-alternative-planned"))
