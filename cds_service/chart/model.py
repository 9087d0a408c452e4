"""The clinical facts a :class:`~cds_service.chart.chart.Chart` holds (RULES.md D2–D8).

Plain frozen dataclasses: rules read these, never raw FHIR JSON (DESIGN.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Callable

#: Drug classes of RULES.md D3.
DENOSUMAB = "denosumab"
BISPHOSPHONATE = "bisphosphonate"
CALCIMIMETIC = "calcimimetic"
SUPPLEMENT = "supplement"


@dataclass(frozen=True)
class Drug:
    """What a medication record is, per D3.

    ``agent``: denosumab, alendronate, risedronate, ibandronate, zoledronic-acid, pamidronate,
    etidronate, calcimimetic, calcium, vitamin-d. ``regimen``: ``60mg``/``120mg`` for denosumab,
    ``5mg``/``4mg`` for zoledronic acid, else None (unknown). ``route``: ``iv``, ``oral``,
    ``sc`` or None.
    """

    drug_class: str
    agent: str
    name: str
    regimen: str | None = None
    route: str | None = None
    by_text: bool = False
    calcium: bool = False
    vitamin_d: bool = False

    @property
    def is_iv_bisphosphonate(self) -> bool:
        return self.drug_class == BISPHOSPHONATE and self.route == "iv"

    @property
    def is_oral_bisphosphonate(self) -> bool:
        return self.drug_class == BISPHOSPHONATE and self.route == "oral"


@dataclass(frozen=True)
class Timing:
    """``timing.repeat`` of a dosage, reduced to a period in days (approximate, for schedules)."""

    period: Decimal
    unit: str

    @property
    def days(self) -> float:
        per = {"s": 1 / 86400, "min": 1 / 1440, "h": 1 / 24, "d": 1, "wk": 7, "mo": 30.44, "a": 365.25}
        return float(self.period) * per.get(self.unit, 1)

    def describe(self) -> str:
        names = {"d": "day", "wk": "week", "mo": "month", "a": "year", "h": "hour"}
        n = self.period.normalize()
        unit = names.get(self.unit, self.unit)
        return f"{unit}" if n == 1 else f"{n:f} {unit}s"  # :f — 30 days, not "3E+1 days"


@dataclass(frozen=True)
class MedicationRecord:
    """One MedicationRequest/Administration/Dispense/Statement about a classified drug (D2, D4)."""

    resource_type: str
    id: str
    status: str
    drug: Drug
    date: date | None            # dose/evidence date per D4 (authoredOn for requests)
    end: date | None = None      # statement period end / dispense supply end
    dose_mg: Decimal | None = None
    timing: Timing | None = None
    days_supply: int | None = None
    discontinued: bool = False   # statusReason/note of discontinuation
    reason_codings: tuple[tuple[str, str], ...] = ()
    reason_texts: tuple[str, ...] = ()
    intent: str | None = None    # MedicationRequest.intent (D4 planned follow-on order)
    #: the orders this record names: ``MedicationAdministration.request`` or
    #: ``MedicationDispense.authorizingPrescription`` references, as sent (D4, A11)
    request_refs: tuple[str, ...] = ()
    full_url: str | None = None  # the Bundle entry's ``fullUrl`` (references may name it, D4)
    #: MedicationRequest: planned date (``dispenseRequest.validityPeriod.start``, else the
    #: earliest ``timing.event`` / ``timing.repeat.boundsPeriod.start``; D4, A2), None if unread
    planned: date | None = None
    validity_end: date | None = None   # MedicationRequest ``dispenseRequest.validityPeriod.end``
    #: MedicationRequest: days of supply the order implies (D4 "Order end" (c), A38), or None
    supply_days: int | None = None

    @property
    def ref(self) -> str:
        return f"{self.resource_type}/{self.id}"

    def keys(self) -> tuple[str, ...]:
        """What a reference to this record may say, after :func:`reference_key`: ``Type/{id}``
        and the Bundle ``fullUrl`` (D4 dose events 3)."""
        return tuple(k for k in ((self.ref if self.id else ""), self.full_url or "") if k)

    def named_by(self, reference: str) -> bool:
        """``reference`` names this record: ``Type/{id}``, an absolute URL ending in it (a
        ``/_history`` version is ignored), or the record's Bundle ``fullUrl`` (D4 dose events 3)."""
        return isinstance(reference, str) and bool(reference) and (
            reference_key(reference) in self.keys() or reference in self.keys())


