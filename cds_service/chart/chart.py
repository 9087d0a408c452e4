"""The Chart: a patient's FHIR data turned, once per request, into clinical facts (DESIGN.md).

Pure: no I/O, the clock passed in. Every resource is repaired for known client deviations
(IOP-1), validated with ``fhir.resources.R4B``, filtered by status (RULES.md D2), classified by
value set (D3, D5–D7), and anything unreadable is skipped and reported, never raised.
Three-valued answers: a query about a resource type the request could not supply
(``chart.known(...)`` is False) means "unknown", not "absent".
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, tzinfo
from functools import cached_property
from decimal import Decimal
from typing import Any, Callable, Hashable, Iterable, Iterator, Mapping, Sequence, TypeVar

from . import clinical, labs, medications
from .dates import add_months, clock_zone, fhir_date, is_future, today_in
from .identity import PatientIdentity
from .medication_refs import medication_index
from .labs import CalciumJudgement, LabDay, LazyLabs
from .model import (BISPHOSPHONATE, DENOSUMAB, ConditionFact, DoseEvent, DraftOrder, Drug, Lab,
                    MedicationRecord, PatientFacts, ProcedureFact, Skipped, reference_key)
from .valuesets import ValueSets, default_value_sets
from .verdicts import VerdictCache, validate_r4b

LOINC = "http://loinc.org"
T = TypeVar("T")
MEDICATION_TYPES = ("MedicationRequest", "MedicationAdministration", "MedicationStatement",
                    "MedicationDispense")
#: Resource types the chart reads; anything else in a prefetch is ignored silently.
READ_TYPES = frozenset(MEDICATION_TYPES + ("Observation", "Condition", "Procedure", "Patient",
                                           "Medication"))


def _by_drug_class(items: Iterable[Any]) -> dict[str, tuple[Any, ...]]:
    """Records or dose events grouped by ``.drug.drug_class``, each group in input order."""
    out: dict[str, list[Any]] = {}
    for item in items:
        out.setdefault(item.drug.drug_class, []).append(item)
    return {k: tuple(v) for k, v in out.items()}


@dataclass(frozen=True)
class CalciumLimits:
    """Calcium thresholds (D10) the chart needs to judge calcium (D5)."""

    low_mg_dl: Decimal = Decimal("8.5")
    severe_mg_dl: Decimal = Decimal("7.5")
    ionized_low_mmol_l: Decimal = Decimal("1.15")
    ionized_severe_mmol_l: Decimal = Decimal("1.00")
    albumin_reference_g_dl: Decimal = Decimal("4.0")
    albumin_pairing_days: int = 7


@dataclass
class Chart:
    """Clinical facts of one patient at ``now``; built by :func:`build_chart`."""

    now: datetime
    today: date
    patient: PatientFacts
    #: the clock zone (§1.3 Clock, A3): record dates were taken here; code that parses a date
    #: after the build passes it to :func:`~cds_service.chart.dates.fhir_date`
    zone: tzinfo | None = None
    #: eGFR code → ``preference`` rank of ``codes.json`` (D5, A28); None: the catalog's ranks
    egfr_rank: Mapping[str, int] | None = None
    medications: tuple[MedicationRecord, ...] = ()
    drafts: tuple[DraftOrder, ...] = ()
    triggers: tuple[DraftOrder, ...] = ()
    results: dict[str, Sequence[Lab]] = field(default_factory=dict)
    conditions: tuple[ConditionFact, ...] = ()
    procedures: tuple[ProcedureFact, ...] = ()
    skipped: list[Skipped] = field(default_factory=list)   # grows as lazy labs are read
    unavailable: dict[str, str] = field(default_factory=dict)
    #: resource types whose data arrived only in part (issue 11 §2 "partial results are not
    #: complete results"): type → why (an error entry, unread pages, the per-key cap, ...)
    partial: dict[str, str] = field(default_factory=dict)
    #: resources not used because they are not the context patient's (identity.py):
    #: ``other-patient`` (another or an unverifiable patient) and ``no-patient`` (none named)
    excluded: dict[str, int] = field(default_factory=dict)
    #: drafts of the hook that could not be read, but are antiresorptives by code or text (D3)
    unreadable_drafts: tuple[Drug, ...] = ()
    #: D4 de-duplication window (``dose_dedupe_days``): dose records less apart are one dose
    dose_dedupe_days: int = 4

    @cached_property
    def _derived(self) -> dict[Any, Any]:
        return {}   # not a field: a copy made with dataclasses.replace starts with its own

    def derived(self, key: Hashable, compute: Callable[[], T]) -> T:
        """``compute()``, once per chart for ``key``: a view of the record that several rules
        read (the oral bisphosphonate courses, the denosumab doses) is computed once per request
        instead of once per rule (issue 11 §3). ``key`` names the view and every parameter
        ``compute`` reads besides the chart; the value is shared, so it must not be changed."""
        memo = self._derived
        if key not in memo:
            memo[key] = compute()
        return memo[key]

    @property
    def unreadable(self) -> list[Skipped]:
        """Resources the rules wanted to read but could not (reported to the clinician)."""
        return [s for s in self.skipped if s.unreadable]

    # ---- data availability -------------------------------------------------------------
    def known(self, *resource_types: str) -> bool:
        """True when every named resource type could be had (prefetched, fetched, or null/empty)."""
        return not any(t in self.unavailable for t in resource_types)

    def partial_medications(self) -> bool:
        """True when some medication records may be missing (a partial answer for a medication
        type): a dose history built from them may miss the latest dose."""
        return any(t in self.partial for t in MEDICATION_TYPES)

    # ---- medications -------------------------------------------------------------------
    # Indexes built once per chart (issue 11 §3: no step of the request path is superlinear):
    # records per class, dose events per class, dose records per class sorted by date (bisect).
    @cached_property
    def _by_class(self) -> dict[str, tuple[MedicationRecord, ...]]:
        """Medication records per drug class, in chart order."""
        return _by_drug_class(self.medications)

    def records_of(self, drug_class: str) -> tuple[MedicationRecord, ...]:
        """Medication records of one drug class (D3), in chart order."""
        return self._by_class.get(drug_class, ())

    @cached_property
    def _dose_records(self) -> list[MedicationRecord]:
        """:func:`medications.dose_records` of the chart, once (events and the date index)."""
        return medications.dose_records(self.medications, self._linked_orders)

    @cached_property
    def _all_dose_events(self) -> list[DoseEvent]:
        return medications.dose_events(list(self.medications), self.dose_dedupe_days,
                                       dated=self._dose_records)

    @cached_property
    def _linked_orders(self) -> frozenset[int]:
        return frozenset(medications.linked_orders(self.medications))

    @cached_property
    def _linked_ids(self) -> frozenset[int]:
        return frozenset(id(self.medications[i]) for i in self._linked_orders)

    def is_linked_order(self, record: MedicationRecord) -> bool:
        """A MedicationRequest that a counting administration or dispense names (D4, A11): the
        same dose or supply as that record."""
        return id(record) in self._linked_ids

    @cached_property
    def _requests_by_key(self) -> dict[str, list[MedicationRecord]]:
        out: dict[str, list[MedicationRecord]] = {}
        for r in self.medications:
            if r.resource_type == "MedicationRequest":
                for key in r.keys():
                    out.setdefault(key, []).append(r)
        return out

    def linked_orders_of(self, record: MedicationRecord) -> list[MedicationRecord]:
        """The MedicationRequests an administration or dispense names (D4 dose events 3)."""
        out: list[MedicationRecord] = []
        for ref in record.request_refs:
            for key in {ref, reference_key(ref)}:
                out += [r for r in self._requests_by_key.get(key, []) if r not in out]
        return out

    @cached_property
    def _events_by_class(self) -> dict[str, tuple[DoseEvent, ...]]:
        return _by_drug_class(self._all_dose_events)

    def dose_events(self, drug_class: str | None = None, *, agent: str | None = None,
                    regimen: str | None = None) -> list[DoseEvent]:
        """De-duplicated dose events (D4), oldest first, optionally filtered."""
        events = self._all_dose_events if drug_class is None else self._events_by_class.get(drug_class, ())
        if agent is None and regimen is None:
            return list(events)
        return [e for e in events if (agent is None or e.drug.agent == agent)
                and (regimen is None or e.drug.regimen == regimen)]

    def last_dose(self, drug_class: str, *, agent: str | None = None,
                  regimen: str | None = None) -> DoseEvent | None:
        """The latest dose event of a class (D4 "Last dose"), or None."""
        events = self.dose_events(drug_class, agent=agent, regimen=regimen)
        return events[-1] if events else None

    @cached_property
    def _dose_records_by_date(self) -> dict[str, tuple[list[date], list[tuple[int, MedicationRecord]]]]:
        """Per class: the dated dose records (D4, :func:`medications.is_dose_record`) sorted by
        date, as (dates, (chart position, record)) for bisection."""
        out: dict[str, list[tuple[date, int, MedicationRecord]]] = {}
        position = {id(r): i for i, r in enumerate(self.medications)}
        for r in self._dose_records:
            entry = (r.date, position[id(r)], r)
            out.setdefault(r.drug.drug_class, []).append(entry)  # type: ignore[arg-type]
        index = {}
        for cls, entries in out.items():
            entries.sort(key=lambda e: (e[0], e[1]))
            index[cls] = ([e[0] for e in entries], [(e[1], e[2]) for e in entries])
        return index

    def dose_records_near(self, drug_class: str, day: date, days: int) -> list[MedicationRecord]:
        """Dose records (D4) of a class dated less than ``days`` days from ``day`` (either
        side), in chart order: the records behind one de-duplicated dose (D4 "De-duplication").
        O(log n + k) by bisection on the date index."""
        found = self._dose_records_by_date.get(drug_class)
        if not found or days <= 0:
            return []
        dates, entries = found
        lo = bisect_left(dates, day - timedelta(days=days - 1))
        hi = bisect_right(dates, day + timedelta(days=days - 1))
        return [r for _, r in sorted(entries[lo:hi], key=lambda e: e[0])]

    @cached_property
    def _exposure(self) -> dict[str, tuple[date, ...]]:
        return {}

    def _exposure_of(self, drug_class: str) -> tuple[date, ...]:
        """:meth:`exposure_dates` of a class, computed once per chart (sorted, none after today)."""
        memo = self._exposure
        if drug_class not in memo:
            dates = {e.date for e in self.dose_events(drug_class)}
            for r in self.records_of(drug_class):
                if r.date is None or not r.drug.is_oral_bisphosphonate:
                    continue  # an active order for an injectable is a plan, not a dose (D4 "Initiation")
                if r.resource_type in ("MedicationRequest", "MedicationStatement") \
                        and r.status in ("active", "completed"):
                    dates.add(r.date)
            memo[drug_class] = tuple(sorted(d for d in dates if d <= self.today))
        return memo[drug_class]

    def exposure_dates(self, drug_class: str) -> list[date]:
        """Every date with evidence of exposure to a class (dose events, plus for oral
        bisphosphonates active/completed requests and statement periods), oldest first (D4)."""
        return list(self._exposure_of(drug_class))

    def is_initiation(self, drug_classes: Iterable[str], gap_days: int = 365) -> bool:
        """No exposure to any of ``drug_classes`` in the ``gap_days`` before today (D4)."""
        if gap_days < 0:
            return True
        start = self.today - timedelta(days=gap_days)
        for cls in drug_classes:
            dates = self._exposure_of(cls)          # sorted, none after today
            if bisect_left(dates, start) < len(dates):
                return False
        return True

    def active_records(self, drug_class: str, *, agent: str | None = None,
                       dispense_default_days: int = 30) -> list[MedicationRecord]:
        """Records that make a drug "active therapy" today (D4): active request/statement, or a
        completed dispense whose supply (``daysSupply``, default 30) still covers today."""
        out = []
        for r in self.records_of(drug_class):
            if agent and r.drug.agent != agent:
                continue
            if r.resource_type in ("MedicationRequest", "MedicationStatement") and r.status == "active":
                out.append(r)
            elif r.resource_type == "MedicationDispense" and r.status == "completed" and r.date:
                supply = r.days_supply if r.days_supply is not None else dispense_default_days
                if 0 <= (self.today - r.date).days <= supply:
                    out.append(r)
        return out

    def records_after(self, drug_class: str, after: date, statuses: Iterable[str],
                      types: Iterable[str] = MEDICATION_TYPES) -> list[MedicationRecord]:
        """Records of a class with one of ``statuses`` dated strictly after ``after``."""
        statuses, types = set(statuses), set(types)
        return [r for r in self.records_of(drug_class)
                if r.status in statuses and r.resource_type in types
                and r.date is not None and r.date > after]

    # ---- labs ---------------------------------------------------------------------------
    def labs(self, concept: str) -> Sequence[Lab]:
        """Every counting result of a concept (usable or not), newest first.

        Results are validated lazily, newest first, as they are read: a reader that stops at
        the edge of its window never pays for older results ("parse only what rules need")."""
        return self.results.get(concept, ())

    def latest_day(self, concept: str, within_days: int | None = None) -> LabDay:
        """The latest date within ``within_days`` of today (None: any age) holding a counting
        result of ``concept``, with all of that date's results, usable or not (D5, A39)."""
        return labs.latest_day(self.results.get(concept, ()), self.today, within_days)

    def latest(self, concept: str, within_days: int | None = None) -> Lab | None:
        """The usable result that decides (D5 "the latest decides", A39): a usable result of the
        latest date within ``within_days``; None when there is none, or when no result of that
        date is usable (an older result never stands in: see :meth:`latest_day`)."""
        return self.latest_day(concept, within_days).decisive

    def previous_usable(self, concept: str, before: date, within_days: int | None = None) -> Lab | None:
        """The newest usable result dated before ``before`` (within the window): the older result a
        card may name ("not used: a newer result exists", D5), never one a rule judges."""
        return labs.latest_day(self.results.get(concept, ()), self.today, within_days,
                               before=before, usable_only=True).decisive

    def newest_any(self, concept: str) -> Lab | None:
        """The newest result whatever its age or unit (for "last: … (stale)" in card details)."""
        return next(iter(self.results.get(concept, ())), None)

    def calcium_day(self, window_days: int) -> LabDay:
        """The latest date within ``window_days`` holding a calcium result of any form (total,
        lab-corrected, ionized) and all of that date's calcium results (D5, A39)."""
        return labs.latest_calcium_day(self.results, self.today, window_days)

    def calcium(self, window_days: int, limits: CalciumLimits = CalciumLimits()) -> CalciumJudgement | None:
        """The calcium to judge (D5 steps 1–4, A39) within ``window_days``, or None when there is
        no calcium result, or none of the latest calcium date is usable (:meth:`calcium_day`)."""
        return labs.judge_calcium(self.results, self.today, window_days, limits.low_mg_dl,
                                  limits.severe_mg_dl, limits.ionized_low_mmol_l,
                                  limits.ionized_severe_mmol_l, limits.albumin_reference_g_dl,
                                  limits.albumin_pairing_days)

    def previous_calcium(self, window_days: int | None, before: date,
                         limits: CalciumLimits = CalciumLimits()) -> CalciumJudgement | None:
        """The calcium of the newest date before ``before`` that has a usable one, judged per D5:
        what a card names as "the previous result" when the latest is unusable (A39); ``window_days``
        None: any age (a stale result)."""
        return labs.judge_calcium(self.results, self.today, window_days, limits.low_mg_dl,
                                  limits.severe_mg_dl, limits.ionized_low_mmol_l,
                                  limits.ionized_severe_mmol_l, limits.albumin_reference_g_dl,
                                  limits.albumin_pairing_days, before=before)

    def egfr_day(self, within_days: int) -> LabDay:
        """The latest date within ``within_days`` holding an eGFR, with its results (D5, A39)."""
        return self.latest_day("egfr", within_days)

    def egfr(self, within_days: int) -> Lab | None:
        """The eGFR to use (D5, A39: the latest date in the window decides, then code preference
        among its usable results); None when none, or none of that date is usable."""
        candidates = labs.newest_usable_day(self.results.get("egfr", ()), self.today, within_days)
        return labs.select_egfr(candidates, self._pediatric, self.egfr_rank)

    def previous_egfr(self, within_days: int | None, before: date) -> Lab | None:
        """The eGFR of the newest date before ``before`` that has a usable one (code preference):
        named by a card when the latest eGFR is unusable (A39), never judged."""
        day = labs.latest_day(self.results.get("egfr", ()), self.today, within_days,
                              before=before, usable_only=True)
        return labs.select_egfr(day.usable, self._pediatric, self.egfr_rank)

    def crcl(self, creatinine_days: int, weight_days: int) -> labs.CreatinineClearance:
        """The Cockcroft-Gault CrCl (actual body weight, mL/min) from the latest serum creatinine
        (``creatinine-serum``) within ``creatinine_days`` and the latest body weight within
        ``weight_days`` (D5, A10, A39), or why it is not computable. Only for IV bisphosphonates:
        it never stands in for an eGFR elsewhere (A35)."""
        return labs.creatinine_clearance(self.latest_day("creatinine-serum", creatinine_days),
                                         self.latest_day("body-weight", weight_days),
                                         self.patient.age, self.patient.sex)

    @property
    def _pediatric(self) -> bool:
        return self.patient.age is not None and self.patient.age < 18

    # ---- conditions and procedures ------------------------------------------------------
    def conditions_in(self, *value_sets: str, active: bool | None = None) -> list[ConditionFact]:
        """Counting Conditions in any of ``value_sets``; ``active=True`` keeps active ones only."""
        wanted = set(value_sets)
        return [c for c in self.conditions if c.concepts & wanted
                and (active is None or c.active == active)]

    def procedures_in(self, *value_sets: str, within_days: int | None = None) -> list[ProcedureFact]:
        """Completed Procedures in any of ``value_sets``, newest first, optionally within a window."""
        wanted = set(value_sets)
        out = [p for p in self.procedures if p.concepts & wanted
               and (within_days is None or (p.date is not None and 0 <= (self.today - p.date).days <= within_days))]
        return sorted(out, key=lambda p: p.date or date.min, reverse=True)


