"""Whose record is this? Matching every resource to the patient in context (issue 11, §1).

A card about the wrong patient is worse than none: a resource the chart reads must name the
context patient, or it is excluded and counted (never used, never silently dropped).

What names a patient, per resource type (FHIR R4):

* ``Patient``: its own ``id`` must equal ``context.patientId``.
* ``subject`` of MedicationRequest, MedicationAdministration, MedicationStatement, Condition and
  Procedure (1..1 in R4: a record without one is excluded as naming no patient);
* ``subject`` of Observation and MedicationDispense (0..1 in R4: a record without one is taken as
  the context patient's, as the server returned it for the patient's search).
* ``Medication`` names no patient (it describes a product): never matched.

A reference matches when it is ``Patient/{id}`` (a ``/_history/…`` version suffix allowed), the
absolute form under the request's ``fhirServer`` (any absolute ``…/Patient/{id}`` when the request
named no server), or a ``urn:uuid:``/``urn:oid:`` that the request's Bundles give as the
``fullUrl`` of the context Patient. Anything else (another id, another server, a ``Group``, a
contained ``#ref``, an identifier-only reference) is another patient's, or cannot be shown to be
this patient's: excluded either way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Literal

#: Resource types whose ``subject`` is optional (0..1) in FHIR R4.
SUBJECT_OPTIONAL = frozenset({"Observation", "MedicationDispense"})
#: Resource types whose ``subject`` is required (1..1) in FHIR R4.
SUBJECT_REQUIRED = frozenset({"MedicationRequest", "MedicationAdministration",
                              "MedicationStatement", "Condition", "Procedure"})
#: Types that carry no patient at all.
NO_PATIENT = frozenset({"Medication"})

Owner = Literal["own", "other", "none"]


def _base(url: str | None) -> str | None:
    """``url`` without trailing slashes, scheme and host lower-cased (None when not http(s))."""
    if not isinstance(url, str) or "://" not in url:
        return None
    scheme, _, rest = url.strip().partition("://")
    host, slash, path = rest.partition("/")
    if scheme.lower() not in ("http", "https") or not host:
        return None
    return f"{scheme.lower()}://{host.lower()}{slash}{path}".rstrip("/")


@dataclass(frozen=True)
class PatientIdentity:
    """The context patient: its id, the request's FHIR base and the ``fullUrl`` aliases."""

    patient_id: str
    fhir_server: str | None = None
    aliases: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        # "Patient/{id}" when the long way of :meth:`matches` accepts it as it stands (no
        # surrounding space, no "/_history/"): then an equal reference is this patient's
        own = f"Patient/{self.patient_id}"
        if own == own.strip() and "/_history/" not in own:
            object.__setattr__(self, "_own_plain", own)

    def matches(self, reference: Any) -> bool:
        """True when a ``Reference`` object names this patient (see the module docstring)."""
        if not isinstance(reference, dict):
            return False
        ref = reference.get("reference")
        if not isinstance(ref, str) or not ref:
            return False
        if ref == self.__dict__.get("_own_plain"):
            return True   # the common case: exactly "Patient/{id}" (what the long way says too)
        ref = ref.strip()
        if ref in self.aliases:
            return True
        head, sep, _version = ref.partition("/_history/")
        if sep:
            ref = head
        if ref == f"Patient/{self.patient_id}":
            return True
        if "://" in ref:
            tail = f"/Patient/{self.patient_id}"
            if not ref.endswith(tail):
                return False
            server = _base(self.fhir_server)
            return server is None or _base(ref[:-len(tail)]) == server
        return False

    def owner(self, resource: dict[str, Any]) -> Owner:
        """``own`` when ``resource`` is this patient's, ``other`` when it names another (or an
        unverifiable) patient, ``none`` when a required patient element is absent."""
        rtype = resource.get("resourceType")
        if rtype == "Patient":
            return "own" if resource.get("id") == self.patient_id else "other"
        if rtype in NO_PATIENT:
            return "own"
        subject = resource.get("subject")
        if subject is None:
            return "own" if rtype in SUBJECT_OPTIONAL else "none"
        return "own" if self.matches(subject) else "other"


def patient_aliases(patient_id: str, bundles: Iterable[Any]) -> frozenset[str]:
    """``fullUrl`` values under which the request's Bundles carry the context Patient."""
    out: set[str] = set()
    for bundle in bundles:
        if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
            continue
        entries = bundle.get("entry")
        for entry in entries if isinstance(entries, list) else ():
            res = entry.get("resource") if isinstance(entry, dict) else None
            if isinstance(res, dict) and res.get("resourceType") == "Patient" and res.get("id") == patient_id:
                url = entry.get("fullUrl")
                if isinstance(url, str):
                    out.add(url)
    return frozenset(out)


__all__ = ["NO_PATIENT", "SUBJECT_OPTIONAL", "SUBJECT_REQUIRED", "PatientIdentity",
           "patient_aliases"]
