"""Known deviations of real CDS clients, repaired before FHIR validation (checklist IOP-1).

The CDS Hooks sandbox sends draft MedicationRequests without ``intent`` and with ``category``
and ``reasonCode`` as single objects instead of lists; its ``draftOrders`` Bundle has no
``type``. Epic's sample MedicationRequest puts ``doseQuantity``/``rateQuantity`` directly in
``dosageInstruction`` (the STU3 shape): moved into ``doseAndRate`` so the order stays readable. DESIGN.md "Lessons from the field": normalise these, then validate.
"""

from __future__ import annotations

from typing import Any

#: Elements that R4 defines as lists but clients sometimes send as one object, per resource type.
_LIST_ELEMENTS: dict[str, tuple[str, ...]] = {
    "MedicationRequest": ("category", "reasonCode", "reasonReference", "dosageInstruction",
                          "identifier", "note", "basedOn", "insurance", "detectedIssue",
                          "supportingInformation", "instantiatesCanonical"),
    "MedicationAdministration": ("reasonCode", "reasonReference", "note", "identifier"),
    "MedicationDispense": ("dosageInstruction", "note", "identifier"),
    "MedicationStatement": ("reasonCode", "reasonReference", "dosage", "note", "identifier"),
    "Observation": ("category", "interpretation", "referenceRange", "note", "identifier"),
    "Condition": ("category", "identifier", "note"),
    "Procedure": ("reasonCode", "identifier", "note"),
    "ServiceRequest": ("category", "reasonCode", "identifier", "note"),
}


def normalise_resource(resource: dict[str, Any], *, draft: bool = False) -> dict[str, Any]:
    """A shallow-repaired copy of ``resource`` (the input is never modified).

    ``draft`` marks an order of the hook's own ``draftOrders``: a MedicationRequest there
    without ``intent`` or ``status`` gets ``intent: order`` / ``status: draft`` (IOP-1).
    """
    rtype = resource.get("resourceType")
    out = dict(resource)
    for name in _LIST_ELEMENTS.get(rtype, ()):  # type: ignore[arg-type]
        value = out.get(name)
        if isinstance(value, dict):
            out[name] = [value]
        elif value == [] or value is None:
            out.pop(name, None)
    for name in ("dosageInstruction", "dosage"):
        if isinstance(out.get(name), list):
            out[name] = [_dose_and_rate(d) for d in out[name]]
    if rtype == "MedicationRequest":
        if not out.get("intent"):
            out["intent"] = "order"
        if draft and not out.get("status"):
            out["status"] = "draft"
    if isinstance(out.get("contained"), list):
        out["contained"] = [normalise_resource(c) if isinstance(c, dict) else c
                            for c in out["contained"]]
    return out


def _dose_and_rate(dosage: Any) -> Any:
    """An STU3-shaped Dosage (``doseQuantity``/``doseRange``/``rateQuantity`` at its top) in the R4
    shape (inside ``doseAndRate``); anything else unchanged."""
    if not isinstance(dosage, dict) or "doseAndRate" in dosage:
        return dosage
    stu3 = {k: dosage[k] for k in ("doseQuantity", "doseRange", "rateQuantity", "rateRange", "rateRatio")
            if k in dosage}
    if not stu3:
        return dosage
    fixed = {k: v for k, v in dosage.items() if k not in stu3}
    fixed["doseAndRate"] = [stu3]
    return fixed
