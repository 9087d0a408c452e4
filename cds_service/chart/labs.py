"""Laboratory results: reading Observations, the calcium to judge, the eGFR to use (RULES.md D5).

"The latest decides" (D5, A39): per concept the latest counting result dated within the rule's
window decides, usable or not (:func:`latest_day`); a date whose results are all unusable is
"present but not usable" and no older result stands in for it.

Evidence: RULES.md D5 and §8 items 1, 2, 18; Payne albumin correction; eGFR code preference
(CKD-EPI 2021 first, race-split pairs take the lower value).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from .dates import fhir_date
from .model import UNUSABLE_NO_VALUE, UNUSABLE_NOT_A_NUMBER, UNUSABLE_UNIT, Lab
from .units import convert, normalise_unit, round_half_up
from .valuesets import OBSERVATION_SETS, ValueSets

COUNTING_OBSERVATION_STATUS = frozenset({"final", "amended", "corrected", "preliminary"})


#: eGFR ranks (``preference`` of ``codes.json``, D5, A28) used when the chart is given none:
#: 1 CKD-EPI 2021 creatinine, 2 creatinine–cystatin C, 3 generic/race-free, 4 sex-specific
#: MDRD, 5 race-split pairs (of which the lower value is used).
EGFR_PREFERENCE: dict[str, int] = {
    "98979-8": 1, "98980-6": 2, "62238-1": 3, "77147-7": 3, "33914-3": 3, "69405-9": 3,
    "94677-2": 3, "50210-4": 3, "76633-7": 3, "50384-7": 3, "50044-7": 4, "70969-1": 4,
    "88293-6": 5, "88294-4": 5, "48642-3": 5, "48643-1": 5,
}
EGFR_SCHWARTZ = "50384-7"

#: Lab concepts (value-set names) in a clinician's words, for "could not be read" lines.
CONCEPT_WORDS: dict[str, str] = {
    "calcium-serum": "calcium", "calcium-corrected": "corrected calcium",
    "calcium-ionized": "ionized calcium", "albumin": "albumin", "egfr": "eGFR",
    "creatinine": "creatinine", "vitamin-d-25oh": "25-OH vitamin D", "magnesium": "magnesium",
    "phosphate": "phosphate", "pth-intact": "PTH", "pregnancy-test": "pregnancy test",
    "pregnancy-status": "pregnancy status", "body-weight": "body weight",
}


def observation_when(resource: Mapping[str, Any]) -> Any:
    """The raw date of an Observation: effective[x] (a period's start), else ``issued``."""
    period = resource.get("effectivePeriod") or {}
    return (resource.get("effectiveDateTime") or resource.get("effectiveInstant")
            or (period.get("start") if isinstance(period, dict) else None)
            or resource.get("issued"))


def observation_date(resource: Mapping[str, Any], zone: tzinfo | None = None) -> date | None:
    """The calendar date of an Observation in the clock zone (D1, A3)."""
    return fhir_date(observation_when(resource), zone)


def observation_concept(resource: Mapping[str, Any], vs: ValueSets) -> tuple[str, str] | None:
    """(value-set name, LOINC code) of an Observation in one of the lab/pregnancy sets."""
    code = resource.get("code")
    codings = code.get("coding") if isinstance(code, dict) else None
    for c in codings or []:
        if not isinstance(c, dict):
            continue
        found = vs.observation_set(c.get("system"), c.get("code"))
        if found is not None:
            return found
    return None


#: Concepts whose result may be qualitative (a coded value or an interpretation is a result).
QUALITATIVE: frozenset[str] = frozenset({"pregnancy-test", "pregnancy-status"})

_NUMBER_STRING = re.compile(r"^\s*(<=|>=|<|>)?\s*(\d+(?:\.\d+)?)\s*(.*?)\s*$")
#: value[x] forms that are never a number (D5: "a value that is not a number").
_OTHER_VALUES = ("valueBoolean", "valueRange", "valueRatio", "valueSampledData", "valueTime",
                 "valueDateTime", "valuePeriod")


def _concept_text(cc: Any) -> str | None:
    """What a CodeableConcept says as sent: its first coding display, else its text, else its code."""
    if not isinstance(cc, dict):
        return None
    for c in cc.get("coding") or []:
        if isinstance(c, dict) and isinstance(c.get("display"), str) and c["display"].strip():
            return c["display"]
    if isinstance(cc.get("text"), str) and cc["text"].strip():
        return cc["text"]
    for c in cc.get("coding") or []:
        if isinstance(c, dict) and c.get("code") is not None:
            return str(c["code"])
    return None


def to_lab(resource: Mapping[str, Any], concept: str, code: str, when: date) -> Lab:
    """A :class:`Lab` from a validated Observation: the value converted per D5, or the reason it
    is unusable (D5 "Which result", A39: ``dataAbsentReason`` or no value → ``no-value``; a text
    that does not parse or a coded value on a quantitative test → ``not-a-number``; no unit or
    one not recognised for the analyte → ``unit``)."""
    measured: Decimal | None = None
    unit: str | None = None
    comparator: str | None = None
    value: Decimal | None = None
    unusable: str | None = None
    sent: str | None = None
    codings: tuple[tuple[str, str], ...] = ()
    vcc = resource.get("valueCodeableConcept")
    if isinstance(vcc, dict):
        codings = tuple((str(c.get("system")), str(c.get("code")))
                        for c in vcc.get("coding") or [] if isinstance(c, dict))
    interp = tuple((str(c.get("system")), str(c.get("code")))
                   for i in resource.get("interpretation") or [] if isinstance(i, dict)
                   for c in i.get("coding") or [] if isinstance(c, dict))
    q = resource.get("valueQuantity")
    absent = resource.get("dataAbsentReason")
    if isinstance(absent, dict) and absent:
        unusable, sent = UNUSABLE_NO_VALUE, _concept_text(absent)
    elif isinstance(q, dict):
        unit = (q.get("code") if q.get("system") == "http://unitsofmeasure.org" and q.get("code")
                else q.get("unit") or q.get("code"))
        unit = str(unit) if unit is not None else None
        comparator = q.get("comparator")
        if q.get("value") is None:
            unusable = UNUSABLE_NO_VALUE
        else:
            try:
                measured = Decimal(str(q["value"]))
            except (InvalidOperation, ValueError):
                unusable, sent = UNUSABLE_NOT_A_NUMBER, str(q["value"])
    elif isinstance(resource.get("valueString"), str):
        m = _NUMBER_STRING.match(resource["valueString"])
        if m:
            comparator, measured, unit = m.group(1), Decimal(m.group(2)), m.group(3) or None
        else:
            unusable, sent = UNUSABLE_NOT_A_NUMBER, resource["valueString"]
    elif resource.get("valueInteger") is not None and not isinstance(resource["valueInteger"], bool):
        measured = Decimal(int(resource["valueInteger"]))   # an integer has no unit (D5: not used)
    elif isinstance(vcc, dict):
        if concept not in QUALITATIVE:
            unusable, sent = UNUSABLE_NOT_A_NUMBER, _concept_text(vcc) or ""
    elif any(resource.get(k) is not None for k in _OTHER_VALUES):
        other = next(k for k in _OTHER_VALUES if resource.get(k) is not None)
        raw = resource[other]
        unusable, sent = UNUSABLE_NOT_A_NUMBER, str(raw) if not isinstance(raw, dict) else other[5:]
    elif not (concept in QUALITATIVE and interp):
        unusable = UNUSABLE_NO_VALUE
    if measured is not None:
        value = convert(concept, measured, unit)
        if value is None and concept == "egfr" and unit is None and "valueString" in resource:
            value = round_half_up(measured, 0)  # eGFR ">60" as a string: the unit is implied
            # (a valueQuantity without a unit is not used, D5 "Value forms")
        if value is None and not (concept in QUALITATIVE and (codings or interp)):
            unusable, sent = UNUSABLE_UNIT, unit
    rr = None
    ranges = resource.get("referenceRange") or []
    if ranges and isinstance(ranges[0], dict):
        low, high = ranges[0].get("low") or {}, ranges[0].get("high") or {}
        if ranges[0].get("text"):
            rr = str(ranges[0]["text"])
        elif low.get("value") is not None or high.get("value") is not None:
            rr = f"{low.get('value', '')}–{high.get('value', '')} {low.get('unit') or high.get('unit') or ''}".strip()
    return Lab(concept=concept, code=code, date=when, status=str(resource.get("status")),
               value=value, unit=normalise_unit(unit, concept) if unit else None, measured=measured,
               measured_unit=unit, comparator=comparator, codings=codings,
               interpretation=interp, reference_range=rr, id=str(resource.get("id") or ""),
               unusable=unusable, sent=sent)


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
class LabDay:
    """The latest date in a window that holds a counting result, and that date's results
    (D5 "Which result — the latest decides", A39).

    ``usable`` decide; when there are results but none is usable the concept is "present but
    not usable" (:attr:`present_unusable`): no older result stands in for it.
    """

    date: date | None = None
    results: tuple[Lab, ...] = ()

    @property
    def usable(self) -> tuple[Lab, ...]:
        return tuple(l for l in self.results if l.usable)

    @property
    def unusable(self) -> tuple[Lab, ...]:
        return tuple(l for l in self.results if not l.usable)

    @property
    def present_unusable(self) -> bool:
        """Results on the latest date, none of them usable (A39: reported, "not checked")."""
        return bool(self.results) and not self.usable

    @property
    def decisive(self) -> Lab | None:
        """The first usable result of the latest date, or None."""
        return next((l for l in self.results if l.usable), None)


def latest_day(results: Iterable[Lab], today: date, days: int | None, *,
               before: date | None = None, usable_only: bool = False) -> LabDay:
    """The latest date within ``days`` before ``today`` (inclusive, D1; None: no limit) holding a
    result, with every result of that date, usable or not (D5, A39). ``results`` are newest first
    and read only down to that date: older ones stay unread (unvalidated).

    ``before`` ignores results dated on or after it and ``usable_only`` ignores unusable ones:
    together they find "the previous usable result" a card may name (D5: "not used: a newer
    result exists"); they never decide a rule.
    """
    found: list[Lab] = []

    def keep(d: date) -> bool:   # inside the window, and not older than the date found
        return (days is None or (today - d).days <= days) and (not found or d >= found[0].date)
    for lab in newest_while(results, keep):
        if (today - lab.date).days < 0 or (before is not None and lab.date >= before):
            continue
        if usable_only and not lab.usable:
            continue
        found.append(lab)
    return LabDay(found[0].date if found else None, tuple(found))


#: The three calcium forms of D5 "Calcium to judge".
CALCIUM_CONCEPTS: tuple[str, ...] = ("calcium-serum", "calcium-corrected", "calcium-ionized")


def latest_calcium_day(labs: Mapping[str, Sequence[Lab]], today: date, days: int | None, *,
                       before: date | None = None, usable_only: bool = False) -> LabDay:
    """The latest date within the window holding a calcium result of any of the three forms
    (total, lab-corrected, ionized), with every calcium result of that date (D5, A39). Each form
    is read only down to its own latest date."""
    per_form = [latest_day(labs.get(c, ()), today, days, before=before, usable_only=usable_only)
                for c in CALCIUM_CONCEPTS]
    newest = max((d.date for d in per_form if d.date is not None), default=None)
    return LabDay(newest, tuple(l for d in per_form if d.date == newest for l in d.results))


@dataclass(frozen=True)
class CalciumJudgement:
    """The calcium value a hypocalcemia rule judges (D5 "Calcium to judge").

    ``kind`` is ``ionized``, ``lab-corrected``, ``albumin-corrected`` or ``measured``.
    ``value`` is mg/dL for total/corrected, mmol/L for ionized. ``albumin_unusable`` is the
    latest albumin within the pairing window when it could not be used (A39: no correction,
    the measured value is judged).
    """

    kind: str
    value: Decimal
    unit: str
    lab: Lab
    albumin: Lab | None
    low: bool
    severe: bool
    albumin_unusable: Lab | None = None

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

    def albumin_note(self, escape: Callable[[str], str] = lambda s: s) -> str | None:
        """"Not corrected for albumin: …" when the latest albumin was unusable (A39), else None."""
        if self.albumin_unusable is None:
            return None
        return f"Not corrected for albumin: {self.albumin_unusable.unusable_text(escape=escape)}"


def judge_calcium_day(day: LabDay, albumin: Sequence[Lab], low_mg_dl: Decimal,
                      severe_mg_dl: Decimal, ionized_low: Decimal, ionized_severe: Decimal,
                      albumin_reference: Decimal, albumin_pairing_days: int) -> CalciumJudgement | None:
    """D5 steps 1–4 among the usable calcium results of one date (A39): an ionized one first,
    else a lab-corrected one (judged as a total), else the total one, corrected with the latest
    albumin within ``albumin_pairing_days`` of it when that albumin is usable and below
    ``albumin_reference``. None when no result of the date is usable."""
    usable = day.usable
    if not usable:
        return None

    def first(concept: str) -> Lab | None:
        return next((l for l in usable if l.concept == concept), None)

    ionized, corrected, lab = first("calcium-ionized"), first("calcium-corrected"), first("calcium-serum")
    if ionized is not None:
        assert ionized.value is not None
        return CalciumJudgement("ionized", ionized.value, "mmol/L", ionized, None,
                                low=_below(ionized, ionized_low), severe=_below(ionized, ionized_severe))
    if corrected is not None:
        assert corrected.value is not None
        return CalciumJudgement("lab-corrected", corrected.value, "mg/dL", corrected, None,
                                low=_below(corrected, low_mg_dl), severe=_below(corrected, severe_mg_dl))
    assert lab is not None and lab.value is not None
    # the latest albumin dated within the pairing days either side of the calcium (A39: it decides)
    pairing = latest_day(albumin, lab.date + timedelta(days=albumin_pairing_days), 2 * albumin_pairing_days)
    alb = pairing.decisive
    if alb is not None and alb.value is not None and alb.value < albumin_reference \
            and lab.comparator is None:
        value = round_half_up(lab.value + Decimal("0.8") * (albumin_reference - alb.value), 1)
        return CalciumJudgement("albumin-corrected", value, "mg/dL", lab, alb,
                                low=value < low_mg_dl, severe=value < severe_mg_dl)
    return CalciumJudgement("measured", lab.value, "mg/dL", lab, None,
                            low=_below(lab, low_mg_dl), severe=_below(lab, severe_mg_dl),
                            albumin_unusable=pairing.results[0] if pairing.present_unusable else None)


def judge_calcium(labs: Mapping[str, Sequence[Lab]], today: date, window_days: int | None,
                  low_mg_dl: Decimal, severe_mg_dl: Decimal, ionized_low: Decimal,
                  ionized_severe: Decimal, albumin_reference: Decimal,
                  albumin_pairing_days: int, *, before: date | None = None) -> CalciumJudgement | None:
    """Judge calcium per D5 (A39): the latest date in ``window_days`` holding a calcium result of
    any form decides; None when there is none or none of that date is usable (then nothing older
    is judged). ``before``: judge instead the newest date before it that has a usable calcium
    (the "previous result" a card names, never a decision)."""
    day = latest_calcium_day(labs, today, window_days, before=before, usable_only=before is not None)
    return judge_calcium_day(day, labs.get("albumin", ()), low_mg_dl, severe_mg_dl, ionized_low,
                             ionized_severe, albumin_reference, albumin_pairing_days)


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
    """The usable results of the latest date within ``days`` (``results`` newest first): all that
    :func:`select_egfr` compares. A39: the latest date decides, so when none of its results is
    usable the answer is empty, and older results are never read (validated)."""
    return list(latest_day(results, today, days).usable)


def select_egfr(results: Iterable[Lab], pediatric: bool,
                preference: Mapping[str, int] | None = None) -> Lab | None:
    """The eGFR to use among usable results, by date then code rank (D5, A28): the newest date;
    a Schwartz result first for a patient under 18; else the best ``preference`` rank of
    ``codes.json`` (a code without a rank comes last). Several results of the best rank: the
    lower value (the race-split pairs of rank 5 by the catalog; other ties by the cautious
    reading), a comparator ">" counting as its bound."""
    usable = [l for l in results if l.usable]
    if not usable:
        return None
    ranks = EGFR_PREFERENCE if preference is None else preference
    newest = max(l.date for l in usable)
    same_day = [l for l in usable if l.date == newest]
    if pediatric:
        schwartz = [l for l in same_day if l.code == EGFR_SCHWARTZ]
        if schwartz:
            return schwartz[0]
    worst = max(ranks.values(), default=0) + 1
    best = min(ranks.get(l.code, worst) for l in same_day)
    tied = [l for l in same_day if ranks.get(l.code, worst) == best]
    return min(tied, key=lambda l: l.value if l.value is not None else Decimal(0))


# ---- Cockcroft-Gault creatinine clearance (D5 "Kidney function for an IV bisphosphonate", A10) --

#: Why a CrCl could not be computed (A10, A39); the eGFR is judged instead.
CRCL_NO_CREATININE = "no serum creatinine"
CRCL_NO_WEIGHT = "no body weight"
CRCL_CREATININE_UNUSABLE = "creatinine not usable"
CRCL_WEIGHT_UNUSABLE = "weight not usable"
CRCL_AGE_UNKNOWN = "age unknown"
CRCL_SEX_UNKNOWN = "sex unknown"


@dataclass(frozen=True)
class CreatinineClearance:
    """The Cockcroft-Gault CrCl with actual body weight (mL/min, never per 1.73 m²; A10, A35),
    or why it is not computable (``reason``). ``creatinine`` and ``weight`` are the latest
    results in their windows (usable or not, A39); ``value`` is None when not computable."""

    value: int | None
    creatinine: Lab | None
    weight: Lab | None
    age: int | None
    sex: str | None
    reason: str | None = None

    @property
    def computable(self) -> bool:
        return self.value is not None

    @property
    def date(self) -> date | None:
        """The date of the creatinine (the input that goes stale first)."""
        return self.creatinine.date if self.creatinine is not None else None


def cockcroft_gault(age: int, sex: str, weight_kg: Decimal, creatinine_mg_dl: Decimal) -> int:
    """``(140 − age) × weight ÷ (72 × creatinine)``, × 0.85 if female, rounded half-up (D5)."""
    value = Decimal(140 - age) * weight_kg / (Decimal(72) * creatinine_mg_dl)
    if sex == "female":
        value *= Decimal("0.85")
    return int(round_half_up(value, 0))


def creatinine_clearance(creatinine: LabDay, weight: LabDay, age: int | None,
                         sex: str | None) -> CreatinineClearance:
    """CrCl from the latest serum creatinine and the latest body weight of their windows (D5,
    A10, A39): each must be usable (a number, a recognised unit, no comparator, above zero),
    and age and sex known; else not computable, with the reason."""
    cr, wt = creatinine.results[0] if creatinine.results else None, \
        weight.results[0] if weight.results else None
    cr_use, wt_use = creatinine.decisive, weight.decisive

    def none(reason: str) -> CreatinineClearance:
        return CreatinineClearance(None, cr_use or cr, wt_use or wt, age, sex, reason)
    if cr is None:
        return none(CRCL_NO_CREATININE)
    if cr_use is None or cr_use.value is None or cr_use.comparator is not None or cr_use.value <= 0:
        return none(CRCL_CREATININE_UNUSABLE)
    if wt is None:
        return none(CRCL_NO_WEIGHT)
    if wt_use is None or wt_use.value is None or wt_use.comparator is not None or wt_use.value <= 0:
        return none(CRCL_WEIGHT_UNUSABLE)
    if age is None or age >= 140:
        return none(CRCL_AGE_UNKNOWN)
    if sex not in ("female", "male"):
        return none(CRCL_SEX_UNKNOWN)
    return CreatinineClearance(cockcroft_gault(age, sex, wt_use.value, cr_use.value), cr_use, wt_use,
                               age, sex)
