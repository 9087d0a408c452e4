"""BP-DOSE-SCHEDULE — oral bisphosphonate strength and frequency match no labelled regimen.

RULES.md §4 BP-DOSE-SCHEDULE, §8.2 A19 (decision 19); D3 "Strength of an oral bisphosphonate";
§6.1 "Corrected oral bisphosphonate regimen".
Evidence: Fosamax, risedronate (Actonel/Atelvia) and ibandronate (Boniva) labels §2.

Fires on an order hook for a draft of **oral** alendronate, risedronate or ibandronate whose
(agent, strength, interval) is not a labelled regimen (:data:`REGIMENS`; the Paget's disease
regimens are labelled and accepted, A19). Strength (D3): the mg strength in the product code's
display (the order's coding display, else the value-set display of that code), else the dose
quantity in mg, else "N mg" in the drug text. Interval: ``dosageInstruction[0].timing.repeat``
(daily = 1 per 1 d; weekly = 1 per 1 wk or 7 d; monthly = 1 per 1 mo or per 28–31 d;
2 consecutive days monthly = 2 per 1 mo, or the text "2 consecutive days"); any other readable
frequency/period is an interval that matches no regimen. When the strength or the interval cannot
be read, the rule does not fire (A19). Etidronate (weight-based) and an unnamed bisphosphonate are
not judged. One card for all such drafts; ``warning``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from cds_service.chart import DraftOrder, default_value_sets

from ..builders import SNOMED, UCUM, OrderContext, override_reasons
from ..model import Action, Card, Suggestion
from ..registry import MEDS, ORDER_HOOKS, RuleInput, rule
from . import _bp_common as bp
from . import _text as tx
from .bp_oral_contraindication import oral_label, remove_draft

RULE_ID = "BP-DOSE-SCHEDULE"
TITLE = "Oral bisphosphonate strength and frequency match no labelled regimen"

DAILY, WEEKLY, MONTHLY, TWO_DAYS_MONTHLY = "daily", "weekly", "monthly", "on 2 consecutive days monthly"
#: §6.1: ``timing.repeat`` of each labelled interval.
REPEAT: dict[str, dict[str, Any]] = {
    DAILY: {"frequency": 1, "period": 1, "periodUnit": "d"},
    WEEKLY: {"frequency": 1, "period": 1, "periodUnit": "wk"},
    MONTHLY: {"frequency": 1, "period": 1, "periodUnit": "mo"},
    TWO_DAYS_MONTHLY: {"frequency": 2, "period": 1, "periodUnit": "mo"},
}


@dataclass(frozen=True)
class Regimen:
    strength: Decimal
    interval: str
    paget: bool = False

    def describe(self) -> str:
        return f"{self.strength.normalize():f} mg {self.interval}" + (" for Paget's disease" if self.paget else "")


def _r(mg: str, interval: str, paget: bool = False) -> Regimen:
    return Regimen(Decimal(mg), interval, paget)


#: The labelled regimens (RULES.md §4 table), in the table's order.
REGIMENS: dict[str, tuple[Regimen, ...]] = {
    "alendronate": (_r("70", WEEKLY), _r("35", WEEKLY), _r("10", DAILY), _r("5", DAILY),
                    _r("40", DAILY, paget=True)),
    "risedronate": (_r("35", WEEKLY), _r("5", DAILY), _r("150", MONTHLY), _r("75", TWO_DAYS_MONTHLY),
                    _r("30", DAILY, paget=True)),
    "ibandronate": (_r("150", MONTHLY), _r("2.5", DAILY)),
}
#: The regimen suggested for an interval when no regimen has the ordered strength (§4 card).
BY_INTERVAL: dict[str, dict[str, Decimal]] = {
    "alendronate": {WEEKLY: Decimal("70"), DAILY: Decimal("10")},
    "risedronate": {WEEKLY: Decimal("35"), DAILY: Decimal("5"), MONTHLY: Decimal("150"),
                    TWO_DAYS_MONTHLY: Decimal("75")},
    "ibandronate": {DAILY: Decimal("2.5"), MONTHLY: Decimal("150")},
}

_MG = re.compile(r"(\d+(?:\.\d+)?)\s*mg\b", re.IGNORECASE)
_TWO_DAYS = re.compile(r"\b(2|two) consecutive days\b", re.IGNORECASE)
_UNIT_WORDS = {"d": "day", "wk": "week", "mo": "month", "a": "year", "h": "hour", "min": "minute", "s": "second"}


# ---- reading the order ----------------------------------------------------------------------

def _code_display(system: Any, code: Any) -> str | None:
    """The value-set display of a drug code (the product name RxNorm gives it)."""
    vs = default_value_sets()
    for name in vs.names_for(system, code):
        for c in vs.sets[name]:
            if c.system == system and c.code == code and c.display:
                return c.display
    return None


def read_strength(d: DraftOrder) -> tuple[Decimal, str] | None:
    """D3 strength of an oral bisphosphonate and where it was read; None when unreadable."""
    concept = d.resource.get("medicationCodeableConcept")
    codings = [c for c in (concept.get("coding") or []) if isinstance(c, dict)] if isinstance(concept, dict) else []
    for c in codings:
        for display in (c.get("display"), _code_display(c.get("system"), c.get("code"))):
            m = _MG.search(display) if isinstance(display, str) else None
            if m:
                return Decimal(m.group(1)), "product name"
    if d.dose_mg is not None:
        return d.dose_mg, "dose on the order"
    texts = [concept.get("text")] if isinstance(concept, dict) else []
    for text in [*texts, d.drug.name]:
        m = _MG.search(text) if isinstance(text, str) else None
        if m:
            return Decimal(m.group(1)), "drug name"
    return None


def _dosage(d: DraftOrder) -> dict[str, Any]:
    dosages = d.resource.get("dosageInstruction")
    return dosages[0] if isinstance(dosages, list) and dosages and isinstance(dosages[0], dict) else {}


def _dosage_texts(dosage: dict[str, Any]) -> list[str]:
    timing = dosage.get("timing") if isinstance(dosage.get("timing"), dict) else {}
    code = timing.get("code") if isinstance(timing.get("code"), dict) else {}
    return [t for t in (dosage.get("text"), dosage.get("patientInstruction"), code.get("text"))
            if isinstance(t, str)]


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        n = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return n if n.is_finite() and n > 0 else None


@dataclass(frozen=True)
class Interval:
    """The interval as ordered: a labelled one (``name``) or another readable one (``words``)."""

    name: str | None
    words: str


def read_interval(d: DraftOrder) -> Interval | None:
    """The ordered interval (see the module docstring); None when it cannot be read."""
    dosage = _dosage(d)
    if any(_TWO_DAYS.search(t) for t in _dosage_texts(dosage)):
        return Interval(TWO_DAYS_MONTHLY, TWO_DAYS_MONTHLY)
    timing = dosage.get("timing") if isinstance(dosage.get("timing"), dict) else {}
    repeat = timing.get("repeat") if isinstance(timing.get("repeat"), dict) else {}
    frequency = _number(repeat.get("frequency", 1))
    period, unit = _number(repeat.get("period")), repeat.get("periodUnit")
    if frequency is None or period is None or unit not in _UNIT_WORDS:
        return None
    if frequency == 1 and period == 1 and unit == "d":
        return Interval(DAILY, DAILY)
    if frequency == 1 and ((period == 1 and unit == "wk") or (period == 7 and unit == "d")):
        return Interval(WEEKLY, WEEKLY)
    if frequency == 1 and ((period == 1 and unit == "mo") or (unit == "d" and 28 <= period <= 31)):
        return Interval(MONTHLY, MONTHLY)
    if frequency == 2 and period == 1 and unit == "mo":
        return Interval(TWO_DAYS_MONTHLY, TWO_DAYS_MONTHLY)
    times = "once" if frequency == 1 else "twice" if frequency == 2 else f"{frequency.normalize():f} times"
    per = _UNIT_WORDS[unit] if period == 1 else f"{period.normalize():f} {_UNIT_WORDS[unit]}s"
    return Interval(None, f"{times} every {per}")


# ---- judging --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Finding:
    draft: DraftOrder
    agent: str
    strength: Decimal
    strength_from: str
    interval: Interval
    same_strength: tuple[Regimen, ...]
    suggested: Regimen


def _suggest(inp: RuleInput, d: DraftOrder, agent: str, strength: Decimal, interval: Interval) -> Regimen:
    """§4: the regimen of the same strength if one exists (a Paget's regimen only with Paget's
    disease on record: never a 40 mg daily for an osteoporosis patient), else the regimen of the
    same interval, else the agent's first regimen."""
    regimens = REGIMENS[agent]
    same = [r for r in regimens if r.strength == strength]
    plain = [r for r in same if not r.paget]
    if plain:
        return plain[0]
    if same and bp.paget_evidence(inp, [d]):  # type: ignore[list-item]  # DraftOrder reads like a record
        return same[0]
    mg = BY_INTERVAL[agent].get(interval.name or "")
    if mg is not None:
        return next(r for r in regimens if r.strength == mg and r.interval == interval.name)
    return regimens[0]


