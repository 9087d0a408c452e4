"""Facts shared by the denosumab dosing rules (DMAB-OVERDUE-TRANSITION, DMAB-DOSE-DUE,
DMAB-ONCOLOGY-INTERVAL, DMAB-HYPOCALCEMIA, DMAB-DUPLICATE, DMAB-DOSE-INDICATION-MISMATCH).

Everything here is a reading of RULES.md §2 on top of the :class:`~cds_service.chart.Chart`:
D3 (regimen of a dose), D4 (dose history and its source, planned follow-on order, deliberate stop,
follow-on antiresorptive) and D9 (GCTB/HCM loading phase). The D9 oncology bone indication and
severe kidney records are in :mod:`cards.rules._definitions`, the formatting helpers in
:mod:`cards.rules._text`. Pure: no I/O, no clock (``today`` is passed in).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Iterable

from cds_service.chart import (BISPHOSPHONATE, DENOSUMAB, Chart, DoseEvent, DraftOrder, Lab,
                               MedicationRecord, add_months)
from cds_service.chart.medications import dose_class

from ..thresholds import Thresholds
from ._definitions import (METASTASES_REASON_TEXT, Evidence, condition_evidence, condition_evidence_of,
                           draft_reason_evidence, hcm_conditions, kidney_records)
from ._text import cut

#: Xgeva label (GCTB, hypercalcemia of malignancy): extra 120 mg doses on days 8 and 15 of the
#: first month, i.e. 7 and 14 days after the first dose (a dosing fact of the label, not a
#: configurable threshold).
LOADING_EXTRA_DOSE_OFFSETS = (7, 14)

_SOURCE_WORDS = {
    "MedicationAdministration": "an administration record",
    "MedicationDispense": "a dispense record (for a clinic-given injection the dispense date is "
                          "taken as the dose date)",
    "MedicationStatement": "a medication statement (reported or reconciled medication; the date "
                           "may be the start of therapy rather than the injection)",
    "MedicationRequest": "a completed order only",
}

_BONE_LOSS_REASON_TEXT = re.compile(r"osteopor|osteopen|bone loss|low bone (mass|density)",
                                    re.IGNORECASE)


def regimen_words(regimen: str | None) -> str:
    return {"60mg": "60 mg", "120mg": "120 mg"}.get(regimen or "", "unknown strength")


# ---- dose history (D4) ----------------------------------------------------------------------

_CONFIDENCE = {"MedicationAdministration": 4, "MedicationDispense": 3, "MedicationStatement": 2,
               "MedicationRequest": 1}


@dataclass(frozen=True)
class Dose:
    """One denosumab dose event with the regimen read from every record behind it.

    The chart keeps the most confident record of a de-duplicated dose (D4); when that record
    does not tell the strength (an ingredient-coded administration) but another record of the
    same dose does (the 60 mg order completed that day), the regimen is taken from it (D3).
    """

    event: DoseEvent
    regimen: str | None
    records: tuple[MedicationRecord, ...]

    @property
    def date(self) -> date:
        return self.event.date

    @property
    def low_confidence(self) -> bool:
        """Only a completed MedicationRequest dates this dose (D4, §8 item 14)."""
        return self.event.low_confidence

    @property
    def by_text(self) -> bool:
        return self.event.drug.by_text

    @property
    def name(self) -> str:
        return cut(self.event.drug.name)

    def source_text(self) -> str:
        """Where the date comes from, for the card detail."""
        words = _SOURCE_WORDS.get(self.event.source, self.event.source)
        text = f"dated from {words}"   # never the record id (§1.2 rule 1, A29)
        if self.low_confidence:
            text += (": low confidence — no administration, dispense or statement was found, so "
                     "the dose is assumed to have been given on the order date; confirm the date")
        return text


def denosumab_doses(chart: Chart) -> list[Dose]:
    """Every de-duplicated denosumab dose, oldest first, with its regimen (D3, D4); computed
    once per chart (five rules read them)."""
    return list(chart.derived("denosumab-doses", lambda: _denosumab_doses(chart)))


def _denosumab_doses(chart: Chart) -> tuple[Dose, ...]:
    """:func:`denosumab_doses` computed."""
    out = []
    for event in chart.dose_events(DENOSUMAB):
        # the records of this dose: dated less than the de-duplication window from it, in chart
        # order (an index lookup, not a scan of every record per dose: issue 11 §3), plus the
        # orders the dose record names (the same dose, A11)
        cluster = chart.dose_records_near(DENOSUMAB, event.date, chart.dose_dedupe_days)
        cluster += [r for r in chart.linked_orders_of(event.record) if r not in cluster]
        cluster.sort(key=lambda r: -_CONFIDENCE.get(r.resource_type, 0))
        regimen = event.drug.regimen or next((r.drug.regimen for r in cluster if r.drug.regimen), None)
        out.append(Dose(event, regimen, tuple(cluster)))
    return tuple(out)


def last_denosumab_dose(chart: Chart) -> Dose | None:
    """The latest denosumab dose (D4 "Last dose"), or None."""
    doses = denosumab_doses(chart)
    return doses[-1] if doses else None


def followon_after(chart: Chart, last: date) -> list[str]:
    """Follow-on antiresorptive after the last denosumab dose (D4): a bisphosphonate dose event
    dated after ``last`` (an IV statement counts only in a statement-only history, A1), and for
    an oral bisphosphonate also an active/completed request or statement dated after it. An IV
    order that is not given is a planned follow-on order, not a follow-on (A2). Cancelled,
    entered-in-error and not-done records never reach the chart (D2)."""
    found: list[str] = []
    for e in chart.dose_events(BISPHOSPHONATE):
        if e.date > last:
            found.append(f"{cut(e.drug.name)} on {e.date.isoformat()} ({e.record.ref})")
    for r in chart.records_after(BISPHOSPHONATE, last, ("active", "completed"),
                                 ("MedicationRequest", "MedicationStatement")):
        if not r.drug.is_oral_bisphosphonate:
            continue
        text = f"{cut(r.drug.name)} {r.status} {r.resource_type} dated {r.date.isoformat()} ({r.ref})"  # type: ignore[union-attr]
        if not any(r.ref in f for f in found):
            found.append(text)
    return found


#: D4 planned follow-on order: the intents of an order (not a proposal or a reflex order).
PLANNED_INTENTS = frozenset({"order", "plan", "original-order"})


@dataclass(frozen=True)
class PlannedOrder:
    """A planned follow-on order (D4, A2) and its planned date ``P`` (None: none readable)."""

    record: MedicationRecord
    planned: date | None

    def silences_until(self, last: date, th: Thresholds) -> date:
        """Last day this order silences DMAB-OVERDUE-TRANSITION: ``P + planned_followon_grace_days``;
        without any readable planned date, ``add_months(L, dmab60_overdue_months)`` (D4)."""
        if self.planned is None:
            return add_months(last, th.dmab60_overdue_months)
        return self.planned + timedelta(days=th.planned_followon_grace_days)


def _given(chart: Chart, r: MedicationRecord, since: date) -> bool:
    """A dose event of the ordered drug class dated on or after ``since`` (D4 "not given")."""
    cls = dose_class(r.drug)
    return any(e.date >= since for e in chart.dose_events(r.drug.drug_class) if dose_class(e.drug) == cls)


def planned_followons(chart: Chart, last: date | None,
                      classes: Iterable[str] = (DENOSUMAB, BISPHOSPHONATE)) -> list[PlannedOrder]:
    """Planned follow-on orders (D4, A2): an ``active`` or ``on-hold`` MedicationRequest, intent
    ``order``/``plan``/``original-order``, for denosumab or a bisphosphonate, authored on or
    after the last dose ``last`` (any when there is no dose; an order without ``authoredOn`` is
    not known to be older), and not given: no dose event of its drug class on or after its
    ``authoredOn`` (after ``last`` when undated). ``P`` = ``validityPeriod.start``, else the
    earliest timing event / bounds start, else ``authoredOn``."""
    wanted = set(classes)
    out: list[PlannedOrder] = []
    for r in chart.medications:
        if r.resource_type != "MedicationRequest" or r.status not in ("active", "on-hold") \
                or r.drug.drug_class not in wanted or r.intent not in PLANNED_INTENTS:
            continue
        if last is not None and r.date is not None and r.date < last:
            continue
        if r.date is not None and _given(chart, r, r.date):
            continue   # undated: nothing can be dated after the last dose, so not given
        out.append(PlannedOrder(r, r.planned or r.date))
    return out


def planned_orders_after(chart: Chart, last: date | None,
                         classes: Iterable[str] = (DENOSUMAB, BISPHOSPHONATE)) -> list[MedicationRecord]:
    """The records of :func:`planned_followons` (DMAB-DOSE-DUE: any of them silences)."""
    return [p.record for p in planned_followons(chart, last, classes)]


def deliberate_stop(chart: Chart, last: date) -> MedicationRecord | None:
    """Deliberate stop of denosumab (D4): a ``stopped`` MedicationRequest/MedicationStatement
    dated after the last dose (for a statement, its period end when given), or a ``completed``
    MedicationRequest with a discontinuation reason/note that belongs to the last dose or later
    (a completed order is itself a dose record, so it is dated within the last dose's
    de-duplication window)."""
    for r in chart.medications:
        if r.drug.drug_class != DENOSUMAB:
            continue
        if r.status == "stopped" and r.resource_type in ("MedicationRequest", "MedicationStatement"):
            when = r.end or r.date
            if when is not None and when > last:
                return r
        if r.resource_type == "MedicationRequest" and r.status == "completed" and r.discontinued \
                and r.date is not None and (last - r.date).days < chart.dose_dedupe_days:
            return r
    return None


# ---- indications (D6, D9) -------------------------------------------------------------------

def gctb_or_hcm(chart: Chart, drafts: Iterable[DraftOrder] = ()) -> list[Evidence]:
    """Active giant cell tumour of bone or hypercalcemia of malignancy (condition or draft reason)."""
    sets = ("giant-cell-tumor-of-bone", "hypercalcemia-of-malignancy")
    drafts = list(drafts)
    ev = condition_evidence(chart, *sets, active=True)
    # A4: an E83.52 "Hypercalcemia" is HCM only with a malignancy (on record or the order's reason)
    named = {id(c) for c in chart.conditions_in(*sets, active=True)}
    extra = {id(c): c for d in (drafts or [None]) for c in hcm_conditions(chart, d) if id(c) not in named}
    ev += [condition_evidence_of(c, ("hypercalcemia-of-malignancy",)) for c in extra.values()]
    for d in drafts:
        ev += draft_reason_evidence(d, sets)
    return ev


def gctb(chart: Chart, draft: DraftOrder | None) -> list[Evidence]:
    ev = condition_evidence(chart, "giant-cell-tumor-of-bone", active=True)
    if draft is not None:
        ev += draft_reason_evidence(draft, ("giant-cell-tumor-of-bone",))
    return ev


def metastases_or_myeloma(chart: Chart, draft: DraftOrder | None) -> list[Evidence]:
    ev = condition_evidence(chart, "bone-metastases", "multiple-myeloma", active=True)
    if draft is not None:
        ev += draft_reason_evidence(draft, ("bone-metastases", "multiple-myeloma"), METASTASES_REASON_TEXT)
    return ev


def bone_loss_indication(chart: Chart, draft: DraftOrder | None) -> list[Evidence]:
    """Osteoporosis (any counting condition: a chronic diagnosis) or a bone-loss reason on the
    draft (treatment-induced bone loss has no value set; recognised by the reason's text)."""
    ev = condition_evidence(chart, "osteoporosis", active=None)
    if draft is not None:
        ev += draft_reason_evidence(draft, ("osteoporosis",), _BONE_LOSS_REASON_TEXT)
    return ev


def course_start_120(doses: list[Dose], gap_days: int) -> date | None:
    """First 120 mg dose of the current course: walking back from the last dose over doses that
    are not 60 mg, while consecutive doses are at most ``gap_days`` apart (D4 initiation gap)."""
    first: date | None = None
    prev: Dose | None = None
    for d in reversed(doses):
        if d.regimen == "60mg":
            break
        if prev is not None and (prev.date - d.date).days > gap_days:
            break
        if d.regimen == "120mg":
            first = d.date
        prev = d
    return first


def loading_phase(chart: Chart, doses: list[Dose], th: Thresholds, today: date,
                  drafts: Iterable[DraftOrder] = ()) -> tuple[date | None, list[Evidence]]:
    """D9 GCTB/HCM loading phase: an active GCTB or HCM (condition, or the draft's reason) and
    the first 120 mg dose of the current course ≤ 28 days ago. Returns (first dose, evidence)
    when in the loading phase, else (None, [])."""
    evidence = gctb_or_hcm(chart, drafts)
    if not evidence:
        return None, []
    first = course_start_120(doses, th.initiation_gap_days)
    if first is None or not 0 <= (today - first).days <= th.loading_phase_days:
        return None, []
    return first, evidence


def loading_expected_dates(first: date, th: Thresholds) -> list[date]:
    """Expected loading-phase doses (D9, RULES.md DMAB-ONCOLOGY-INTERVAL): day 8 and day 15
    after the first dose, then every 28 days from the first dose."""
    extra = [first + timedelta(days=n) for n in LOADING_EXTRA_DOSE_OFFSETS]
    return extra + [first + timedelta(days=th.dmab120_interval_days)]


# ---- labs for card text ---------------------------------------------------------------------

def lab_summary(lab: Lab | None, label: str, window_days: int | None = None) -> str:
    """``eGFR 58 mL/min/{1.73_m2} on 2026-10-01`` or ``no eGFR in the last 365 days``."""
    if lab is None:
        return f"no {label} on record" + (f" in the last {window_days} days" if window_days else "")
    value = f"{lab.comparator or ''}{lab.value:f}" if lab.value is not None else lab.describe()
    unit = {"mL/min/{1.73_m2}": "mL/min/1.73 m²"}.get(lab.unit or "", lab.unit or "")
    return f"{label} {value} {unit} on {lab.date.isoformat()}".replace("  ", " ")


def sections(*parts: tuple[str, str | list[str] | None]) -> str:
    """Markdown detail from (heading, text or bullet list) pairs; empty parts are left out."""
    out: list[str] = []
    for heading, body in parts:
        if not body:
            continue
        if isinstance(body, list):
            out.append(f"**{heading}**\n\n" + "\n".join(f"- {b}" for b in body if b))
        else:
            out.append(f"**{heading}** {body}")
    return "\n\n".join(out)


def severe_kidney_records(chart: Chart, th: Thresholds) -> list[str]:
    """The D9 severe kidney records (:func:`~cards.rules._definitions.kidney_records`: active
    CKD stage 4/5, ESRD or dialysis condition, dialysis procedure in the window) in words:
    evidence that zoledronic acid must not be suggested (BP-RENAL-CONTRAINDICATION)."""
    found = kidney_records(chart, th)
    sets = ("ckd-stage-4-5", "end-stage-renal-disease", "dialysis")
    out = [condition_evidence_of(c, sets).text for c in found.conditions]
    out += [f"{cut(p.display or 'dialysis')} on {p.date.isoformat() if p.date else 'unknown date'}"
            for p in found.dialysis_procedures]
    return out