def reference_key(reference: str) -> str:
    """A reference reduced for matching (D4 dose events 3): ``Type/{id}`` for a relative or
    absolute URL (``/_history/n`` dropped), else the reference as sent (a ``urn:uuid`` fullUrl)."""
    ref = reference.split("/_history")[0]
    parts = ref.rsplit("/", 2)
    if len(parts) >= 2 and parts[-2][:1].isupper() and parts[-2].isalpha() and parts[-1]:
        return f"{parts[-2]}/{parts[-1]}"
    return reference


@dataclass(frozen=True)
class DoseEvent:
    """A dose given (or taken as given) on ``date`` (D4), after de-duplication."""

    date: date
    drug: Drug
    source: str          # resource type that gave the date
    confidence: int      # 4 administration, 3 dispense, 2 statement, 1 completed request
    record: MedicationRecord

    @property
    def low_confidence(self) -> bool:
        return self.confidence == 1


@dataclass(frozen=True)
class DraftOrder:
    """A draft MedicationRequest of the hook's context, classified (D3)."""

    ref: str                     # "MedicationRequest/id" as named in selections
    drug: Drug
    dose_mg: Decimal | None
    timing: Timing | None
    reason_codings: tuple[tuple[str, str], ...]
    reason_texts: tuple[str, ...]
    resource: dict[str, Any] = field(repr=False, compare=False, hash=False, default_factory=dict)

    @property
    def label(self) -> str:
        dose = f" {self.dose_mg.normalize():f} mg" if self.dose_mg is not None else ""  # 60, not 6E+1
        return f"{self.drug.name}{dose}"


#: Why a result is unusable (D5 "Which result", A39): no/unknown unit, no value, not a number.
UNUSABLE_UNIT = "unit"
UNUSABLE_NO_VALUE = "no-value"
UNUSABLE_NOT_A_NUMBER = "not-a-number"

#: The analyte as a card names it (D5 wording of an unusable result).
ANALYTE_WORDS: dict[str, str] = {
    "calcium-serum": "Calcium", "calcium-corrected": "Corrected calcium",
    "calcium-ionized": "Ionized calcium", "albumin": "Albumin",
    "vitamin-d-25oh": "25-OH vitamin D", "creatinine": "Creatinine",
    "creatinine-serum": "Creatinine", "egfr": "eGFR", "magnesium": "Magnesium",
    "phosphate": "Phosphate", "pth-intact": "PTH", "pregnancy-test": "Pregnancy test",
    "pregnancy-status": "Pregnancy status", "body-weight": "Body weight",
}

#: Display decimals of a value per analyte, in its canonical unit (§1.2 rule 6, A40); a value
#: sent with a unit that is not recognised is shown at this precision.
DISPLAY_PLACES: dict[str, int] = {
    "calcium-serum": 1, "calcium-corrected": 1, "calcium-ionized": 2, "albumin": 1,
    "vitamin-d-25oh": 0, "creatinine": 2, "creatinine-serum": 2, "egfr": 0, "magnesium": 1,
    "phosphate": 1, "pth-intact": 0, "pregnancy-test": 0, "body-weight": 1,
}


def _same(text: str) -> str:
    return text


