"""Helpers specific to the BP-* rules (RULES.md §4: bisphosphonate rules).

What a bisphosphonate draft is (agent, route, zoledronic-acid strength when the order does not
say), its renal cut-off and look-back windows (D10), its indication (hypercalcemia of
malignancy, Paget's disease), how BP cards name severe kidney records, oral bisphosphonate
courses and zoledronic acid 5 mg infusion courses (D4), and the evidence links of the labels.
The D9 facts themselves (oncology bone indication, severe kidney records) are in
:mod:`cards.rules._definitions`; the formatting helpers in :mod:`cards.rules._text`. Pure:
reads the :class:`~cds_service.chart.Chart` of the :class:`~cards.registry.RuleInput`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Iterable

from cds_service.chart import (BISPHOSPHONATE, DENOSUMAB, DraftOrder, Drug, MedicationRecord,
                               add_months, default_value_sets)

from ..builders import LINKS, SOURCES
from ..model import Link
from ..registry import RuleInput
from ..thresholds import Thresholds
from ._definitions import (catalog_value, draft_reason_sets, is_zol5_draft, kidney_records,
                           last_zoledronic_acid_within, oncology_indication, reason_conditions)
from ._text import BY_TEXT_NOTE, cut, escape_record, iso

AGENT_WORDS = {"zoledronic-acid": "zoledronic acid", "bisphosphonate": "bisphosphonate"}
PAGET_CONCEPT = "paget-disease-of-bone"
_PAGET_TEXT = re.compile(r"osteitis deformans|\bpaget", re.IGNORECASE)
_NOT_BONE_PAGET = re.compile(r"breast|nipple|mammary|vulva|penis|perian|anal\b|skin|carcinoma",
                             re.IGNORECASE)
_ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
_OSTEOPOROSIS_TEXT = re.compile(r"osteopor|osteopenia", re.IGNORECASE)


# ---- words ---------------------------------------------------------------------------------

def agent_word(agent: str) -> str:
    """The ingredient as said in a sentence ("zoledronic acid", "alendronate")."""
    return AGENT_WORDS.get(agent, agent)


def agent_phrase(drug: Drug, regimen: str | None = None) -> str:
    """Ingredient with the strength/route that decides the rules ("zoledronic acid 5 mg",
    "ibandronate IV"), cut to 40 characters."""
    word = agent_word(drug.agent)
    regimen = regimen if regimen is not None else drug.regimen
    if drug.agent == "zoledronic-acid":
        if regimen == "5mg":
            return "zoledronic acid 5 mg"
        if regimen == "4mg":
            return "zoledronic acid 4 mg (oncology)"
        return "zoledronic acid"
    if drug.agent == "ibandronate" and drug.route == "iv":
        return "ibandronate IV"
    return cut(word)


def capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def identified_by(drug: Drug) -> str:
    """" (identified by name, not code)" for a text-matched drug (D3), else ""."""
    return f" ({BY_TEXT_NOTE})" if drug.by_text else ""


def draft_title(d: DraftOrder) -> str:
    """The draft as the prescriber wrote it (medication text or display, plus the dose)."""
    concept = d.resource.get("medicationCodeableConcept") or {}
    text = concept.get("text") if isinstance(concept.get("text"), str) else None
    if not text:
        text = next((c.get("display") for c in concept.get("coding") or []
                     if isinstance(c, dict) and isinstance(c.get("display"), str)), None)
    if not text:
        return cut(d.label, 60)
    dose = f" {d.dose_mg.normalize():f} mg" if d.dose_mg is not None else ""
    if dose and f"{d.dose_mg.normalize():f} mg" in text.lower():
        dose = ""
    return cut(f"{text}{dose}", 60)


def draft_names(drafts: Iterable[DraftOrder]) -> str:
    """The drafts for the detail (markdown): record text escaped (§1.2 rule 4)."""
    return "; ".join(f"{escape_record(draft_title(d))}{identified_by(d.drug)}" for d in drafts)


def bp_drafts(inp: RuleInput) -> list[DraftOrder]:
    """The triggering bisphosphonate drafts of this hook ("BP draft", §4)."""
    return inp.drafts_of(BISPHOSPHONATE)


def is_oral(drug: Drug) -> bool:
    """Oral bisphosphonate; an ibandronate of unknown route counts as oral (the usual form)."""
    return (drug.drug_class == BISPHOSPHONATE and drug.route != "iv"
            and drug.agent not in ("zoledronic-acid", "pamidronate"))


# ---- indication -----------------------------------------------------------------------------

def hcm_indication(inp: RuleInput, draft: DraftOrder) -> str | None:
    """The order's indication is hypercalcemia of malignancy (reasonCode in the value set or
    matching the D3 text pattern, or a reasonReference to such a Condition); the evidence."""
    if "hypercalcemia-of-malignancy" in draft_reason_sets(draft):
        texts = [t for t in draft.reason_texts if t]
        return "order reason: " + (cut(texts[0]) if texts else "hypercalcemia (coded)")
    for c in reason_conditions(inp.chart, draft):
        if "hypercalcemia-of-malignancy" in c.concepts:
            return f"order reason: {c.display or 'hypercalcemia of malignancy'}"
    return None


def zoledronic_regimen(inp: RuleInput, draft: DraftOrder) -> tuple[str | None, str]:
    """Strength of a zoledronic acid draft (D3), and how it was decided when the order does
    not say: an oncology bone indication → 4 mg (oncology), else 5 mg (osteoporosis/Paget's)."""
    if draft.drug.agent != "zoledronic-acid":
        return draft.drug.regimen, ""
    if draft.drug.regimen in ("5mg", "4mg"):
        return draft.drug.regimen, ""
    if oncology_indication(inp.chart, draft):
        return "4mg", ("strength not stated on the order: read as the 4 mg oncology regimen "
                       "because an oncology bone indication is on record")
    return "5mg", ("strength not stated on the order: read as the 5 mg (Reclast-type) regimen "
                   "because no oncology bone indication is on record")


# ---- kidney function ------------------------------------------------------------------------

def egfr_window(t: Thresholds, drug: Drug) -> int:
    """D10: eGFR look-back for the agent (IV 30 days, oral 365 days)."""
    return t.egfr_lookback_days_iv_bp if drug.route == "iv" else t.egfr_lookback_days_oral_bp


def calcium_window(t: Thresholds, drug: Drug) -> int:
    """D10 / §8 item 16: calcium look-back (IV ``calcium_lookback_days``, oral 90 days)."""
    if drug.route == "iv":
        return t.calcium_lookback_days
    return int(catalog_value(t, "calcium_lookback_days_oral_bp"))


def renal_cutoff(t: Thresholds, drug: Drug, regimen: str | None) -> tuple[int, str]:
    """The agent's eGFR cut-off (strictly below fires) and the name of its D10 parameter."""
    if drug.agent == "zoledronic-acid":
        name = "egfr_cutoff_zoledronic_4mg" if regimen == "4mg" else "egfr_cutoff_zoledronic_5mg"
    elif drug.agent in ("alendronate", "risedronate", "ibandronate", "pamidronate", "etidronate"):
        name = f"egfr_cutoff_{drug.agent}"
    else:  # an unnamed bisphosphonate: the strictest cut-off of the catalog
        name = max(("egfr_cutoff_zoledronic_5mg", "egfr_cutoff_alendronate"), key=lambda n: getattr(t, n))
    return int(getattr(t, name)), name


@dataclass(frozen=True)
class KidneyRecord:
    """An active CKD 4/5, ESRD or dialysis record (D6, D7)."""

    kind: str            # "ckd" (stage 4/5), "esrd", "dialysis"
    text: str
    when: date | None


def severe_kidney_records(inp: RuleInput) -> list[KidneyRecord]:
    """The D9 severe kidney records (:func:`~cards.rules._definitions.kidney_records`) as
    BP-RENAL-CONTRAINDICATION names them: each active Condition, and the newest dialysis
    Procedure in the window with the number of sessions."""
    found = kidney_records(inp.chart, inp.thresholds)
    out: list[KidneyRecord] = []
    for c in found.conditions:
        kind = "dialysis" if "dialysis" in c.concepts else \
            "esrd" if "end-stage-renal-disease" in c.concepts else "ckd"
        status = " (suspected)" if c.suspected else ""
        out.append(KidneyRecord(kind, f"{cut(c.display or 'chronic kidney disease stage 4/5')}{status}"
                                      f" (problem list{', since ' + iso(c.date) if c.date else ''})", c.date))
    procs = found.dialysis_procedures   # newest first
    if procs:
        p = procs[0]
        window = inp.thresholds.dialysis_procedure_lookback_days
        more = f" ({len(procs)} dialysis sessions in the last {window} days)" if len(procs) > 1 else ""
        out.append(KidneyRecord("dialysis", f"{cut(p.display or 'dialysis')} on {iso(p.date)}{more}", p.date))
    return out


def kidney_record_phrase(records: list[KidneyRecord]) -> str:
    """"dialysis" / "end-stage renal disease" / "CKD stage 4/5" for the summary."""
    kinds = {r.kind for r in records}
    if "dialysis" in kinds:
        return "Dialysis"
    if "esrd" in kinds:
        return "End-stage renal disease"
    return "CKD stage 4/5"


# ---- therapy history ------------------------------------------------------------------------

def any_antiresorptive_within(inp: RuleInput, days: int, exclude_agent: str | None = None) -> list[str]:
    """Evidence of any antiresorptive (denosumab or bisphosphonate) exposure in the ``days``
    before today (D4 initiation for BP-DENTAL), in words; empty = initiation. ``exclude_agent``:
    a bisphosphonate ingredient left out ("any *other* antiresorptive", A27).

    Dose events and, for oral bisphosphonates, active/completed requests and statements count on
    their dates (D4 "Initiation"); a medication statement that is still ``active`` (or whose
    period ends inside the window) and a dispense whose supply reaches into the window are
    exposure in the window too (D4 "statement period").
    """
    chart, today = inp.chart, inp.today
    start = today - timedelta(days=days)

    def kept(drug: Drug) -> bool:
        return drug.drug_class in (DENOSUMAB, BISPHOSPHONATE) and not (
            exclude_agent and drug.drug_class == BISPHOSPHONATE and drug.agent == exclude_agent)

    out: list[str] = []
    for cls in (DENOSUMAB, BISPHOSPHONATE):
        dates = [e.date for e in chart.dose_events(cls) if kept(e.drug)]
        dates += [r.date for r in chart.records_of(cls) if r.date is not None and kept(r.drug)
                  and r.drug.is_oral_bisphosphonate
                  and r.resource_type in ("MedicationRequest", "MedicationStatement")
                  and r.status in ("active", "completed")]
        recent = sorted(d for d in dates if start <= d <= today)
        if recent:
            out.append(f"{cls} on {recent[-1].isoformat()}")
    default_supply = inp.thresholds.dispense_default_days_supply
    for r in chart.medications:
        if not kept(r.drug) or r.date is None:
            continue
        if r.resource_type == "MedicationStatement" and r.status in ("active", "completed", "stopped"):
            end = r.end or (chart.today if r.status == "active" else None)
            if end is not None and end >= start and r.date <= chart.today:
                out.append(f"{cut(r.drug.name)} (statement {r.date.isoformat()} – "
                           f"{'ongoing' if r.end is None else r.end.isoformat()})")
        elif r.resource_type == "MedicationDispense" and r.status == "completed":
            supply = r.days_supply if r.days_supply is not None else default_supply
            end = r.date + timedelta(days=supply)
            if end >= start and r.date < start:
                out.append(f"{cut(r.drug.name)} (dispensed {r.date.isoformat()}, "
                           f"supply to {end.isoformat()})")
    return out


def continuation_evidence(inp: RuleInput, draft: DraftOrder) -> list[str]:
    """Why an IV bisphosphonate draft is not an initiation for BP-DENTAL (empty = initiation):
    for zoledronic acid 5 mg, a zoledronic acid dose in the last ``zol5_reinitiation_months``
    (18, A27) or any other antiresorptive in ``initiation_gap_days``; else any antiresorptive
    in ``initiation_gap_days`` (D4)."""
    t = inp.thresholds
    if is_zol5_draft(inp, draft):
        out = []
        last = last_zoledronic_acid_within(inp, t.zol5_reinitiation_months)
        if last is not None:
            out.append(f"zoledronic acid on {last.isoformat()}")
        return out + any_antiresorptive_within(inp, t.initiation_gap_days, exclude_agent="zoledronic-acid")
    return any_antiresorptive_within(inp, t.initiation_gap_days)


def iv_active_until(drug: Drug, regimen: str | None, dose: date,
                    t: Thresholds | None = None) -> date | None:
    """End of the D4 "active therapy" interval after an IV dose (``zol5_active_months``,
    ``zol4_active_days``, ``ibandronate_iv_active_months``, ``pamidronate_active_days``), or None
    (not an IV agent)."""
    t = t or Thresholds()
    if drug.agent == "zoledronic-acid" and regimen == "5mg":
        return add_months(dose, t.zol5_active_months)
    if drug.agent == "zoledronic-acid" and regimen == "4mg":
        return dose + timedelta(days=t.zol4_active_days)
    if drug.agent == "ibandronate" and drug.route == "iv":
        return add_months(dose, t.ibandronate_iv_active_months)
    if drug.agent == "pamidronate":
        return dose + timedelta(days=t.pamidronate_active_days)
    return None


def paget_evidence(inp: RuleInput, records: Iterable[MedicationRecord]) -> str | None:
    """A Paget's disease course: a record whose reason is Paget's disease of bone (text or
    ICD-10-CM M88), or a Paget's disease Condition with no osteoporosis on record."""
    osteoporosis_reason = False
    for r in records:
        texts = [t for t in r.reason_texts if t]
        if any(_PAGET_TEXT.search(t) and not _NOT_BONE_PAGET.search(t) for t in texts) or any(
                s == _ICD10 and c.upper().startswith("M88") for s, c in r.reason_codings):
            return f"{escape_record(r.drug.name)} ordered for Paget's disease ({iso(r.date)})"
        if any(_OSTEOPOROSIS_TEXT.search(t) for t in texts) or any(
                default_value_sets().names_for(s, c) & {"osteoporosis"} for s, c in r.reason_codings):
            osteoporosis_reason = True
    paget = inp.chart.conditions_in(PAGET_CONCEPT)
    if paget and not osteoporosis_reason and not inp.chart.conditions_in("osteoporosis"):
        c = paget[0]
        return f"{c.display or 'Paget disease of bone'} on the problem list, no osteoporosis recorded"
    return None


@dataclass
class Course:
    """One course of therapy: first and last evidence, the records in it, whether current."""

    start: date
    end: date
    records: list[MedicationRecord] = field(default_factory=list)
    current: bool = False
    why_current: str = ""

    @property
    def last_record(self) -> date:
        """Date of the newest piece of evidence (not its supply end)."""
        return max((r.date for r in self.records if r.date), default=self.start)

    def agents(self) -> list[str]:
        out: list[str] = []
        for r in sorted(self.records, key=lambda r: r.date or date.min):
            if r.drug.agent not in out:
                out.append(r.drug.agent)
        return out


def order_end(r: MedicationRecord, today: date, default_days: int) -> date:
    """D4 "Order end" (A38) of an oral order with a date: the earliest of today, its
    ``validityPeriod.end`` and ``authoredOn`` + the supply it implies; when neither of the last two
    can be read, ``authoredOn`` + ``default_days`` (``oral_order_default_days``) instead. Never
    before ``authoredOn``."""
    assert r.date is not None
    bounds = [today]
    stated = [d for d in (r.validity_end,
                          r.date + timedelta(days=r.supply_days) if r.supply_days is not None else None)
              if d is not None]
    bounds += stated or [r.date + timedelta(days=default_days)]
    return max(min(bounds), r.date)


def _oral_interval(r: MedicationRecord, today: date, t: Thresholds,
                   linked: bool = False) -> tuple[date, date] | None:
    """D4 "Oral bisphosphonate exposure" (A38): the exposure span of one record. ``linked``: an
    order that a counting dispense or administration names (its date only)."""
    if r.date is None:
        return None
    start = min(r.date, today)
    if r.resource_type == "MedicationRequest":
        if r.status == "stopped" or (linked and r.status in ("active", "completed")):
            return start, start   # discontinued at an unknown date / the linked records carry the supply
        if r.status in ("active", "completed"):
            return start, max(start, order_end(r, today, t.oral_order_default_days))
        return None
    if r.resource_type == "MedicationDispense":
        if r.status != "completed":
            return None
        supply = r.days_supply if r.days_supply is not None else t.dispense_default_days_supply
        return start, start + timedelta(days=supply)
    if r.resource_type == "MedicationStatement":
        if r.status not in ("active", "completed", "stopped"):
            return None
        end = r.end or (today if r.status == "active" else start)
        return start, max(start, min(end, today))
    if r.resource_type == "MedicationAdministration":
        return (start, start) if r.status in ("completed", "in-progress") else None
    return None


def oral_courses(inp: RuleInput, gap_days: int | None = None,
                 current_days: int | None = None) -> list[Course]:
    """Oral bisphosphonate courses, oldest first (D4 as amended by A38): the exposure spans of
    every oral agent pooled (a switch from one oral agent to another continues the course); a
    span starting more than ``gap_days`` (``oral_course_gap_days``) after the latest end so far
    starts a new course. The latest course is current when it holds an ``active`` statement, or
    when the latest end of its order and dispense spans is on or after today −
    ``current_days`` (``oral_course_current_days``); a stopped order never makes it current, nor
    does an ``active`` order status alone."""
    t, today = inp.thresholds, inp.today
    gap_days = t.oral_course_gap_days if gap_days is None else gap_days
    current_days = t.oral_course_current_days if current_days is None else current_days
    key = ("oral-courses", today, gap_days, current_days, t.oral_order_default_days,
           t.dispense_default_days_supply)   # three rules read them: computed once per chart
    return list(inp.chart.derived(key, lambda: _oral_courses(inp, gap_days, current_days)))


def _oral_courses(inp: RuleInput, gap_days: int, current_days: int) -> tuple[Course, ...]:
    """:func:`oral_courses` computed."""
    t, today, chart = inp.thresholds, inp.today, inp.chart
    spans = []
    for r in chart.medications:
        if not is_oral(r.drug):
            continue
        span = _oral_interval(r, today, t, linked=r.resource_type == "MedicationRequest"
                              and chart.is_linked_order(r))
        if span is not None:
            spans.append((span[0], span[1], r))
    spans.sort(key=lambda s: (s[0], s[1]))
    courses: list[Course] = []
    ends: dict[int, date] = {}
    for start, end, r in spans:
        ends[id(r)] = end
        if courses and (start - courses[-1].end).days <= gap_days:
            courses[-1].end = max(courses[-1].end, end)
            courses[-1].records.append(r)
        else:
            courses.append(Course(start, end, [r]))
    if courses:
        last = courses[-1]
        statement = next((r for r in last.records
                          if r.resource_type == "MedicationStatement" and r.status == "active"), None)
        if statement is not None:
            last.current, last.why_current = True, f"active medication statement since {iso(statement.date)}"
        else:
            supply = [(ends[id(r)], r) for r in last.records
                      if r.resource_type == "MedicationDispense"
                      or (r.resource_type == "MedicationRequest" and r.status != "stopped")]
            if supply:
                end, r = max(supply, key=lambda e: e[0])
                if (today - end).days <= current_days:
                    last.current = True
                    last.why_current = (f"dispensed {iso(r.date)}, supply to {end.isoformat()}"
                                        if r.resource_type == "MedicationDispense" else
                                        f"order of {iso(r.date)} covering to {end.isoformat()}")
    return tuple(courses)


def zoledronic_5mg_courses(inp: RuleInput, gap_months: int | None = None,
                           current_months: int | None = None) -> list[Course]:
    """Zoledronic acid 5 mg infusion courses (D4): distinct 5 mg dose events (de-duplicated by the
    chart, linked orders left out, A11); a gap of more than ``gap_months``
    (``iv_course_gap_months``) starts a new course; the latest course is current when its last
    infusion was at most ``current_months`` (``iv_course_current_months``) ago."""
    t = inp.thresholds
    gap_months = t.iv_course_gap_months if gap_months is None else gap_months
    current_months = t.iv_course_current_months if current_months is None else current_months
    events = inp.chart.dose_events(BISPHOSPHONATE, agent="zoledronic-acid", regimen="5mg")
    courses: list[Course] = []
    for e in events:
        if courses and e.date <= add_months(courses[-1].end, gap_months):
            courses[-1].end = e.date
            courses[-1].records.append(e.record)
        else:
            courses.append(Course(e.date, e.date, [e.record]))
    if courses and inp.today <= add_months(courses[-1].end, current_months):
        courses[-1].current = True
        courses[-1].why_current = f"last infusion {courses[-1].end.isoformat()}"
    return courses


# ---- evidence links -------------------------------------------------------------------------

#: Record types in words (card text never names a FHIR resource or id, §1.2 rule 1).
_RECORD_WORDS = {"MedicationRequest": "order", "MedicationStatement": "medication statement",
                 "MedicationDispense": "dispense", "MedicationAdministration": "administration"}


def _label(key: str) -> tuple[str, Link]:
    return SOURCES[key].label, SOURCES[key]


#: (source label, link) of each bisphosphonate label (§6.2, A31: DailyMed setid pages).
LABEL: dict[str, tuple[str, Link]] = {
    "zoledronic-5mg": _label("LBL-RECLAST"), "zoledronic-4mg": _label("LBL-ZOL4"),
    "alendronate": _label("LBL-FOSAMAX"), "risedronate": _label("LBL-RISEDRONATE"),
    "ibandronate": _label("LBL-IBANDRONATE-ORAL"), "ibandronate-iv": _label("LBL-IBANDRONATE-IV"),
    "pamidronate": _label("LBL-PAMIDRONATE"), "etidronate": _label("LBL-ETIDRONATE"),
}


def label_for(drug: Drug, regimen: str | None) -> tuple[str, Link]:
    """(source label, link) of the label behind a finding about ``drug``."""
    if drug.agent == "zoledronic-acid":
        return LABEL["zoledronic-4mg" if regimen == "4mg" else "zoledronic-5mg"]
    if drug.agent == "ibandronate" and drug.route == "iv":
        return LABEL["ibandronate-iv"]
    return LABEL.get(drug.agent, LABEL["alendronate"])


def source_for(drug: Drug, regimen: str | None) -> dict[str, str]:
    """``source_label``/``source_url`` of a Card about ``drug`` (A31)."""
    _, link = label_for(drug, regimen)
    return {"source_label": link.label, "source_url": link.url}
