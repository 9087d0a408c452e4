"""An export file split into partitions by patient, and a partition's patients swept: the two
steps every engine runs (the local engine between its files on disk, Spark between its tasks).

**Split** (:func:`split_file`): every line of one file is parsed once (:func:`sweep.records.route`)
and goes to partition ``crc32(patient id) % n`` as one *partition line*::

    patient id \\t flags \\t refs \\t raw resource

``flags`` are three bytes: ``P`` (a Patient) or ``-``; ``c`` (the prefilter passed) or ``-``;
``d`` (its raw Patient says deceased on or before the as-of date) or ``-``. The id is UTF-8 with its one
possible newline written ``\\n`` (a FHIR id has no backslash). ``refs`` are the
Medication ids a medication record names (a JSON list; empty when none). The raw resource is the
line's own bytes, never re-serialised. Patient ids are FHIR ids (no tab) and a raw line holds
no newline, so a partition is NDJSON-like bytes cut by ``\\n`` then by the first three tabs.
Lines come out in blocks (:data:`BLOCK_BYTES` of pending lines), so the output is a few large
byte strings, never an object per line. Medications (``[id, candidate] \\t raw``) and rejected
lines (their JSON) come out the same way.

**Sweep** (:func:`sweep_partition`): a partition's blocks in file order, grouped by patient;
each patient (:func:`sweep_group`) is counted and skipped (no Patient resource; deceased, A37;
no antiresorptive: :mod:`sweep.prefilter`) or evaluated by the patient-view rules
(:func:`sweep.patient.evaluate_patient`). Only the lines of an evaluated patient are parsed again.
"""

from __future__ import annotations

import logging
import zlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator
from zoneinfo import ZoneInfo

import orjson

from cards.thresholds import Thresholds

from . import patient as patient_mod
from . import records, worker
from .patient import observation_filter

log = logging.getLogger(__name__)

#: Pending bytes of one file's output after which its blocks are handed on.
BLOCK_BYTES = 4 * 1024 * 1024
_PATIENT, _CANDIDATE, _DECEASED = ord("P"), ord("c"), ord("d")
#: flags by (is Patient, candidate, deceased)
_FLAGS = {(p, c, d): bytes((_PATIENT if p else 45, _CANDIDATE if c else 45, _DECEASED if d else 45))
          for p in (0, 1) for c in (0, 1) for d in (0, 1)}

MedicationLookup = Callable[[str], "tuple[bool, bytes] | None"]


@dataclass
class FileStats:
    """What reading one file gave (counts only; the lines went to blocks)."""

    index: int
    name: str
    lines: int = 0
    by_type: Counter = field(default_factory=Counter)
    ignored: Counter = field(default_factory=Counter)
    rejected: Counter = field(default_factory=Counter)
    blank: int = 0


@dataclass
class PartitionResult:
    rows: list[dict[str, Any]] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)
    failed: list[str] = field(default_factory=list)   # patients whose evaluation raised


def partition_of(key: bytes, partitions: int) -> int:
    """The partition of a patient id (the same in every engine and process)."""
    return zlib.crc32(key) % partitions


#: Kinds of block :func:`split_file` yields.
LINES, MEDICATIONS, REJECTED, STATS = "P", "M", "R", "S"


def split_file(index: int, path: Path, name: str, partitions: int, today: date,
               zone: ZoneInfo) -> Iterator[tuple[str, int, Any]]:
    """One export file as blocks: ``(LINES, partition, bytes)``, ``(MEDICATIONS, 0, bytes)``,
    ``(REJECTED, 0, bytes)``, and last ``(STATS, 0, FileStats)``. Within a kind and partition,
    blocks come in line order."""
    stats = FileStats(index, name)
    hit = worker.prefilter().hit
    parts: dict[int, list[bytes]] = {}
    meds: list[bytes] = []
    rejected: list[bytes] = []
    by_type: dict[str, int] = {}
    ignored: dict[str, int] = {}
    pending = lines = 0
    route, crc32, flags_of, dumps, rejection = records.route, zlib.crc32, _FLAGS, orjson.dumps, records.Rejection
    keep = observation_filter()
    for item in records.read_lines(path, name):
        if item.__class__ is rejection:
            stats.rejected[item.reason] += 1   # type: ignore[union-attr]
            rejected.append(dumps(item.to_json()))   # type: ignore[union-attr]
            continue
        lineno, raw = item   # type: ignore[misc]
        lines += 1
        routed = route(raw, hit=hit, today=today, zone=zone, keep_observation=keep)
        if routed is None:
            stats.blank += 1
            continue
        if routed.__class__ is str:
            stats.rejected[routed] += 1
            rejected.append(dumps({"file": name, "line": lineno, "reason": routed}))
            continue
        key, rtype, candidate, refs, deceased = routed   # type: ignore[misc]
        if not key:   # a type the rules never read, an Observation the prefetch would not
            ignored[rtype] = ignored.get(rtype, 0) + 1   # bring, or a Medication without id
            continue
        by_type[rtype] = by_type.get(rtype, 0) + 1
        raw = raw.strip()
        pending += len(raw)
        if rtype == "Medication":
            meds.append(dumps([key, int(candidate)]) + b"\t" + raw)
        else:
            k = key.encode()
            if b"\n" in k:   # an id may end with one newline (``_ID``'s ``$``): the only byte to escape
                k = k.replace(b"\n", b"\\n")
            i = crc32(k) % partitions
            line = b"\t".join((k, flags_of[(rtype == "Patient", candidate, deceased)],
                               dumps(list(refs)) if refs else b"", raw))
            out = parts.get(i)
            if out is None:
                parts[i] = [line]
            else:
                out.append(line)
        if pending >= BLOCK_BYTES:
            yield from _blocks(parts, meds, rejected)
            pending = 0
    yield from _blocks(parts, meds, rejected)
    stats.lines = lines
    stats.by_type.update(by_type)
    stats.ignored.update(ignored)
    yield STATS, 0, stats