@dataclass(frozen=True)
class Lab:
    """One usable-or-not laboratory result (D5).

    ``value`` is in the concept's canonical unit, rounded per D5, or None. ``unusable`` says why
    the result cannot be used (D5 "Which result", A39): ``unit`` (no unit, or one not recognised
    for the analyte), ``no-value`` (``dataAbsentReason`` or no ``value[x]``) or ``not-a-number``
    (a text that does not parse, a coded value on a quantitative test); None when usable.
    ``sent`` is what the record sent for it: the unit as sent (None: no unit), the
    ``dataAbsentReason`` display (else its code), or the text as sent. ``comparator`` is ``<``,
    ``<=``, ``>``, ``>=`` or None. A qualitative result (pregnancy test or status with a coded
    value or an interpretation) is usable with ``value`` None.
    """

    concept: str
    code: str
    date: date
    status: str
    value: Decimal | None
    unit: str | None
    measured: Decimal | None
    measured_unit: str | None
    comparator: str | None = None
    codings: tuple[tuple[str, str], ...] = ()          # valueCodeableConcept codings
    interpretation: tuple[tuple[str, str], ...] = ()
    reference_range: str | None = None
    id: str = ""
    unusable: str | None = None
    sent: str | None = None

    @property
    def usable(self) -> bool:
        return self.unusable is None

    def describe(self) -> str:
        if self.measured is None:
            return "result"
        comp = self.comparator or ""
        unit = self.measured_unit or ""
        if self.concept == "egfr" and self.unit is not None:
            unit = "mL/min/1.73 m²"   # any accepted eGFR spelling, plain mL/min included (A35)
        return f"{comp}{self.measured.normalize():f} {unit}".strip()

    def shown_value(self) -> str | None:
        """The measured value as sent, rounded to the analyte's display precision (§1.2 rule 6),
        with its comparator; None without a number."""
        if self.measured is None:
            return None
        from .units import display_places   # per analyte and unit sent (A40)
        places = display_places(self.concept, self.measured_unit)
        q = self.measured.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
        return f"{self.comparator or ''}{q:f}"

    def unusable_text(self, analyte: str | None = None,
                      escape: Callable[[str], str] = _same) -> str | None:
        """Why this result is not used, in D5's fixed wording (A39), or None when usable:

        ``{analyte} {value} on {date}: unit not recognised ("{unit as sent}")`` (``no unit``),
        ``{analyte} on {date}: no value ({dataAbsentReason display, else code})``,
        ``{analyte} on {date}: no numeric value ("{text as sent}")``. ``escape`` is applied to
        the record text (unit, reason, text as sent) before it is placed in markdown (§1.2 rule 4).
        """
        if self.unusable is None:
            return None
        name = analyte or ANALYTE_WORDS.get(self.concept, self.concept)
        when = self.date.isoformat()
        if self.unusable == UNUSABLE_UNIT:
            value = self.shown_value()
            what = f"{name} {value}" if value is not None else name
            unit = f'"{escape(self.sent)}"' if self.sent else "no unit"
            return f"{what} on {when}: unit not recognised ({unit})"
        if self.unusable == UNUSABLE_NO_VALUE:
            return f"{name} on {when}: no value" + (f" ({escape(self.sent)})" if self.sent else "")
        return f'{name} on {when}: no numeric value ("{escape(self.sent or "")}")'


@dataclass(frozen=True)
class ConditionFact:
    """A counting Condition (D2, D6)."""

    id: str
    concepts: frozenset[str]
    display: str
    active: bool
    suspected: bool
    onset: date | None
    recorded: date | None
    abated: date | None
    by_text: bool = False
    codes: tuple[tuple[str, str], ...] = ()

    @property
    def date(self) -> date | None:
        return self.onset or self.recorded

    @property
    def status_text(self) -> str:
        return ("active" if self.active else "resolved") + (" (suspected)" if self.suspected else "")


@dataclass(frozen=True)
class ProcedureFact:
    """A completed Procedure (D2, D7)."""

    id: str
    concepts: frozenset[str]
    display: str
    date: date | None


@dataclass(frozen=True)
class PatientFacts:
    """Patient facts (D1, D8): age is unknown (None) without a birth date."""

    age: int | None
    sex: str | None           # "female", "male" or None (unknown)
    birth_date: date | None = None
    #: D8 "Deceased" (A37): deceasedBoolean true, or a deceasedDateTime on or before today
    deceased: bool = False


@dataclass(frozen=True)
class Skipped:
    """A resource the chart could not use, and why (never a 500: reported, then ignored).

    ``what`` says in a clinician's words what it was, when the chart knew before reading it
    ("calcium", "denosumab"): ``unreadable`` ones (an element the chart reads is invalid) are
    reported in the data card; the others (dated in the future, RULES.md §1.3) are only logged."""

    resource_type: str
    id: str
    reason: str
    what: str = ""
    unreadable: bool = True
    drug_class: str = ""        # a medication record's class (D3), when it was classified