# ---- building -----------------------------------------------------------------------------

def _validate(resource: dict[str, Any], skipped: list[Skipped], *, draft: bool = False,
              verdicts: VerdictCache | None = None, what: str = "",
              drug_class: str = "", memo: dict | None = None) -> dict[str, Any] | None:
    """The projection of the elements the chart reads if they validate (R4B datatypes), else
    None (reported in ``skipped`` as unreadable, with ``what`` it was)."""
    fixed, reason = (verdicts.validate(resource, draft=draft, memo=memo) if verdicts is not None
                     else validate_r4b(resource, draft=draft, memo=memo))
    if fixed is None:
        skipped.append(Skipped(str(resource.get("resourceType")), str(resource.get("id") or ""), reason,
                               what, drug_class=drug_class))
    return fixed


def _text(value: Any) -> str | None:
    """``value`` if it is a string, else None (a malformed element must not raise)."""
    return value if isinstance(value, str) else None


class _Skip(Exception):
    """A resource the chart reports and ignores (the reason goes to ``Chart.skipped``)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_MALFORMED = (TypeError, AttributeError, ValueError, KeyError, ArithmeticError, IndexError,
              RecursionError)


#: Reason in ``Chart.unavailable`` of a resource type the request budget left unread (§3).
OUT_OF_TIME = "out-of-time"
#: Records read between two looks at the request budget (a look is a clock read).
CHECK_EVERY = 256


class _Budget:
    """The request budget as the chart reads (issue 11 §3): ``deadline`` (the caller's clock,
    True once spent) is asked every :data:`CHECK_EVERY` records, and stays spent once it is."""

    def __init__(self, deadline: Callable[[], bool] | None) -> None:
        self.deadline = deadline
        self.count = 0
        self.spent = False

    def tick(self) -> bool:
        """One more record to read: True when the budget is spent (read no further)."""
        if self.spent:
            return True
        if self.deadline is None:
            return False
        self.count += 1
        if self.count >= CHECK_EVERY:
            self.count = 0
            self.spent = bool(self.deadline())
        return self.spent


def _read(raws: Iterable[dict[str, Any]], reader: Any, skipped: list[Skipped],
          budget: _Budget | None = None) -> Iterator[Any]:
    """Apply ``reader`` to each raw resource; a malformed one is reported in ``skipped``, never
    raised. With a ``budget``, stops (silently: the caller reports it) once the budget is spent."""
    for raw in raws:
        if budget is not None and budget.tick():
            return
        try:
            fact = reader(raw)
        except _Skip as skip:
            skipped.append(Skipped(str(raw.get("resourceType")), str(raw.get("id") or ""), skip.reason,
                                   unreadable=False))
            continue
        except _MALFORMED as exc:
            skipped.append(Skipped(str(raw.get("resourceType")), str(raw.get("id") or ""),
                                   f"malformed resource ({type(exc).__name__})"))
            continue
        if fact is not None:
            yield fact


def _flatten(values: Iterable[Any]) -> list[dict[str, Any]]:
    """Resources from prefetch values: Bundles are unpacked (entries), OperationOutcomes dropped."""
    out: list[dict[str, Any]] = []
    for value in values:
        if not isinstance(value, dict):
            continue
        if value.get("resourceType") == "Bundle":
            entries = value.get("entry")
            for entry in entries if isinstance(entries, list) else []:
                res = entry.get("resource") if isinstance(entry, dict) else None
                if not isinstance(res, dict):
                    continue
                rtype = res.get("resourceType")
                if rtype == "Bundle":
                    out.extend(_flatten([res]))
                elif rtype != "OperationOutcome":
                    out.append(res)   # the common case, without a call per entry
        elif value.get("resourceType") != "OperationOutcome":
            out.append(value)
    return out


def _entry_urls(values: Iterable[Any]) -> dict[tuple[str, str], str]:
    """``fullUrl`` of each medication record entry of the Bundles, by (type, id): an
    administration or dispense may name its order by it (D4 dose events 3)."""
    out: dict[tuple[str, str], str] = {}
    for value in values:
        if not isinstance(value, dict) or value.get("resourceType") != "Bundle":
            continue
        entries = value.get("entry")
        for entry in entries if isinstance(entries, list) else []:
            res = entry.get("resource") if isinstance(entry, dict) else None
            if not isinstance(res, dict):
                continue
            if res.get("resourceType") == "Bundle":
                out.update(_entry_urls([res]))
            elif res.get("resourceType") in MEDICATION_TYPES and isinstance(res.get("id"), str) \
                    and isinstance(entry.get("fullUrl"), str):
                out.setdefault((res["resourceType"], res["id"]), entry["fullUrl"])
    return out


def build_chart(resources: Iterable[Any], now: datetime, *, hook: str = "patient-view",
                draft_orders: Iterable[dict[str, Any]] = (), selections: Iterable[str] = (),
                unavailable: Mapping[str, str] | None = None, vs: ValueSets | None = None,
                partial: Mapping[str, str] | None = None, verdicts: VerdictCache | None = None, identity: PatientIdentity | None = None,
                medication_urls: Mapping[str, dict[str, Any]] | None = None,
                zone: tzinfo | None = None, future_skew_minutes: int = 5,
                dose_dedupe_days: int = 4, deadline: Callable[[], bool] | None = None) -> Chart:
    """Build the :class:`Chart` from FHIR resources (Bundles unpacked, de-duplicated by type+id).

    ``zone`` is the clock zone (``clock_time_zone``, §1.3 Clock, A3; None: UTC): today is the date
    of ``now`` there, and every record date is taken there. A recorded event later than ``now`` +
    ``future_skew_minutes`` (a date-only one: later than today) is ignored and reported in
    ``Chart.skipped`` as "dated in the future" (logged by the service, not here); an active
    order's planned date is exempt.

    ``draft_orders`` are the hook's own orders; the triggers are the selected ones on
    ``order-select`` and all of them on ``order-sign`` (RULES.md §1 "Hooks").
    ``identity``: the patient in context; every resource that is not that patient's is left out
    and counted in ``Chart.excluded`` (the service always passes it; None trusts the caller to
    have given one patient's data, as unit tests of single rules do). ``medication_urls``: the
    Medication entries of the request's Bundles by ``fullUrl`` (D3 resolution (b)).
    ``dose_dedupe_days``: the D4 de-duplication window (D10). ``partial``: resource type → why
    its records arrived only in part (kept on the chart for the rules that must say so).

    ``deadline``: the request budget (issue 11 §3; the caller's clock: True once spent), looked
    at every :data:`CHECK_EVERY` records. Once it is spent nothing more is read: the resource type
    being read and every later one are left out whole (a part of a type is never judged: the
    newest result or the latest dose may be in the unread part) and marked
    :data:`OUT_OF_TIME` in ``Chart.unavailable``, so their checks do not run and the data card
    names them. The Patient and the hook's own drafts are always read.
    """
    with clock_zone(zone) as tz:
        chart = _build_chart(resources, now, hook=hook, draft_orders=draft_orders,
                             selections=selections, unavailable=unavailable, vs=vs,
                             verdicts=verdicts, identity=identity, medication_urls=medication_urls,
                             zone=tz, future_skew_minutes=future_skew_minutes,
                             dose_dedupe_days=dose_dedupe_days, budget=_Budget(deadline))
    if partial:
        chart.partial = dict(partial)
    return chart


def _build_chart(resources: Iterable[Any], now: datetime, *, hook: str,
                 draft_orders: Iterable[dict[str, Any]], selections: Iterable[str],
                 unavailable: Mapping[str, str] | None, vs: ValueSets | None,
                 verdicts: VerdictCache | None, identity: PatientIdentity | None,
                 medication_urls: Mapping[str, dict[str, Any]] | None, zone: tzinfo,
                 future_skew_minutes: int, dose_dedupe_days: int, budget: _Budget) -> Chart:
    """:func:`build_chart` inside its clock zone."""
    vs = vs or default_value_sets()
    resources = list(resources)
    entry_urls = _entry_urls(resources)
    today = today_in(now, zone)

    def future(value: Any) -> bool:
        return is_future(value, now, today, future_skew_minutes, zone)

    def future_on(day: date, value: Any) -> bool:
        """:func:`future` of ``value`` whose date in the zone is ``day``: a date after today is in
        the future; one before today is before now, so (skew >= 0) never later than now + skew."""
        return day > today or ((day == today or future_skew_minutes < 0) and future(value))
    skipped: list[Skipped] = []
    excluded: dict[str, int] = {}
    seen: set[tuple[str, str]] = set()
    by_type: dict[str, list[dict[str, Any]]] = {}
    out_of_time: set[str] = set()
    for r in _flatten(resources):
        if budget.tick():   # what is not sorted yet may be of any type: none is known whole
            out_of_time = set(MEDICATION_TYPES) | {"Observation", "Condition", "Procedure"}
            if not by_type.get("Patient"):
                out_of_time.add("Patient")
            break
        rtype = r.get("resourceType")
        if not isinstance(rtype, str) or rtype not in READ_TYPES:
            continue
        if identity is not None:
            owner = identity.owner(r)
            if owner != "own":
                key = "other-patient" if owner == "other" else "no-patient"
                excluded[key] = excluded.get(key, 0) + 1
                continue
        rid = r.get("id")
        if isinstance(rid, str):
            if (rtype, rid) in seen:
                continue
            seen.add((rtype, rid))
        by_type.setdefault(rtype, []).append(r)

    drafts_raw = [d for d in draft_orders if isinstance(d, dict)
                  and (identity is None or identity.owner(d) != "other")]   # the request layer 400s those
    med_index = medication_index(by_type.get("Medication", []) + _flatten(drafts_raw), medication_urls)

    memo: dict = {}   # this request's element verdicts (projection.py): each distinct value once
    readings: dict = {}   # this request's code/drug readings (memo.py): each distinct content once

    def valid(raw: dict[str, Any], draft: bool = False, what: str = "",
              drug_class: str = "") -> dict[str, Any] | None:
        return _validate(raw, skipped, draft=draft, verdicts=verdicts, what=what, drug_class=drug_class,
                         memo=memo)

    patient_res = next(_read(by_type.get("Patient", [])[:1], valid, skipped), None)
    patient = clinical.to_patient(patient_res, today, zone)

    # the hook's own draft orders
    draft_ids: set[str] = set()
    unreadable_drafts: list[Drug] = []

    def draft(raw: dict[str, Any]) -> DraftOrder | None:
        if raw.get("resourceType") != "MedicationRequest":
            return None
        res = valid(raw, draft=True, what="the ordered medication")
        if res is None:
            drug = medications.classify(raw, vs, med_index, readings)   # defensive reader: raw is safe here
            trigger = hook == "order-sign" or (hook == "order-select"
                                               and f"MedicationRequest/{raw.get('id', '')}" in selected)
            if drug is not None and trigger and drug.drug_class in (DENOSUMAB, BISPHOSPHONATE):
                unreadable_drafts.append(drug)
            return None
        draft_ids.add(str(res.get("id")))
        drug = medications.classify(res, vs, med_index, readings)
        if drug is None:
            return None
        codings, texts = medications._reason(res)
        return DraftOrder(ref=f"MedicationRequest/{res.get('id', '')}", drug=drug,
                          dose_mg=medications.dose_mg_of(res), timing=medications.timing_of(res),
                          reason_codings=codings, reason_texts=texts, resource=res)

    selected = set(selections)
    drafts = list(_read(drafts_raw, draft, skipped))
    triggers = drafts if hook == "order-sign" else [d for d in drafts if d.ref in selected] \
        if hook == "order-select" else []

    def medication(raw: dict[str, Any]) -> MedicationRecord | None:
        rtype = raw["resourceType"]
        if _text(raw.get("status")) not in medications.COUNTING_STATUS[rtype]:
            return None
        if rtype == "MedicationRequest" and str(raw.get("id")) in draft_ids:
            return None  # the same order as a draft of this hook (re-sign, order-sign 1.1.0)
        drug = medications.classify(raw, vs, med_index, readings)
        if drug is None:
            return None
        res = valid(raw, what=drug.agent.replace("-", " "), drug_class=drug.drug_class)
        if res is None:
            return None
        rec = medications.to_record(res, drug)
        url = entry_urls.get((rtype, str(raw.get("id"))))
        if url is not None:
            rec = replace(rec, full_url=url)
        if rec.date is not None and (rtype != "MedicationRequest" or rec.status != "active") \
                and future_on(rec.date, medications.record_date(res)[0]):
            raise _Skip("dated in the future")   # an active order's date is a plan (exempt, A3)
        return rec

    def observation(raw: dict[str, Any]) -> tuple[date, str, str, dict[str, Any]] | None:
        """Cheap pre-read (status, code, date); validation waits until a rule reads the result."""
        if _text(raw.get("status")) not in labs.COUNTING_OBSERVATION_STATUS:
            return None
        concept = labs.observation_concept(raw, vs)
        if concept is None:
            return None
        value = labs.observation_when(raw)
        when = fhir_date(value, zone)            # labs.observation_date, its raw value kept
        if when is None:
            raise _Skip("no readable date")
        if future_on(when, value):
            raise _Skip("dated in the future")
        return when, concept[0], concept[1], raw

    def to_lab(pending: tuple[date, str, str, dict[str, Any]]) -> Lab | None:
        when, concept, code, raw = pending
        res = valid(raw, what=labs.CONCEPT_WORDS.get(concept, concept))
        return labs.to_lab(res, concept, code, when) if res is not None else None

    read_labs: dict[int, Lab | None] = {}

    def read_lab(pending: tuple[date, str, str, dict[str, Any]]) -> Lab | None:
        """Validate one pending result when it is first read (errors reported, never raised);
        once, though it may be filed under two concepts (a serum creatinine)."""
        key = id(pending[3])
        if key not in read_labs:
            read_labs[key] = next(_read([pending[3]], lambda _raw: to_lab(pending), skipped), None)
        return read_labs[key]

    def condition(raw: dict[str, Any]) -> ConditionFact | None:
        if not clinical.counts_as_condition(raw, vs, readings):   # cheap: only our value sets are validated
            return None
        if any(future(raw.get(k)) for k in ("onsetDateTime", "recordedDate")):
            raise _Skip("dated in the future")   # onset or recording later than now (A3)
        res = valid(raw, what="problem-list entry")
        return clinical.to_condition(res, vs, readings) if res is not None else None

    def procedure(raw: dict[str, Any]) -> ProcedureFact | None:
        fact = clinical.to_procedure(raw, vs, readings)
        if fact is None:
            return None
        period = raw.get("performedPeriod") if isinstance(raw.get("performedPeriod"), dict) else {}
        performed = raw.get("performedDateTime") or period.get("end") or period.get("start")
        if fact.date is not None and future_on(fact.date, performed):
            raise _Skip("dated in the future")
        res = valid(raw, what="procedure")
        return clinical.to_procedure(res, vs, readings) if res is not None else None

    def read_whole(rtype: str, reader: Any) -> list[Any]:
        """Every fact of one type, or none when the budget is spent before the last is read."""
        if rtype in out_of_time:
            return []
        facts = list(_read(by_type.get(rtype, []), reader, skipped, budget))
        if budget.spent:
            out_of_time.add(rtype)
            return []
        return facts

    records = [r for t in MEDICATION_TYPES for r in read_whole(t, medication)]
    pending: dict[str, list[tuple[date, str, str, dict[str, Any]]]] = {}
    for entry in read_whole("Observation", observation):
        pending.setdefault(entry[1], []).append(entry)
        if entry[1] == "creatinine" and "creatinine-serum" in vs.names_for(LOINC, entry[2]):
            pending.setdefault("creatinine-serum", []).append(entry)   # Cockcroft-Gault input (A10)
    results: dict[str, Sequence[Lab]] = {}
    for concept, entries in pending.items():
        entries.sort(key=lambda e: e[0].toordinal(), reverse=True)   # as by date; ints compare faster
        results[concept] = LazyLabs(entries, read_lab, date_of=lambda e: e[0])
    conditions = read_whole("Condition", condition)
    procedures = read_whole("Procedure", procedure)
    unavailable = dict(unavailable or {})
    if out_of_time:   # left out whole: what was read of them is not reported either
        unavailable.update({t: OUT_OF_TIME for t in sorted(out_of_time) if t not in unavailable})
        skipped[:] = [s for s in skipped if s.resource_type not in out_of_time]

    return Chart(now=now, today=today, zone=zone, egfr_rank=vs.egfr_preference() or None,
                 patient=patient, medications=tuple(records),
                 drafts=tuple(drafts), triggers=tuple(triggers), results=results,
                 conditions=tuple(conditions), procedures=tuple(procedures),
                 skipped=skipped, unavailable=unavailable, excluded=excluded,
                 unreadable_drafts=tuple(unreadable_drafts), dose_dedupe_days=dose_dedupe_days)


def months_since(d: date, today: date) -> int:
    """Whole calendar months from ``d`` to ``today`` (for summaries: "8 months ago")."""
    n = 0
    while add_months(d, n + 1) <= today:
        n += 1
    return n


__all__ = ["Chart", "CalciumLimits", "CHECK_EVERY", "OUT_OF_TIME", "build_chart", "months_since",
           "DENOSUMAB", "BISPHOSPHONATE", "fhir_date"]
