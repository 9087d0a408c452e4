"""Laboratory results: reading Observations, the calcium to judge, the eGFR to use (RULES.md D5).

Evidence: RULES.md D5 and §8 items 1, 2, 18; Payne albumin correction; eGFR code preference
(CKD-EPI 2021 first, race-split pairs take the lower value).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from .dates import fhir_date
from .model import Lab
from .units import convert, normalise_unit, round_half_up
from .valuesets import OBSERVATION_SETS, ValueSets

COUNTING_OBSERVATION_STATUS = frozenset({"final", "amended", "corrected", "preliminary"})

_COMPARATOR_STRING = re.compile(r"^\s*(<=|>=|<|>)?\s*(\d+(?:\.\d+)?)\s*$")

#: eGFR codes in order of preference on one date (D5).
EGFR_PREFERENCE: tuple[str, ...] = ("98979-8", "98980-6", "62238-1", "77147-7", "33914-3",
                                    "69405-9", "94677-2", "50210-4", "76633-7")
EGFR_RACE_SPLIT: frozenset[str] = frozenset({"88293-6", "88294-4", "48642-3", "48643-1",
                                            "50044-7", "70969-1"})
EGFR_SCHWARTZ = "50384-7"

#: Lab concepts (value-set names) in a clinician's words, for "could not be read" lines.
CONCEPT_WORDS: dict[str, str] = {
    "calcium-serum": "calcium", "calcium-corrected": "corrected calcium",
    "calcium-ionized": "ionized calcium", "albumin": "albumin", "egfr": "eGFR",
    "creatinine": "creatinine", "vitamin-d-25oh": "25-OH vitamin D", "magnesium": "magnesium",
    "phosphate": "phosphate", "pth-intact": "PTH", "pregnancy-test": "pregnancy test",
    "pregnancy-status": "pregnancy status", "body-weight": "body weight",
}


def observation_date(resource: Mapping[str, Any]) -> date | None:
    period = resource.get("effectivePeriod") or {}
    return fhir_date(resource.get("effectiveDateTime") or resource.get("effectiveInstant")
                     or (period.get("start") if isinstance(period, dict) else None)
                     or resource.get("issued"))


def observation_concept(resource: Mapping[str, Any], vs: ValueSets) -> tuple[str, str] | None:
    """(value-set name, LOINC code) of an Observation in one of the lab/pregnancy sets."""
    code = resource.get("code")
    codings = code.get("coding") if isinstance(code, dict) else None
    for c in codings or []:
        if not isinstance(c, dict):
            continue
        for name in vs.names_for(c.get("system"), c.get("code")):
            if name in OBSERVATION_SETS:
                return name, str(c.get("code"))
    return None


def to_lab(resource: Mapping[str, Any], concept: str, code: str, when: date) -> Lab:
    """A :class:`Lab` from a validated Observation; the value converted per D5, or None."""
    measured: Decimal | None = None
    unit: str | None = None
    comparator: str | None = None
    from_string = False
    q = resource.get("valueQuantity")
    if isinstance(q, dict) and q.get("value") is not None:
        try:
            measured = Decimal(str(q["value"]))
        except (InvalidOperation, ValueError):
            measured = None
        unit = q.get("code") if q.get("system") == "http://unitsofmeasure.org" and q.get("code") else q.get("unit") or q.get("code")
        comparator = q.get("comparator")
    elif isinstance(resource.get("valueString"), str):
        m = _COMPARATOR_STRING.match(resource["valueString"])
        if m:
            comparator, measured = m.group(1), Decimal(m.group(2))
            unit = None
            from_string = True
    value = convert(concept, measured, unit) if measured is not None else None
    if value is None and from_string and measured is not None and concept == "egfr":
        value = round_half_up(measured, 0)  # eGFR ">60" as a string: the unit is implied
        # (a valueQuantity without a unit is not used, D5 "Value forms")
    codings = ()
    vcc = resource.get("valueCodeableConcept")
    if isinstance(vcc, dict):
        codings = tuple((str(c.get("system")), str(c.get("code")))
                        for c in vcc.get("coding") or [] if isinstance(c, dict))
    interp = tuple((str(c.get("system")), str(c.get("code")))
                   for i in resource.get("interpretation") or [] if isinstance(i, dict)
                   for c in i.get("coding") or [] if isinstance(c, dict))
    rr = None
    ranges = resource.get("referenceRange") or []
    if ranges and isinstance(ranges[0], dict):
        low, high = ranges[0].get("low") or {}, ranges[0].get("high") or {}
        if ranges[0].get("text"):
            rr = str(ranges[0]["text"])
        elif low.get("value") is not None or high.get("value") is not None:
            rr = f"{low.get('value', '')}–{high.get('value', '')} {low.get('unit') or high.get('unit') or ''}".strip()
    return Lab(concept=concept, code=code, date=when, status=str(resource.get("status")),
               value=value, unit=normalise_unit(unit) if unit else None, measured=measured,
               measured_unit=unit, comparator=comparator, codings=codings,
               interpretation=interp, reference_range=rr, id=str(resource.get("id") or ""))


class LazyLabs(Sequence[Lab]):
    """Results of one concept, newest first, validated one by one only as far as they are read.

    ``pending`` is sorted newest first; ``read`` turns one pending entry into a :class:`Lab`
    (or None when the resource does not validate: it is then reported and left out);
    ``date_of`` gives a pending entry's date without reading it (see :meth:`newest_while`).
    """

    def __init__(self, pending: list[Any], read: Callable[[Any], Lab | None],
                 date_of: Callable[[Any], date] | None = None) -> None:
        self._pending = pending
        self._read = read
        self._date_of = date_of
        self._done: list[Lab] = []
        self._next = 0

    def _read_one(self) -> bool:
        """Read the next pending entry; True if it gave a result."""
        entry = self._pending[self._next]
        self._next += 1
        lab = self._read(entry)
        if lab is not None:
            self._done.append(lab)
            return True
        return False

    def _advance(self) -> bool:
        while self._next < len(self._pending):
            if self._read_one():
                return True
        return False

    def newest_while(self, keep: Callable[[date], bool]) -> Iterator[Lab]:
        """Results newest first while ``keep(date)`` holds; the first entry failing it is judged by
        its date alone, so it is not read (validated)."""
        i = 0
        while True:
            if i < len(self._done):
                lab = self._done[i]
                if not keep(lab.date):
                    return
                yield lab
                i += 1
            elif self._next < len(self._pending):
                entry = self._pending[self._next]
                if self._date_of is not None and not keep(self._date_of(entry)):
                    return
                self._read_one()
            else:
                return

    def __iter__(self) -> Iterator[Lab]:
        i = 0
        while i < len(self._done) or self._advance():
            yield self._done[i]
            i += 1

    def __len__(self) -> int:
        while self._advance():
            pass
        return len(self._done)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice) or index < 0:
            len(self)
            return self._done[index]
        while index >= len(self._done) and self._advance():
            pass
        return self._done[index]

    def __bool__(self) -> bool:
        return bool(self._done) or self._advance()


def newest_while(results: Iterable[Lab], keep: Callable[[date], bool]) -> Iterator[Lab]:
    """``results`` (newest first) while ``keep(date)`` holds; a :class:`LazyLabs` does not even
    read the first result that fails it."""
    if isinstance(results, LazyLabs):
        yield from results.newest_while(keep)
        return
    for lab in results:
        if not keep(lab.date):
            return
        yield lab


def within(results: Iterable[Lab], today: date, days: int) -> Iterator[Lab]:
    """Results dated within ``days`` before ``today`` (inclusive, D1): ``results`` are newest
    first, so nothing older is read (or validated)."""
    for lab in newest_while(results, lambda d: (today - d).days <= days):
        if (today - lab.date).days >= 0:
            yield lab


@dataclass(frozen=True)
class CalciumJudgement:
    """The calcium value a hypocalcemia rule judges (D5 "Calcium to judge").

    ``kind`` is ``ionized``, ``lab-corrected``, ``albumin-corrected`` or ``measured``.
    ``value`` is mg/dL for total/corrected, mmol/L for ionized.
    """

    kind: str
    value: Decimal
    unit: str
    lab: Lab
    albumin: Lab | None
    low: bool
    severe: bool

    @property
    def date(self) -> date:
        return self.lab.date

    def describe(self) -> str:
        """Human text: measured value and unit, the value used, whether corrected."""
        measured = self.lab.describe()
        if self.kind == "ionized":
            return f"ionized calcium {self.value:f} mmol/L (measured {measured})"
        if self.kind == "albumin-corrected" and self.albumin is not None:
            return (f"albumin-corrected calcium {self.value:f} mg/dL (measured {measured}, "
                    f"albumin {self.albumin.value:f} g/dL on {self.albumin.date.isoformat()})")
        if self.kind == "lab-corrected":
            return f"corrected calcium {self.value:f} mg/dL (lab-reported, {measured})"
        return f"calcium {self.value:f} mg/dL (measured {measured})"


def judge_calcium(labs: Mapping[str, Sequence[Lab]], today: date, window_days: int,
                  low_mg_dl: Decimal, severe_mg_dl: Decimal, ionized_low: Decimal,
                  ionized_severe: Decimal, albumin_reference: Decimal,
                  albumin_pairing_days: int) -> CalciumJudgement | None:
    """Judge calcium per D5 steps 1–4 from usable results within ``window_days``; None if none."""
    def newest(concept: str) -> Lab | None:   # stops at the first usable one: older ones stay unread
        return next((l for l in within(labs.get(concept, ()), today, window_days) if l.usable), None)

    latest_total = newest("calcium-serum")
    latest_corrected = newest("calcium-corrected")
    latest_ionized = newest("calcium-ionized")
    latest_total_like = max([l for l in (latest_total, latest_corrected) if l], key=lambda l: l.date, default=None)
    if latest_ionized and (latest_total_like is None or latest_ionized.date >= latest_total_like.date):
        lab = latest_ionized
        v = lab.value
        assert v is not None
        return CalciumJudgement("ionized", v, "mmol/L", lab, None,
                                low=_below(lab, ionized_low), severe=_below(lab, ionized_severe))
    if latest_corrected and (latest_total is None or latest_corrected.date >= latest_total.date):
        lab = latest_corrected
        assert lab.value is not None
        return CalciumJudgement("lab-corrected", lab.value, "mg/dL", lab, None,
                                low=_below(lab, low_mg_dl), severe=_below(lab, severe_mg_dl))
    if latest_total is None:
        return None
    lab = latest_total
    assert lab.value is not None
    albumin = None
    # newest first: stop (unread) once older than the pairing window
    for a in newest_while(labs.get("albumin", ()), lambda d: (d - lab.date).days >= -albumin_pairing_days):
        gap = (a.date - lab.date).days
        if a.usable and gap <= albumin_pairing_days:
            albumin = a
            break
    if albumin is not None and albumin.value is not None and albumin.value < albumin_reference \
            and lab.comparator is None:
        value = round_half_up(lab.value + Decimal("0.8") * (albumin_reference - albumin.value), 1)
        return CalciumJudgement("albumin-corrected", value, "mg/dL", lab, albumin,
                                low=value < low_mg_dl, severe=value < severe_mg_dl)
    return CalciumJudgement("measured", lab.value, "mg/dL", lab, None,
                            low=_below(lab, low_mg_dl), severe=_below(lab, severe_mg_dl))


def _below(lab: Lab, limit: Decimal) -> bool:
    """Strictly below ``limit``, honouring a comparator (D5 "Comparators")."""
    v = lab.value
    if v is None:
        return False
    if lab.comparator in (">", ">="):
        return False  # a lower bound never proves "below"
    if lab.comparator == "<":
        return v <= limit  # "<15" is below 15
    return v < limit


def below(lab: Lab, limit: Decimal | int) -> bool:
    """Public form of the comparator-aware "strictly below" test (eGFR, vitamin D…)."""
    return _below(lab, Decimal(limit))


def newest_usable_day(results: Iterable[Lab], today: date, days: int) -> list[Lab]:
    """The usable results of the newest day within ``days`` that has one (``results`` newest
    first): all that :func:`select_egfr` compares, so older results are never read (validated)."""
    out: list[Lab] = []

    def keep(d: date) -> bool:   # inside the window, and not older than the day found
        return (today - d).days <= days and (not out or d >= out[0].date)
    for lab in newest_while(results, keep):
        if lab.usable and (today - lab.date).days >= 0:
            out.append(lab)
    return out


def select_egfr(results: Iterable[Lab], pediatric: bool) -> Lab | None:
    """The eGFR to use among usable results (newest first in ``results``), by date then code (D5)."""
    usable = [l for l in results if l.usable]
    if not usable:
        return None
    newest = max(l.date for l in usable)
    same_day = [l for l in usable if l.date == newest]
    if pediatric:
        schwartz = [l for l in same_day if l.code == EGFR_SCHWARTZ]
        if schwartz:
            return schwartz[0]
    for code in EGFR_PREFERENCE:
        for l in same_day:
            if l.code == code:
                return l
    split = [l for l in same_day if l.code in EGFR_RACE_SPLIT]
    if split:
        return min(split, key=lambda l: l.value or Decimal(0))
    return same_day[0]
