"""Helpers specific to the denosumab order rules (RULES.md §3, with D3 and D8).

Which drafts a DMAB rule concerns, how a medication record is named on a card, reproductive
potential (D8) and the pregnancy evidence of DMAB-PREGNANCY / DMAB-PREGNANCY-STATUS-UNVERIFIED.
The D9 composite facts, D4 initiation, "on the medication list" and the catalog parameters are in
:mod:`cards.rules._definitions`; the formatting helpers in :mod:`cards.rules._text`. Pure: reads
the :class:`~cards.registry.RuleInput`, never raw FHIR.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Iterable

from cds_service.chart import (CALCIMIMETIC, DENOSUMAB, SUPPLEMENT, DraftOrder, Lab,
                               MedicationRecord, below, default_value_sets)
from cds_service.chart.labs import within

from ..registry import RuleInput
from ._definitions import param
from ._text import BY_TEXT_NOTE, condition_text, cut, escape_record, fmt, iso, lab_shown

#: Re-exported for the rule modules (``dm.DENOSUMAB``, ``dm.below`` …).
REEXPORTS = (CALCIMIMETIC, DENOSUMAB, SUPPLEMENT, below)

# ---- drafts and names ----------------------------------------------------------------------

def dmab_drafts(inp: RuleInput) -> list[DraftOrder]:
    """Triggering denosumab drafts ("DMAB draft", RULES.md §3): selected ones on order-select,
    all on order-sign, none on patient-view."""
    return list(inp.drafts_of(DENOSUMAB))


_GENERIC_NAMES = {"calcimimetic": "a calcimimetic", "calcium": "a calcium supplement",
                  "vitamin-d": "a vitamin D product", "denosumab": "denosumab"}


def drug_name(name: str, agent: str) -> str:
    """A drug's name for a sentence; a record without any text is named by its class."""
    return _GENERIC_NAMES.get(name, name) if name == agent else name


def record_text(r: MedicationRecord) -> str:
    """A medication record for the detail (markdown): name (record text, escaped), record type and
    status, date."""
    words = {"MedicationRequest": "order", "MedicationStatement": "statement",
             "MedicationDispense": "dispense", "MedicationAdministration": "administration"}
    text = f"{escape_record(drug_name(r.drug.name, r.drug.agent))} ({words.get(r.resource_type, r.resource_type)} {r.status}"
    text += f", {r.date.isoformat()})" if r.date else ")"
    if r.drug.by_text:
        text += f" — {BY_TEXT_NOTE}"
    return text


# ---- medications that are "on the list" ----------------------------------------------------

def session_drafts(inp: RuleInput, drug_class: str) -> list[DraftOrder]:
    """Drafts of ``drug_class`` anywhere in this ordering session (``context.draftOrders``)."""
    return [d for d in inp.chart.drafts if d.drug.drug_class == drug_class]


# ---- reproductive potential (D8) -----------------------------------------------------------

@dataclass(frozen=True)
class Reproductive:
    """D8 reproductive potential, with the reason when it does not apply."""

    potential: bool
    reason: str


def reproductive_potential(inp: RuleInput) -> Reproductive:
    """Female (or unknown sex with a pregnancy record), age ``reproductive_age_min``–``_max``
    inclusive, no ``non-reproductive-status`` record (hysterectomy, oophorectomy, menopause).
    Unknown age: not assumed either way → no potential established (D1)."""
    chart, t = inp.chart, inp.thresholds
    p = chart.patient
    pregnancy_record = bool(chart.conditions_in("pregnancy") or chart.labs("pregnancy-test")
                            or chart.labs("pregnancy-status"))
    if p.sex == "male":
        return Reproductive(False, "male")
    if p.sex is None and not pregnancy_record:
        return Reproductive(False, "sex not recorded as female")
    if p.age is None:
        return Reproductive(False, "age unknown (no birth date)")
    if p.age < t.reproductive_age_min or p.age > t.reproductive_age_max:
        return Reproductive(False, f"age {p.age}")
    records = [condition_text(c) for c in chart.conditions_in("non-reproductive-status")]
    records += [f"{x.display or 'procedure'} ({iso(x.date)})"
                for x in chart.procedures_in("non-reproductive-status")]
    if records:
        return Reproductive(False, "non-reproductive status on record: " + "; ".join(records))
    return Reproductive(True, f"{'female' if p.sex == 'female' else 'sex unknown, pregnancy record'}, "
                              f"age {p.age}, no hysterectomy/oophorectomy/menopause record")


# ---- pregnancy evidence (DMAB-PREGNANCY, DMAB-PREGNANCY-STATUS-UNVERIFIED) ----------------

_POS_CODES = frozenset({"POS"})
_NEG_CODES = frozenset({"NEG"})


