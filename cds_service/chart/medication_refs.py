"""Which Medication a ``medicationReference`` names (RULES.md D3 "Resolving medicationReference").

In order: (a) a contained Medication (``#id``, resolved by the reader itself); (b) a Medication of
``context.draftOrders`` or of any prefetch Bundle, matched by ``Medication/{id}`` (relative, or an
absolute URL ending in it) or by the Bundle entry's ``fullUrl``; (c) a Medication read from the
FHIR server, when one is allowed: :func:`unresolved_references` names the reads (c) needs.
Pure: no I/O.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

#: The medication record types that can carry a ``medicationReference``.
MEDICATION_RECORD_TYPES = frozenset({"MedicationRequest", "MedicationAdministration",
                                     "MedicationStatement", "MedicationDispense"})
_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


def medication_index(resources: Iterable[Any], urls: Mapping[str, dict] | None = None) -> dict[str, dict]:
    """Medications by ``Medication/{id}`` and by ``fullUrl`` (``urls``: fullUrl -> Medication)."""
    index: dict[str, dict] = {}
    for res in resources:
        if isinstance(res, dict) and res.get("resourceType") == "Medication" and isinstance(res.get("id"), str):
            index[f"Medication/{res['id']}"] = res
    for url, res in (urls or {}).items():
        if isinstance(res, dict) and res.get("resourceType") == "Medication":
            index[url] = res
    return index


def resolve(reference: str, index: Mapping[str, dict]) -> dict | None:
    """The Medication a (non-contained) reference names in ``index``, or None."""
    ref = reference.split("/_history")[0]
    return index.get(reference) or index.get(ref) or index.get("/".join(ref.rsplit("/", 2)[-2:]))


def unresolved_references(records: Iterable[Any], index: Mapping[str, dict]) -> list[str]:
    """``Medication/{id}`` reads that step (c) needs: references of medication records that neither
    a contained Medication nor ``index`` resolves, relative or absolute (the caller keeps to its
    FHIR base), each once, in first-seen order."""
    out: dict[str, None] = {}
    for res in records:
        if not isinstance(res, dict) or res.get("resourceType") not in MEDICATION_RECORD_TYPES:
            continue
        ref = res.get("medicationReference")
        target = ref.get("reference") if isinstance(ref, dict) else None
        if not isinstance(target, str) or not target or target.startswith("#"):
            continue
        if resolve(target, index) is not None:
            continue
        parts = target.split("/_history")[0].rsplit("/", 2)
        if len(parts) >= 2 and parts[-2] == "Medication" and _ID.match(parts[-1]):
            out[target.split("/_history")[0]] = None
    return list(out)


__all__ = ["MEDICATION_RECORD_TYPES", "medication_index", "resolve", "unresolved_references"]
