"""Recognising antiresorptives and their companions in medication records (RULES.md D2, D3, D4).

Classification is by RxNorm code first (every coding, from ``medicationCodeableConcept`` or a
resolved ``medicationReference``), then by the text patterns of D3; the regimen of denosumab
(60 vs 120 mg) and zoledronic acid (5 vs 4 mg) by code, then by dose, then by text.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from datetime import date
from typing import Any, Iterable, Mapping

from .dates import fhir_date
from .medication_refs import resolve
from .memo import Memo, remembered
from .model import (BISPHOSPHONATE, CALCIMIMETIC, DENOSUMAB, SUPPLEMENT, DoseEvent, Drug,
                    MedicationRecord, Timing, reference_key)
from .valuesets import ValueSets

#: Statuses that count per resource type (D2). MedicationRequest ``draft`` only for the hook's own.
COUNTING_STATUS: dict[str, frozenset[str]] = {
    "MedicationAdministration": frozenset({"completed", "in-progress"}),
    "MedicationDispense": frozenset({"completed"}),
    "MedicationStatement": frozenset({"active", "completed", "stopped"}),
    "MedicationRequest": frozenset({"active", "completed", "stopped", "on-hold"}),
}

_BP_AGENT_SETS = (("zoledronic-acid", "zoledronic-acid"), ("alendronate", "alendronate"),
                  ("risedronate", "risedronate"), ("ibandronate-oral", "ibandronate"),
                  ("ibandronate-iv", "ibandronate"), ("pamidronate", "pamidronate"))
_BP_TEXT_AGENTS = ("zoledronic-acid", "alendronate", "risedronate", "ibandronate", "pamidronate",
                   "etidronate")
_AGENT_NAMES = {"zoledronic-acid": "zoledronic acid"}
_IV_ROUTE_CODES = {"47625008", "C38276"}
_ORAL_ROUTE_CODES = {"26643006", "C38288"}
_SC_ROUTE_CODES = {"34206005", "C38299"}
_MG_TEXT = re.compile(r"(\d+(?:\.\d+)?)\s*mg\b", re.IGNORECASE)
_DISCONTINUED = re.compile(r"discontinu|stopp|cease|\bstop\b|halt", re.IGNORECASE)


def _codings(concept: Any) -> list[Mapping[str, Any]]:
    if not isinstance(concept, dict):
        return []
    return [c for c in concept.get("coding") or [] if isinstance(c, dict)]


def _texts(concept: Any) -> list[str]:
    if not isinstance(concept, dict):
        return []
    out = [concept["text"]] if isinstance(concept.get("text"), str) else []
    out += [c["display"] for c in _codings(concept) if isinstance(c.get("display"), str)]
    return out


def medication_concept(resource: Mapping[str, Any],
                       medications: Mapping[str, Mapping[str, Any]]) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The medication CodeableConcept of a record and the Medication resource it refers to, if any.

    ``medicationReference`` is resolved to a contained Medication (``#id``) or to one found in
    the request or read from the FHIR server (``medications``: by ``Medication/id`` and by
    ``fullUrl``, :mod:`.medication_refs`). ``Reference.display`` is drug text too (D3, A9)."""
    concept = resource.get("medicationCodeableConcept")
    if isinstance(concept, dict):
        return concept, None
    ref = resource.get("medicationReference")
    if not isinstance(ref, dict):
        return None, None
    target = ref.get("reference")
    med: Mapping[str, Any] | None = None
    if isinstance(target, str):
        if target.startswith("#"):
            for c in resource.get("contained") or []:
                if isinstance(c, dict) and c.get("resourceType") == "Medication" and c.get("id") == target[1:]:
                    med = c
        else:
            med = resolve(target, medications)
    code = med.get("code") if isinstance(med, dict) else None
    display = ref.get("display") if isinstance(ref.get("display"), str) else None
    if isinstance(code, dict):
        if display:
            codings = [c for c in code.get("coding") or [] if isinstance(c, dict)]
            code = {**code, "coding": codings + [{"display": display}]}
        return code, dict(med)  # type: ignore[arg-type]
    if display:
        return {"text": display}, dict(med) if isinstance(med, dict) else None
    return None, dict(med) if isinstance(med, dict) else None


