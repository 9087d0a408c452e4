"""Reading a Bulk Data export: NDJSON files (gzip accepted) → lines → routed to their patient.

The type of a line is its own ``resourceType`` (file names vary: ``Type.ndjson``,
``Type.2.ndjson``, ``Type.1.ndjson.gz``). A line that cannot be used is a :class:`Rejection`
with its file and 1-based line: it is counted and reported, never a crash, never silently lost.
"""

from __future__ import annotations

import gzip
import re
import zlib
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator, NamedTuple
from zoneinfo import ZoneInfo

import orjson

from cds_service.chart.chart import READ_TYPES
from cds_service.chart.clinical import deceased_on
from cds_service.chart.medication_refs import MEDICATION_RECORD_TYPES

#: Reasons a line is rejected (summary.json ``rejected.by_reason``).
MALFORMED = "malformed-json"
NOT_A_RESOURCE = "not-a-resource"
NO_TYPE = "no-resource-type"
UNKNOWN_TYPE = "unknown-type"
NO_PATIENT = "no-patient"
TRUNCATED = "truncated-gzip"
UNREADABLE = "unreadable-file"

_GZIP_MAGIC = b"\x1f\x8b"
_SUFFIXES = (".ndjson", ".ndjson.gz", ".jsonl", ".jsonl.gz")
_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_ID_CHARS = re.compile(r"[A-Za-z0-9\-.]{1,64}")
#: Bytes read from a plain file at a time.
READ_BUFFER = 1 << 20


@dataclass(frozen=True)
class Rejection:
    """One line (or the rest of a file) that could not be used."""

    file: str
    line: int
    reason: str
    resource_type: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"file": self.file, "line": self.line, "reason": self.reason}
        if self.resource_type:
            out["resourceType"] = self.resource_type
        return out


def input_files(path: Path) -> list[Path]:
    """The NDJSON files of an export folder (sorted by name), or the one file given."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such file or folder")
    return sorted(p for p in path.iterdir() if p.is_file() and p.name.lower().endswith(_SUFFIXES))


def read_lines(path: Path, name: str) -> Iterator[tuple[int, bytes] | Rejection]:
    """``(line number, raw line)`` of one file, gzip or plain (by content, not by name); a
    truncated or unreadable file ends with one :class:`Rejection` at the line it stopped."""
    lineno = 0
    try:
        with path.open("rb") as probe:
            gz = probe.read(2) == _GZIP_MAGIC
        with (gzip.open(path, "rb") if gz else open(path, "rb", buffering=READ_BUFFER)) as f:
            for lineno, line in enumerate(f, 1):
                yield lineno, line
    except (EOFError, gzip.BadGzipFile, zlib.error):
        yield Rejection(name, lineno + 1, TRUNCATED)
    except OSError:
        yield Rejection(name, lineno + 1, UNREADABLE)


@lru_cache(maxsize=512)
def is_resource_type(name: str) -> bool:
    """``name`` is a FHIR R4 resource type (``fhir.resources.R4B``)."""
    from fhir.resources.R4B import get_fhir_model_class
    from fhir.resources.R4B.resource import Resource
    try:
        return issubclass(get_fhir_model_class(name), Resource)
    except (ValueError, TypeError, AttributeError):
        return False


def patient_key(reference: Any) -> str | None:
    """The patient id a ``Reference`` names (``Patient/{id}``, with a ``/_history`` suffix or
    under any base URL), or None."""
    if not isinstance(reference, dict):
        return None
    ref = reference.get("reference")
    if not isinstance(ref, str):
        return None
    if ref.startswith("Patient/") and _ID_CHARS.fullmatch(ref, 8):
        return ref[8:]   # the common case, "Patient/{id}" exactly: the same answer as the long way
    ref = ref.strip().split("/_history/")[0]
    head, sep, pid = ref.rpartition("Patient/")
    if not sep or (head and not head.endswith("/")) or not _ID.match(pid):
        return None
    return pid


def medication_ids(resource: dict) -> list[str]:
    """Ids of the Medications a record's ``medicationReference`` names outside itself."""
    ref = resource.get("medicationReference")
    target = ref.get("reference") if isinstance(ref, dict) else None
    if not isinstance(target, str) or not target or target.startswith("#"):
        return []
    parts = target.strip().split("/_history")[0].rsplit("/", 2)
    return [parts[-1]] if len(parts) >= 2 and parts[-2] == "Medication" else [target]