def judge(inp: RuleInput, d: DraftOrder) -> Finding | None:
    """The finding of one draft, or None (not judged, unreadable, or a labelled regimen)."""
    agent = d.drug.agent
    if agent not in REGIMENS or not bp.is_oral(d.drug):
        return None
    strength = read_strength(d)
    interval = read_interval(d)
    if strength is None or interval is None:
        return None
    mg, source = strength
    if any(r.strength == mg and r.interval == interval.name for r in REGIMENS[agent]):
        return None
    same = tuple(r for r in REGIMENS[agent] if r.strength == mg)
    return Finding(d, agent, mg, source, interval, same, _suggest(inp, d, agent, mg, interval))


def _corrected_order(ctx: OrderContext, f: Finding) -> Suggestion:
    """§6.1 corrected regimen: the draft's medication (its product when the strength is kept,
    else the agent and strength by name), the labelled dose and ``timing.repeat``."""
    r = f.suggested
    mg = f"{r.strength.normalize():f}"
    body = ctx.base("MedicationRequest")
    if r.strength == f.strength and isinstance(f.draft.resource.get("medicationCodeableConcept"), dict):
        body["medicationCodeableConcept"] = f.draft.resource["medicationCodeableConcept"]
    elif r.strength == f.strength and isinstance(f.draft.resource.get("medicationReference"), dict):
        body["medicationReference"] = f.draft.resource["medicationReference"]
    else:
        body["medicationCodeableConcept"] = {"text": f"{f.agent} {mg} mg oral tablet"}
    text = f"{mg} mg by mouth " + ("on 2 consecutive days each month" if r.interval == TWO_DAYS_MONTHLY
                                   else {"daily": "once daily", "weekly": "once weekly",
                                         "monthly": "once monthly"}[r.interval])
    body["dosageInstruction"] = [{
        "text": text, "timing": {"repeat": dict(REPEAT[r.interval])},
        "route": {"coding": [{"system": SNOMED, "code": "26643006", "display": "Oral route"}]},
        "doseAndRate": [{"doseQuantity": {"value": float(r.strength) if r.strength % 1 else int(r.strength),
                                          "unit": "mg", "system": UCUM, "code": "mg"}}]}]
    label = f"Order {f.agent} {mg} mg {r.interval} instead"
    return Suggestion(label, [Action(f"Create a draft order: {f.agent} {mg} mg {r.interval}", body)])


