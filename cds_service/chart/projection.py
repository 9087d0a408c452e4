"""Validate and keep only the elements the chart reads (issue 11 §2, approved by the product owner).

Each resource is *projected*: the elements listed in :data:`READ_ELEMENTS` for its type are
validated one by one with the ``fhir.resources.R4B`` datatype of that element (the field's own
annotation on the R4B model class), and the projection holds those elements only. So:

* an error in an element the chart does not read (``issued`` beside an ``effectiveDateTime``, an
  unknown element, a malformed ``referenceRange``) never loses the resource;
* an error in an element the chart reads makes the resource *unreadable*, and the reason names
  the element (``invalid Observation.valueQuantity``) — the caller reports it to the clinician;
* readers can never read an element that was not validated: it is not in the projection.

Display-only elements (:data:`OPTIONAL_ELEMENTS`) are dropped when invalid instead.

One request repeats the same element values many times (every dose of a drug has the same
``medicationCodeableConcept``, ``subject`` and dosage; every calcium the same ``code``): a
per-request ``memo`` keeps each distinct value's verdict, keyed by its ``repr`` (faithful for
decoded JSON: strings, numbers, booleans and ``nan`` all print apart), so each is
validated once (the same validator on the same content gives the same verdict).
Pure: no I/O. Known client deviations are repaired first (:mod:`.normalize`, IOP-1).
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any, MutableMapping

from fhir.resources.R4B import get_fhir_model_class
from pydantic import TypeAdapter, ValidationError

from .normalize import normalise_resource

_MED = ("medicationCodeableConcept", "medicationReference", "contained")
#: Elements the chart and the rules read, per resource type (RULES.md D2–D8), besides ``id``.
READ_ELEMENTS: dict[str, tuple[str, ...]] = {
    "MedicationRequest": ("status", "intent", "subject", "authoredOn", "dosageInstruction",
                          "dispenseRequest", "statusReason", "note", "reasonCode",
                          "reasonReference") + _MED,
    "MedicationAdministration": ("status", "subject", "effectiveDateTime", "effectivePeriod",
                                 "dosage", "request", "statusReason", "note", "reasonCode",
                                 "reasonReference") + _MED,
    "MedicationDispense": ("status", "subject", "whenHandedOver", "whenPrepared", "daysSupply",
                           "quantity", "authorizingPrescription", "dosageInstruction",
                           "statusReasonCodeableConcept", "note") + _MED,
    "MedicationStatement": ("status", "subject", "effectiveDateTime", "effectivePeriod", "dosage",
                            "statusReason", "note", "reasonCode", "reasonReference") + _MED,
    "Observation": ("status", "code", "subject", "effectiveDateTime", "effectiveInstant",
                    "effectivePeriod", "issued", "valueQuantity", "valueString",
                    "valueCodeableConcept", "valueInteger", "valueBoolean", "dataAbsentReason",
                    "interpretation", "referenceRange"),
    "Condition": ("clinicalStatus", "verificationStatus", "code", "subject", "onsetDateTime",
                  "onsetPeriod", "onsetAge", "onsetString", "abatementDateTime", "abatementPeriod",
                  "abatementAge", "abatementString", "abatementRange",
                  "recordedDate", "category"),
    "Procedure": ("status", "code", "subject", "performedDateTime", "performedPeriod",
                  "performedString", "performedAge"),
    "Patient": ("birthDate", "gender", "deceasedBoolean", "deceasedDateTime", "identifier"),
    "Medication": ("code", "form", "ingredient", "status"),
}
_MEDX = ("medicationCodeableConcept", "medicationReference")
#: Elements FHIR R4 requires (1..1) among those read, as groups of alternatives (choice types);
#: a record without one is unreadable. ``subject`` is judged by :mod:`.identity` instead.
REQUIRED_ELEMENTS: dict[str, tuple[tuple[str, ...], ...]] = {
    "MedicationRequest": (("status",), ("intent",), _MEDX),
    "MedicationAdministration": (("status",), _MEDX, ("effectiveDateTime", "effectivePeriod")),
    "MedicationDispense": (("status",), _MEDX),
    "MedicationStatement": (("status",), _MEDX),
    "Observation": (("status",), ("code",)),
    "Procedure": (("status",),),
}
#: Elements shown to the clinician but never used to decide: dropped (not fatal) when invalid.
OPTIONAL_ELEMENTS: dict[str, frozenset[str]] = {
    "Observation": frozenset({"referenceRange"}),
    "Patient": frozenset({"identifier"}),
}
#: ``Observation.issued`` is read only when no ``effective[x]`` gives the date (labs.observation_date).
_EFFECTIVE = ("effectiveDateTime", "effectiveInstant", "effectivePeriod")


@lru_cache(maxsize=None)
def _adapter(resource_type: str, element: str) -> TypeAdapter[Any]:
    """A validator for one element: the R4B field's own annotation (its datatype classes)."""
    field = get_fhir_model_class(resource_type).model_fields[element]
    return TypeAdapter(field.annotation)


def _why(resource_type: str, element: str, exc: ValidationError) -> str:
    """``invalid Type.element[.path]: message`` — never the input value (it may be patient data)."""
    first = exc.errors()[0] if exc.errors() else {}
    loc = ".".join(str(p) for p in first.get("loc", ()) if not str(p).startswith("function-"))
    msg = str(first.get("msg") or "not valid").split("[", 1)[0].strip()
    return f"invalid {resource_type}.{element}{'.' + loc if loc else ''}: {msg}"