@dataclass(frozen=True)
class PregnancyFinding:
    """One piece of evidence of a possible pregnancy: what, when, and the words for a card."""

    kind: str          # "test", "status" or "condition"
    date: date | None
    short: str         # for the summary ("positive hCG test", "hCG 120 mIU/mL")
    text: str          # for the detail


def _in_set(codings: Iterable[tuple[str, str]], name: str) -> bool:
    vs = default_value_sets()
    return any(name in vs.names_for(s, c) for s, c in codings)


def test_result(inp: RuleInput, lab: Lab) -> str | None:
    """``positive``, ``negative`` or None (unreadable) for one pregnancy test (DMAB-PREGNANCY (a)):
    valueCodeableConcept in ``result-positive``/``result-negative``, interpretation POS/NEG, or a
    quantitative hCG (mIU/mL = [IU]/L) above ``hcg_positive_miu_ml`` (positive) or at/below it."""
    if _in_set(lab.codings, "result-positive"):
        return "positive"
    if _in_set(lab.codings, "result-negative"):
        return "negative"
    interp = {c for _, c in lab.interpretation}
    if interp & _POS_CODES or _in_set(lab.interpretation, "result-positive"):
        return "positive"
    if interp & _NEG_CODES or _in_set(lab.interpretation, "result-negative"):
        return "negative"
    if lab.value is not None:
        limit = inp.thresholds.hcg_positive_miu_ml
        if lab.comparator in (">", ">="):
            return "positive" if lab.value >= limit else None   # a lower bound below 25 says nothing
        return "positive" if lab.value > limit else "negative"
    return None


def status_result(lab: Lab) -> str | None:
    """``pregnant``, ``not-pregnant`` or None for a pregnancy-status observation (82810-3)."""
    if _in_set(lab.codings, "pregnancy-status-pregnant"):
        return "pregnant"
    if _in_set(lab.codings, "pregnancy-status-not-pregnant"):
        return "not-pregnant"
    return None


def _hcg_words(lab: Lab) -> str:
    if lab.value is not None and not lab.codings:
        return f"hCG {lab.comparator or ''}{fmt(lab.value.normalize())} mIU/mL"
    return "positive pregnancy test"


def _on_newest_day(readings: Iterable[tuple[Lab, str | None]], wanted: str) -> Lab | None:
    """The result reading ``wanted`` on the newest day that has a readable result (on that day
    ``wanted`` wins over any other reading), else None; unreadable results (None) are ignored."""
    readable = [(lab, r) for lab, r in readings if r is not None]
    if not readable:
        return None
    newest = max(lab.date for lab, _ in readable)
    return next((lab for lab, r in readable if lab.date == newest and r == wanted), None)


def pregnancy_evidence(inp: RuleInput) -> list[PregnancyFinding]:
    """DMAB-PREGNANCY (a)–(c): (a) the latest pregnancy test with a readable result within
    ``pregnancy_test_lookback_days`` is positive (a later negative cancels; on the same date a
    positive wins); (b) the latest pregnancy status in that window is "pregnant"; (c) an active
    pregnancy condition with onset in the last 42 weeks, or without onset. Newest first."""
    chart, t = inp.chart, inp.thresholds
    window = t.pregnancy_test_lookback_days
    found: list[PregnancyFinding] = []

    tests = [(lab, test_result(inp, lab))
             for lab in within(chart.labs("pregnancy-test"), chart.today, window)]
    positive = _on_newest_day(tests, "positive")
    if positive is not None:
        shown = lab_shown(positive) if positive.measured is not None else "coded result"
        found.append(PregnancyFinding("test", positive.date, _hcg_words(positive),
                                      f"pregnancy test {_hcg_words(positive)} ({shown}) on "
                                      f"{positive.date.isoformat()}, the latest readable test in "
                                      f"the last {window} days"))

    statuses = [(lab, status_result(lab))
                for lab in within(chart.labs("pregnancy-status"), chart.today, window)]
    pregnant = _on_newest_day(statuses, "pregnant")
    if pregnant is not None:
        found.append(PregnancyFinding("status", pregnant.date, "pregnancy status: pregnant",
                                      f"pregnancy status recorded as pregnant on "
                                      f"{pregnant.date.isoformat()}"))

    weeks = param(inp, "pregnancy_condition_weeks")
    for c in chart.conditions_in("pregnancy", active=True):
        if c.onset is not None and not 0 <= (chart.today - c.onset).days <= weeks * 7:
            continue
        when = c.onset or c.recorded
        found.append(PregnancyFinding("condition", when, cut(c.display or "pregnancy", 30),
                                      f"active problem {condition_text(c)}"
                                      + ("" if c.onset else " — no onset date recorded")))
    found.sort(key=lambda f: f.date or date.min, reverse=True)
    return found