def _expected(f: Finding) -> str:
    if f.same_strength:
        return "expected " + " or ".join(r.describe() for r in f.same_strength)
    return "labelled: " + ", ".join(r.describe().replace(" for Paget's disease", "") for r in REGIMENS[f.agent])


@rule(RULE_ID, TITLE, hooks=ORDER_HOOKS, needs=MEDS)
def bp_dose_schedule(inp: RuleInput) -> Card | None:
    findings = [f for d in bp.bp_drafts(inp) if (f := judge(inp, d)) is not None]
    if not findings:
        return None
    f = findings[0]
    mg = f"{f.strength.normalize():f}"
    agent = bp.capital(f.agent)
    summary = tx.fit(f"{agent} {mg} mg {f.interval.words}: not a labelled regimen ({_expected(f)})",
                     f"{agent} {mg} mg {f.interval.words}: not a labelled regimen; correct the order")
    labelled = "; ".join(r.describe() for r in REGIMENS[f.agent])
    overdose = ""
    if f.interval.name == DAILY and any(r.interval == WEEKLY for r in f.same_strength):
        overdose = " A weekly tablet taken daily is a 7-fold overdose."
    elif f.interval.name == DAILY and any(r.interval in (MONTHLY, TWO_DAYS_MONTHLY) for r in f.same_strength):
        overdose = " A monthly tablet taken daily is a many-fold overdose."
    source_label, source_url = oral_label(f.draft.drug)
    details = []
    for x in findings:
        details.append(f"- Ordered: {tx.escape_record(x.draft.label)}"
                       + (f" ({tx.BY_TEXT_NOTE})" if x.draft.drug.by_text else "")
                       + f"; strength {x.strength.normalize():f} mg read from the {x.strength_from}; "
                       f"interval as ordered: {x.interval.words}")
    details.append(f"- Labelled {f.agent} regimens: {labelled}")
    detail = "\n".join([
        f"**{agent} {mg} mg {f.interval.words} is not a labelled regimen ({_expected(f)}).**{overdose} "
        "Taken more often than labelled, an oral bisphosphonate multiplies the dose and the risk of "
        "esophageal injury; taken less often, it may not protect the bone.",
        "",
        "**What to do:** correct the order to a labelled regimen; if the schedule is intended, "
        "record why.",
        "",
        f"**Evidence:** {source_label} (dosage and administration).",
        "",
        "#### Details",
        *details[:8],
    ])
    suggestions = [_corrected_order(inp.orders, f), remove_draft(f.draft, f.agent)]
    return Card(rule_id=RULE_ID, rule_title=TITLE, summary=summary, indicator="warning",
                source_label=source_label, source_url=source_url, detail=detail,
                suggestions=suggestions, selection_behavior="at-most-one",
                override_reasons=override_reasons("intended-regimen", "paget-regimen", "specialist-decision"))