def _blocks(parts: dict[int, list[bytes]], meds: list[bytes],
            rejected: list[bytes]) -> Iterator[tuple[str, int, bytes]]:
    for i in sorted(parts):
        yield LINES, i, b"\n".join(parts[i]) + b"\n"
    parts.clear()
    if meds:
        yield MEDICATIONS, 0, b"\n".join(meds) + b"\n"
        meds.clear()
    if rejected:
        yield REJECTED, 0, b"\n".join(rejected) + b"\n"
        rejected.clear()


def medication_lines(block: bytes) -> Iterator[tuple[str, bool, bytes]]:
    """``(id, candidate, raw)`` of each line of a MEDICATIONS block."""
    for line in block.split(b"\n"):
        if line:
            header, raw = line.split(b"\t", 1)
            rid, candidate = orjson.loads(header)
            yield rid, bool(candidate), raw


def sweep_group(key: str, lines: list[bytes], medication: MedicationLookup, now: datetime,
                thresholds: Thresholds, counts: Counter) -> list[dict[str, Any]] | None:
    """One patient's partition lines (file order), whatever the engine: counted, skipped (no
    Patient resource, deceased, no antiresorptive) or evaluated; its worklist rows, or None when
    its evaluation failed. ``medication``: Medication id → (prefilter verdict, raw line), or None
    when the export has none of that id."""
    fields = [line.split(b"\t", 3) for line in lines]
    first = next((f for f in fields if f[1][0] == _PATIENT), None)
    if first is None:
        counts["unknown_patients"] += 1
        counts["unknown_patient_resources"] += len(lines)
        return []
    counts["patients_seen"] += 1
    if first[1][2] == _DECEASED and patient_mod.is_deceased(key, orjson.loads(first[3]), now=now, verdicts=worker.verdicts(),
                                                           thresholds=thresholds):
        counts["patients_deceased"] += 1
        return []
    refs: set[str] = set()
    candidate = False
    for f in fields:
        if f[1][1] == _CANDIDATE:
            candidate = True
        if f[2]:
            refs.update(orjson.loads(f[2]))
    found = {ref: medication(ref) for ref in sorted(refs)}
    if not candidate and not any(v is None or v[0] for v in found.values()):
        counts["patients_without_antiresorptive"] += 1
        return []
    resources = [orjson.loads(f[3]) for f in fields]
    resources += [orjson.loads(v[1]) for v in found.values() if v is not None]
    try:
        result = patient_mod.evaluate_patient(key, resources, now=now, thresholds=thresholds,
                                              verdicts=worker.verdicts())
    except Exception as exc:  # noqa: BLE001 - one patient (our bug) must not stop the population
        # the type only: a message could quote record content; the id goes to summary.json
        log.error("a patient's evaluation failed (%s); listed in summary.json", type(exc).__name__)
        counts["patients_failed"] += 1
        return None
    if result.deceased:   # the chart says so though the raw Patient did not (A37): no rule ran
        counts["patients_deceased"] += 1
        return []
    counts["patients_evaluated"] += 1
    counts["patients_with_unreadable_records"] += result.unreadable
    counts["patients_with_findings"] += bool(result.rows)
    return result.rows


def sweep_partition(blocks: Iterable[bytes], medication: MedicationLookup, now: datetime,
                    thresholds: Thresholds) -> PartitionResult:
    """A partition's blocks (in file order) grouped by patient; each patient swept, in id order."""
    groups: dict[bytes, list[bytes]] = {}
    for block in blocks:
        for line in block.split(b"\n"):
            if not line:
                continue
            key = line[:line.index(b"\t")]
            group = groups.get(key)
            if group is None:
                groups[key] = [line]
            else:
                group.append(line)
    out = PartitionResult()
    for key in sorted(groups):   # UTF-8 byte order is code point order: the ids' str order
        pid = key.decode().replace("\\n", "\n")
        rows = sweep_group(pid, groups.pop(key), medication, now, thresholds, out.counts)
        if rows is None:
            out.failed.append(pid)
        else:
            out.rows.extend(rows)
    return out


__all__ = ["BLOCK_BYTES", "FileStats", "LINES", "MEDICATIONS", "PartitionResult", "REJECTED", "STATS",
           "medication_lines", "partition_of", "split_file", "sweep_group", "sweep_partition"]