class Routed(NamedTuple):
    """A usable line: whose it is and what the engine needs to know without parsing it again."""

    key: str                   # patient id; a Medication's own id for Medications
    resource_type: str
    candidate: bool = False    # a medication record the prefilter passed
    refs: tuple[str, ...] = ()  # Medication ids a medication record refers to
    #: a Patient whose raw resource says deceased on or before the as-of date (D8 of the chart,
    #: ``clinical.deceased_on``); confirmed on the chart before the patient is skipped (A37)
    deceased: bool = False


_new = tuple.__new__   # a Routed built from its five fields without NamedTuple's keyword __new__
_NOT_READ: dict[str, Routed] = {}


def _not_read(rtype: str) -> Routed:
    """The (shared) :class:`Routed` of a resource of ``rtype`` the rules never read."""
    found = _NOT_READ.get(rtype)
    if found is None:
        found = _NOT_READ[rtype] = Routed("", rtype)
    return found


def route(raw: bytes, *, hit: Any, today: date, zone: ZoneInfo,
          keep_observation: Any = None) -> Routed | str | None:
    """Where one raw line goes: :class:`Routed`, a rejection reason, or None for a blank line.
    A resource the patient-view rules never read (another type; an Observation that
    ``keep_observation`` turns down) is a :class:`Routed` without a key, counted apart."""
    try:
        res = orjson.loads(raw)   # JSON whitespace around the value is allowed
    except orjson.JSONDecodeError:
        stripped = raw.strip()    # blank, or other ASCII whitespace (\f, \v) at an end
        if not stripped:
            return None
        try:
            res = orjson.loads(stripped)
        except orjson.JSONDecodeError:
            return MALFORMED
    if not isinstance(res, dict):
        return NOT_A_RESOURCE
    rtype = res.get("resourceType")
    if not isinstance(rtype, str) or not rtype:
        return NO_TYPE
    if rtype not in READ_TYPES:
        return UNKNOWN_TYPE if not is_resource_type(rtype) else _not_read(rtype)
    if rtype == "Medication":
        rid = res.get("id")
        return _new(Routed, (rid, rtype, hit(raw), (), False)) if isinstance(rid, str) and rid else _not_read(rtype)
    if rtype == "Patient":
        rid = res.get("id")
        if not isinstance(rid, str) or not _ID.match(rid):
            return NO_PATIENT
        return _new(Routed, (rid, rtype, False, (), deceased_on(res, today, zone)))
    subject = res.get("subject")
    ref = subject.get("reference") if subject.__class__ is dict else None
    if ref.__class__ is str and ref.startswith("Patient/") and _ID_CHARS.fullmatch(ref, 8):
        key = ref[8:]   # the common case (patient_key's fast path, without the call)
    else:
        key = patient_key(subject) or patient_key(res.get("patient"))
    if key is None:
        return NO_PATIENT
    if rtype == "Observation" and keep_observation is not None and not keep_observation(res):
        return _not_read(rtype)
    if rtype in MEDICATION_RECORD_TYPES:
        return _new(Routed, (key, rtype, hit(raw), tuple(medication_ids(res)), False))
    return _new(Routed, (key, rtype, False, (), False))


__all__ = ["Rejection", "Routed", "input_files", "patient_key", "read_lines", "route",
           "MALFORMED", "NOT_A_RESOURCE", "NO_TYPE", "UNKNOWN_TYPE", "NO_PATIENT", "TRUNCATED",
           "UNREADABLE"]