def _contained(fixed: dict[str, Any], rtype: str, memo: "Memo | None") -> tuple[list[dict[str, Any]] | None, str, tuple[str, ...]]:
    """Contained Medications, each projected (others are not read); reason when one is invalid."""
    value = fixed.get("contained")
    if not isinstance(value, list):
        return None, f"invalid {rtype}.contained: not a list", ()
    out: list[dict[str, Any]] = []
    for item in value:
        if isinstance(item, dict) and item.get("resourceType") == "Medication":
            med, why, _ = project(item, memo=memo)
            if med is None:
                return None, f"invalid {rtype}.contained Medication: {why.split(': ', 1)[-1]}", ()
            out.append(med)
    return out, "", ()


Memo = MutableMapping[tuple[str, str, str], str]


def _check(rtype: str, name: str, value: Any, memo: Memo | None) -> str:
    """"" when ``value`` is a valid ``rtype.name`` (its R4B datatype), else the reason."""
    key = None
    if memo is not None:
        try:   # repr of decoded JSON is faithful: "1" vs 1 vs 1.0 vs True, nan kept (json.dumps is 2.5x slower)
            key = (rtype, name, repr(value))
        except RecursionError:
            key = None
        if key is not None and key in memo:
            return memo[key]
    try:
        _adapter(rtype, name).validate_python(value)
        why = ""
    except ValidationError as exc:
        why = _why(rtype, name, exc)
    except (TypeError, ValueError, RecursionError):
        why = f"invalid {rtype}.{name}: malformed"
    if key is not None:
        memo[key] = why   # type: ignore[index]
    return why


def project(resource: dict[str, Any], *, draft: bool = False,
            memo: Memo | None = None) -> tuple[dict[str, Any] | None, str, tuple[str, ...]]:
    """``(projection, "", dropped)`` when every read element validates (``dropped``: invalid
    display-only elements left out), else ``(None, reason, ())``. The input is never modified.

    ``draft`` marks an order of the hook's own ``draftOrders`` (IOP-1 repairs, see normalize);
    ``memo``: verdicts of element values already seen in this request (see the module doc)."""
    rtype = str(resource.get("resourceType"))
    elements = READ_ELEMENTS.get(rtype)
    if elements is None:
        return None, f"{rtype} is not a resource type the service reads", ()
    try:
        fixed = normalise_resource(resource, draft=draft)
    except RecursionError:
        return None, f"invalid {rtype}: nested too deeply", ()
    out: dict[str, Any] = {"resourceType": rtype}
    rid = fixed.get("id")
    if rid is not None:
        try:
            _adapter(rtype, "id").validate_python(rid)
        except ValidationError as exc:
            return None, _why(rtype, "id", exc), ()
        out["id"] = rid
    for group in REQUIRED_ELEMENTS.get(rtype, ()):
        if all(fixed.get(name) is None for name in group):
            return None, f"invalid {rtype}: {' or '.join(group)} is required", ()
    optional = OPTIONAL_ELEMENTS.get(rtype, frozenset())
    dropped: list[str] = []
    for name in elements:
        if name not in fixed or fixed[name] is None:
            continue
        if name == "issued" and any(fixed.get(e) is not None for e in _EFFECTIVE):
            continue   # not read: effective[x] gives the date
        if name == "contained":
            meds, why, _ = _contained(fixed, rtype, memo)
            if meds is None:
                return None, why, ()
            if meds:
                out["contained"] = meds
            continue
        why = _check(rtype, name, fixed[name], memo)
        if why:
            if name in optional:
                dropped.append(name)
                continue
            return None, why, ()
        out[name] = fixed[name]
    return out, "", tuple(dropped)


def prepare() -> int:
    """Build every element validator now (start-up, before gunicorn forks): the first use of an
    R4B datatype costs milliseconds that a worker's first request would otherwise pay."""
    for rtype, elements in READ_ELEMENTS.items():
        _adapter(rtype, "id")
        for name in elements:
            if name != "contained":
                _adapter(rtype, name)
    return _adapter.cache_info().currsize


def reproject(resource: dict[str, Any], dropped: tuple[str, ...], *, draft: bool = False) -> dict[str, Any]:
    """The projection of a resource already known to be readable (a remembered verdict): the same
    elements as :func:`project` keeps, without validating them again."""
    rtype = str(resource.get("resourceType"))
    fixed = normalise_resource(resource, draft=draft)
    out: dict[str, Any] = {"resourceType": rtype}
    if fixed.get("id") is not None:
        out["id"] = fixed["id"]
    has_effective = any(fixed.get(e) is not None for e in _EFFECTIVE)
    for name in READ_ELEMENTS.get(rtype, ()):
        value = fixed.get(name)
        if value is None or name in dropped or (name == "issued" and has_effective):
            continue
        if name == "contained":
            meds = [reproject(c, ()) for c in value
                    if isinstance(c, dict) and c.get("resourceType") == "Medication"]
            if meds:
                out["contained"] = meds
            continue
        out[name] = value
    return out


__all__ = ["OPTIONAL_ELEMENTS", "READ_ELEMENTS", "REQUIRED_ELEMENTS", "prepare", "project", "reproject"]