def dosage_of(resource: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The first dosage of a record (``dosageInstruction``, ``dosage`` list, or Administration ``dosage``)."""
    for name in ("dosageInstruction", "dosage"):
        value = resource.get(name)
        if isinstance(value, list) and value and isinstance(value[0], dict):
            return value[0]
        if isinstance(value, dict):
            return value
    return None


def _quantity_mg(q: Any) -> Decimal | None:
    """A dose quantity in mg (mL of a 60/70 mg/mL product are read by the caller)."""
    if not isinstance(q, dict) or q.get("value") is None:
        return None
    try:
        value = Decimal(str(q["value"]))
    except (InvalidOperation, ValueError):
        return None
    unit = str(q.get("code") or q.get("unit") or "").strip().lower()
    if unit in ("mg", "milligram", "milligrams"):
        return value
    if unit in ("g", "gram"):
        return value * 1000
    if unit in ("ml", "milliliter") and value in (Decimal(1), Decimal("1.0")):
        return None  # volume alone: strength decided by the product code or text
    return None


def dose_mg_of(resource: Mapping[str, Any]) -> Decimal | None:
    """Dose in mg from the dosage (``doseAndRate[0].doseQuantity`` or Administration ``dose``)."""
    dosage = dosage_of(resource)
    if dosage is None:
        return None
    dose = None
    dar = dosage.get("doseAndRate")
    if isinstance(dar, list) and dar and isinstance(dar[0], dict):
        dose = _quantity_mg(dar[0].get("doseQuantity"))
    if dose is None:
        dose = _quantity_mg(dosage.get("dose"))
    if dose is None and isinstance(dosage.get("text"), str):
        m = _MG_TEXT.search(dosage["text"])
        if m:
            dose = Decimal(m.group(1))
    return dose


def timing_of(resource: Mapping[str, Any]) -> Timing | None:
    dosage = dosage_of(resource)
    timing = dosage.get("timing") if dosage else None
    repeat = timing.get("repeat") if isinstance(timing, dict) else None
    if not isinstance(repeat, dict) or repeat.get("period") is None or not repeat.get("periodUnit"):
        return None
    try:
        period = Decimal(str(repeat["period"])) / Decimal(str(repeat.get("frequency") or 1))
    except (InvalidOperation, ValueError, ZeroDivisionError):
        return None
    return Timing(period=period, unit=str(repeat["periodUnit"]))


def _route(resource: Mapping[str, Any], med: Mapping[str, Any] | None) -> str | None:
    dosage = dosage_of(resource)
    concepts = []
    if dosage:
        concepts.append(dosage.get("route"))
    if med:
        concepts.append(med.get("form"))
    for concept in concepts:
        codes = {str(c.get("code")) for c in _codings(concept)}
        text = " ".join(_texts(concept)).lower()
        if codes & _IV_ROUTE_CODES or re.search(r"intraven|\biv\b|infusion", text):
            return "iv"
        if codes & _ORAL_ROUTE_CODES or re.search(r"\boral|by mouth|\bpo\b|tablet", text):
            return "oral"
        if codes & _SC_ROUTE_CODES or re.search(r"subcut|\bsc\b|\bsq\b", text):
            return "sc"
    return None


def classify(resource: Mapping[str, Any], vs: ValueSets,
             medications: Mapping[str, Mapping[str, Any]], memo: Memo | None = None) -> Drug | None:
    """The :class:`Drug` a medication record is about, or None when it is none of ours (D3).

    It reads the medication (concept and resolved Medication) and the first dosage only, so
    ``memo`` (this request's readings, :mod:`.memo`) answers each distinct such content once."""
    concept, med = medication_concept(resource, medications)
    if concept is None:
        return None
    return remembered(memo, "classify", (concept, med, dosage_of(resource)),
                      lambda: _classify(resource, concept, med, vs))


def _classify(resource: Mapping[str, Any], concept: dict[str, Any], med: Mapping[str, Any] | None,
              vs: ValueSets) -> Drug | None:
    """:func:`classify` once the medication is known: ``concept`` (``med`` resolved); of
    ``resource`` only the first dosage is read (:func:`dosage_of`)."""
    names = vs.names_for_codings(_codings(concept))
    texts = _texts(concept)
    by_text = False
    if not names & {"denosumab-any", "bisphosphonate-any", "calcimimetic",
                    "calcium-vitamin-d-supplement", "calcium-supplement", "vitamin-d-supplement",
                    "active-vitamin-d", "zoledronic-acid", "pamidronate"}:
        names = vs.text_matches(texts)
        by_text = bool(names)
    if not names:
        return None
    display = (texts[0] if texts else "")[:40]
    dose = dose_mg_of(resource)
    dosage = dosage_of(resource)
    dose_text = " ".join(texts + ([dosage["text"]] if dosage and isinstance(dosage.get("text"), str) else []))
    route = _route(resource, med)

    if names & {"denosumab-any", "denosumab"}:
        regimen = _denosumab_regimen(names, dose, dose_text, resource, vs.brand_regimens(texts))
        return Drug(DENOSUMAB, "denosumab", display or "denosumab", regimen, "sc", by_text)
    for vs_name, agent in _BP_AGENT_SETS:
        if vs_name in names:
            return _bisphosphonate(agent, names, dose, dose_text, route, display, by_text)
    if "bisphosphonate-any" in names or "bisphosphonate-oral" in names or "bisphosphonate-iv" in names:
        # an ingredient without a value set of its own (etidronate): named from the record's text
        # or from the value-set display of its code (D3 patterns), else a generic bisphosphonate
        coded = {(str(c.get("system")), str(c.get("code"))) for c in _codings(concept)}
        vs_displays = [k.display for k in vs.codes("bisphosphonate-any") if (k.system, k.code) in coded]
        found = vs.text_matches(texts + vs_displays)
        agent = next((a for a in _BP_TEXT_AGENTS if a in found), "bisphosphonate")
        return _bisphosphonate(agent, names, dose, dose_text, route, display, by_text)
    for agent in _BP_TEXT_AGENTS:
        if agent in names:
            return _bisphosphonate(agent, names, dose, dose_text, route, display, by_text)
    if "calcimimetic" in names:
        return Drug(CALCIMIMETIC, "calcimimetic", display or "calcimimetic", None, route, by_text)
    calcium = bool(names & {"calcium-supplement"})
    vitamin_d = bool(names & {"vitamin-d-supplement", "active-vitamin-d"})
    if names & {"calcium-vitamin-d-supplement"} and not (calcium or vitamin_d):
        calcium = True
    if calcium or vitamin_d:
        agent = "calcium" if calcium else "vitamin-d"
        return Drug(SUPPLEMENT, agent, display or agent, None, route, by_text,
                    calcium=calcium, vitamin_d=vitamin_d)
    return None


def _denosumab_regimen(names: frozenset[str], dose: Decimal | None, text: str,
                       resource: Mapping[str, Any], brands: frozenset[str] = frozenset()) -> str | None:
    """D3 "Strength / regimen of denosumab": code, then brand (A8: a brand of one set alone
    settles it; brands of both sets go on), then dose, then volume, then text. Nonproprietary
    suffixes (``-bbdz``) are shared by both strengths and never decide."""
    if "denosumab-60mg" in names:
        return "60mg"
    if "denosumab-120mg" in names:
        return "120mg"
    if len(brands) == 1:
        return next(iter(brands))
    if dose is not None:
        if dose == 60:
            return "60mg"
        if dose == 120:
            return "120mg"
    dosage = dosage_of(resource)
    if dosage:
        dar = dosage.get("doseAndRate")
        q = dar[0].get("doseQuantity") if isinstance(dar, list) and dar and isinstance(dar[0], dict) else dosage.get("dose")
        if isinstance(q, dict) and str(q.get("code") or q.get("unit") or "").lower() == "ml":
            try:
                vol = Decimal(str(q.get("value")))
            except (InvalidOperation, ValueError):
                vol = None
            if vol == 1 and re.search(r"60\s*mg/ml", text, re.I):
                return "60mg"
            if vol == Decimal("1.7") and re.search(r"70\s*mg/ml", text, re.I):
                return "120mg"
    if re.search(r"\b120\s?mg", text, re.I) or re.search(r"70\s*mg/ml", text, re.I):
        return "120mg"
    if re.search(r"\b60\s?mg", text, re.I):
        return "60mg"
    return None


def _bisphosphonate(agent: str, names: frozenset[str], dose: Decimal | None, text: str,
                    route: str | None, display: str, by_text: bool) -> Drug:
    regimen = None
    if agent == "zoledronic-acid":
        route = "iv"
        if "zoledronic-acid-5mg" in names:
            regimen = "5mg"
        elif "zoledronic-acid-4mg" in names:
            regimen = "4mg"
        elif dose is not None:
            regimen = "5mg" if dose == 5 else ("4mg" if dose <= 4 else None)
        elif re.search(r"reclast|aclasta|\b5\s?mg", text, re.I):
            regimen = "5mg"
        elif re.search(r"zometa|\b4\s?mg", text, re.I):
            regimen = "4mg"
    elif agent == "pamidronate":
        route = "iv"
    elif agent == "ibandronate":
        if "ibandronate-iv" in names:
            route = "iv"
        elif "ibandronate-oral" in names:
            route = "oral"
        elif route is None and dose is not None:
            route = "iv" if dose <= 3 else "oral"
        elif route is None and re.search(r"3\s?mg/3\s?ml|injection|syringe", text, re.I):
            route = "iv"
    elif agent in ("alendronate", "risedronate", "etidronate"):
        route = "oral"
    elif "bisphosphonate-iv" in names:
        route = "iv"
    elif "bisphosphonate-oral" in names:
        route = "oral"
    name = display or _AGENT_NAMES.get(agent, agent)
    return Drug(BISPHOSPHONATE, agent, name, regimen, route, by_text)


def record_date(resource: Mapping[str, Any]) -> tuple[Any, Any]:
    """The D2/D4 date (and period end) of a medication record, as raw FHIR strings."""
    rtype = resource.get("resourceType")
    if rtype == "MedicationAdministration":
        period = resource.get("effectivePeriod") or {}
        return resource.get("effectiveDateTime") or period.get("start"), period.get("end")
    if rtype == "MedicationDispense":
        return resource.get("whenHandedOver") or resource.get("whenPrepared"), None
    if rtype == "MedicationStatement":
        period = resource.get("effectivePeriod") or {}
        return resource.get("effectiveDateTime") or period.get("start"), period.get("end")
    if rtype == "MedicationRequest":
        return resource.get("authoredOn"), None
    return None, None


def _reason(resource: Mapping[str, Any]) -> tuple[tuple[tuple[str, str], ...], tuple[str, ...]]:
    codings: list[tuple[str, str]] = []
    texts: list[str] = []
    for concept in resource.get("reasonCode") or []:
        codings += [(str(c.get("system")), str(c.get("code"))) for c in _codings(concept)]
        texts += _texts(concept)
    for ref in resource.get("reasonReference") or []:
        if isinstance(ref, dict) and isinstance(ref.get("display"), str):
            texts.append(ref["display"])
    return tuple(codings), tuple(texts)


def _discontinued(resource: Mapping[str, Any]) -> bool:
    texts = _texts(resource.get("statusReason"))
    for sr in resource.get("statusReason") or [] if isinstance(resource.get("statusReason"), list) else []:
        texts += _texts(sr)
    texts += [n.get("text", "") for n in resource.get("note") or [] if isinstance(n, dict)]
    return any(_DISCONTINUED.search(t or "") for t in texts)


#: Days per UCUM unit of a duration (D4 "Order end"; another unit is unreadable).
_DURATION_DAYS = {"d": 1, "wk": 7, "mo": 30, "a": 365}


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        n = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return n if n.is_finite() else None


def _duration_days(q: Any) -> Decimal | None:
    """A Duration/Quantity in days by its UCUM unit (``code``, else ``unit``), or None."""
    if not isinstance(q, dict):
        return None
    value = _number(q.get("value"))
    per = _DURATION_DAYS.get(str(q.get("code") or q.get("unit") or "").strip())
    return value * per if value is not None and per is not None else None


def _days_per_fill(resource: Mapping[str, Any], dispense: Mapping[str, Any]) -> Decimal | None:
    """D4 "Order end" (c): ``expectedSupplyDuration``, else ``quantity`` ÷ (doses per day ×
    units per dose), rounded down; None when unreadable."""
    expected = _duration_days(dispense.get("expectedSupplyDuration"))
    if expected is not None:
        return expected
    quantity = dispense.get("quantity")
    amount = _number(quantity.get("value")) if isinstance(quantity, dict) else None
    if amount is None:
        return None
    dosage = dosage_of(resource)
    timing = dosage.get("timing") if dosage else None
    repeat = timing.get("repeat") if isinstance(timing, dict) else None
    if not isinstance(repeat, dict):
        return None
    frequency = _number(repeat.get("frequency")) if repeat.get("frequency") is not None else Decimal(1)
    period = _duration_days({"value": repeat.get("period"), "code": repeat.get("periodUnit")})
    if frequency is None or period is None or period <= 0 or frequency <= 0:
        return None
    per_dose = Decimal(1)
    dar = dosage.get("doseAndRate") if dosage else None
    dq = dar[0].get("doseQuantity") if isinstance(dar, list) and dar and isinstance(dar[0], dict) else None
    if isinstance(dq, dict) and isinstance(quantity, dict):
        same = any(dq.get(k) and dq.get(k) == quantity.get(k) for k in ("code", "unit"))
        value = _number(dq.get("value"))
        if same and value is not None and value > 0:
            per_dose = value
    return (amount * period / (frequency * per_dose)).to_integral_value(rounding="ROUND_FLOOR")


def implied_supply_days(resource: Mapping[str, Any]) -> int | None:
    """Days of supply a MedicationRequest implies (D4 "Order end" (c), A38): days per fill ×
    (1 + ``numberOfRepeatsAllowed``); None when it cannot be read. ``initialFill`` is not read."""
    dispense = resource.get("dispenseRequest")
    if not isinstance(dispense, dict):
        return None
    try:
        per_fill = _days_per_fill(resource, dispense)
    except (InvalidOperation, ArithmeticError):
        return None
    if per_fill is None or per_fill < 0:
        return None
    repeats = dispense.get("numberOfRepeatsAllowed")
    repeats = repeats if isinstance(repeats, int) and not isinstance(repeats, bool) and repeats >= 0 else 0
    return int(per_fill * (1 + repeats))


def planned_date_of(resource: Mapping[str, Any]) -> date | None:
    """The planned date of an order (D4 "Planned follow-on order", A2), before the ``authoredOn``
    fallback: ``dispenseRequest.validityPeriod.start``, else the earliest of every
    ``dosageInstruction[].timing.event[]`` and ``timing.repeat.boundsPeriod.start``."""
    dispense = resource.get("dispenseRequest")
    validity = dispense.get("validityPeriod") if isinstance(dispense, dict) else None
    start = fhir_date(validity.get("start")) if isinstance(validity, dict) else None
    if start is not None:
        return start
    found: list[date] = []
    dosages = resource.get("dosageInstruction")
    for dosage in dosages if isinstance(dosages, list) else []:
        timing = dosage.get("timing") if isinstance(dosage, dict) else None
        if not isinstance(timing, dict):
            continue
        for event in timing.get("event") or [] if isinstance(timing.get("event"), list) else []:
            d = fhir_date(event)
            if d is not None:
                found.append(d)
        repeat = timing.get("repeat")
        bounds = repeat.get("boundsPeriod") if isinstance(repeat, dict) else None
        d = fhir_date(bounds.get("start")) if isinstance(bounds, dict) else None
        if d is not None:
            found.append(d)
    return min(found, default=None)


def _validity_end(resource: Mapping[str, Any]) -> date | None:
    dispense = resource.get("dispenseRequest")
    validity = dispense.get("validityPeriod") if isinstance(dispense, dict) else None
    return fhir_date(validity.get("end")) if isinstance(validity, dict) else None


def _request_refs(resource: Mapping[str, Any]) -> tuple[str, ...]:
    """The orders a record names (D4 dose events 3): Administration ``request``, Dispense
    ``authorizingPrescription``."""
    rtype = resource.get("resourceType")
    if rtype == "MedicationAdministration":
        refs = [resource.get("request")]
    elif rtype == "MedicationDispense":
        value = resource.get("authorizingPrescription")
        refs = value if isinstance(value, list) else []
    else:
        return ()
    return tuple(r["reference"] for r in refs
                 if isinstance(r, dict) and isinstance(r.get("reference"), str) and r["reference"])


def to_record(resource: Mapping[str, Any], drug: Drug) -> MedicationRecord:
    """A :class:`MedicationRecord` from a validated, normalised resource."""
    start, end = record_date(resource)
    days_supply = None
    ds = resource.get("daysSupply")
    if isinstance(ds, dict) and isinstance(ds.get("value"), (int, float)):
        days_supply = int(ds["value"])
    codings, texts = _reason(resource)
    request = resource.get("resourceType") == "MedicationRequest"
    intent = resource.get("intent")
    return MedicationRecord(
        resource_type=str(resource.get("resourceType")), id=str(resource.get("id") or ""),
        status=str(resource.get("status") or ""), drug=drug, date=fhir_date(start),
        end=fhir_date(end), dose_mg=dose_mg_of(resource), timing=timing_of(resource),
        days_supply=days_supply, discontinued=_discontinued(resource),
        reason_codings=codings, reason_texts=texts,
        intent=intent if isinstance(intent, str) else None,
        request_refs=_request_refs(resource),
        planned=planned_date_of(resource) if request else None,
        validity_end=_validity_end(resource) if request else None,
        supply_days=implied_supply_days(resource) if request else None)


_CONFIDENCE = {"MedicationAdministration": 4, "MedicationDispense": 3, "MedicationStatement": 2,
               "MedicationRequest": 1}


def dose_class(drug: Drug) -> str:
    """The D4 "drug class" of dose history: denosumab (every product and strength), else the
    bisphosphonate ingredient (zoledronic acid, ibandronate, pamidronate, alendronate …)."""
    return drug.drug_class if drug.drug_class != BISPHOSPHONATE else f"{BISPHOSPHONATE}:{drug.agent}"


def is_injectable(drug: Drug) -> bool:
    """D4 injectables: denosumab, zoledronic acid, ibandronate IV, pamidronate."""
    return drug.drug_class == DENOSUMAB or (drug.drug_class == BISPHOSPHONATE and (
        drug.route == "iv" or drug.agent in ("zoledronic-acid", "pamidronate")))


def is_dose_record(r: MedicationRecord) -> bool:
    """A record that dates a dose (D2/D4): a completed/in-progress administration, a completed
    dispense, an active/completed statement, or a completed request (lowest confidence)."""
    return ((r.resource_type == "MedicationAdministration" and r.status in ("completed", "in-progress"))
            or (r.resource_type == "MedicationDispense" and r.status == "completed")
            or (r.resource_type == "MedicationStatement" and r.status in ("active", "completed"))
            or (r.resource_type == "MedicationRequest" and r.status == "completed"))


def linked_orders(records: Iterable[MedicationRecord]) -> set[int]:
    """Positions (in ``records``) of the MedicationRequests that a counting administration names in
    ``request`` or a counting dispense names in ``authorizingPrescription`` (D4 dose events 3,
    A11: the same dose as that record, never a second one)."""
    records = list(records)
    refs = {key for r in records if r.request_refs and is_dose_record(r)
            and r.resource_type in ("MedicationAdministration", "MedicationDispense")
            for ref in r.request_refs for key in (ref, reference_key(ref))}
    if not refs:
        return set()
    return {i for i, r in enumerate(records) if r.resource_type == "MedicationRequest"
            and refs.intersection(r.keys())}


def dose_records(records: Iterable[MedicationRecord], linked: Iterable[int] | None = None) -> list[MedicationRecord]:
    """The dated records that give dose events (D4 dose events 1–4), in input order: linked
    completed orders are left out (A11), and a statement of an injectable only when its drug
    class has no counting administration, dispense or completed order at any date (A1).
    ``linked``: :func:`linked_orders` of ``records`` when the caller has it already."""
    records = list(records)
    linked = linked_orders(records) if linked is None else set(linked)
    confirmed = {dose_class(r.drug) for r in records if r.date is not None and is_dose_record(r)
                 and r.resource_type != "MedicationStatement"}
    out = []
    for i, r in enumerate(records):
        if r.date is None or not is_dose_record(r) or i in linked:
            continue
        if r.resource_type == "MedicationStatement" and is_injectable(r.drug) \
                and dose_class(r.drug) in confirmed:
            continue   # reconciliation, not an injection date (A1)
        out.append(r)
    return out


def dose_events(records: list[MedicationRecord], dedupe_days: int = 4,
                dated: list[MedicationRecord] | None = None) -> list[DoseEvent]:
    """Dose events, oldest first, de-duplicated within ``dedupe_days`` per D4 drug class.

    From :func:`dose_records` (administrations, completed dispenses, statements as D4 allows,
    unlinked completed requests; ``dated``: those of ``records`` when the caller has them
    already). When several records fall within the window, the most confident one is kept.
    """
    raw = [DoseEvent(r.date, r.drug, r.resource_type,  # type: ignore[arg-type]
                     _CONFIDENCE[r.resource_type], r)
           for r in (dose_records(records) if dated is None else dated)]
    raw.sort(key=lambda e: (dose_class(e.drug), e.date, -e.confidence))
    out: list[DoseEvent] = []
    for e in raw:
        prev = out[-1] if out else None
        if prev is not None and dose_class(prev.drug) == dose_class(e.drug) \
                and (e.date - prev.date).days < dedupe_days:
            if e.confidence > prev.confidence:
                out[-1] = e
            continue
        out.append(e)
    out.sort(key=lambda e: (e.date, e.confidence))
    return out
