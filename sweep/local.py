"""The local engine: stream the export, partition by patient to disk, evaluate in a process pool.

1. **Read** (:func:`read_file`, one task per export file, in the pool): every line is parsed
   once (:mod:`sweep.records`) and goes, with a small header (its patient, type, prefilter
   verdict), to one of N hash partitions (``f{file}-p{partition}`` NDJSON in a temporary folder);
   Medications (which name no patient) and rejected lines go to per-file side files.
2. **Merge** (main process, file order): the Medications into one SQLite table by id (the first
   kept), the rejected lines into ``rejected.ndjson``.
3. **Evaluate** (:func:`evaluate_partition`, one task per partition, in the pool): a partition's
   lines, in file order, grouped by patient; the patients the prefilter rules out
   (:mod:`sweep.prefilter`) and those deceased on or before the as-of date (A37) are counted and
   skipped, the others go through the patient-view rules (:func:`sweep.patient.evaluate_patient`).

Memory is bounded by one partition (about :data:`PARTITION_BYTES` of the export each), not by the
export. Lines reach a patient in file order whatever the number of workers, and the worklist is
sorted by a total order, so any number of workers or partitions gives the same files (tested).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from contextlib import nullcontext
import sqlite3
import tempfile
import time
import zlib
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo
from pathlib import Path
from typing import Any, Callable, Iterator

import orjson

from cards.thresholds import DEFAULT_THRESHOLDS, Thresholds

from . import records
from .output import write_summary, write_worklist
from .patient import prefetched_observation
from .prefilter import Prefilter
from .progress import Progress

log = logging.getLogger(__name__)

#: Target size of one partition file: the most one worker holds in memory at a time.
PARTITION_BYTES = 32 * 1024 * 1024
MAX_PARTITIONS = 256
#: Rejected lines listed in summary.json (all of them are in rejected.ndjson).
LISTED_REJECTIONS = 100


def partition_count(files: list[Path], workers: int) -> int:
    """Enough partitions for :data:`PARTITION_BYTES` each (gzip counted 5×), at least 2 per worker."""
    size = 0
    for p in files:
        try:
            size += p.stat().st_size * (5 if p.name.endswith(".gz") else 1)
        except OSError:
            continue
    return max(2 * workers, min(MAX_PARTITIONS, size // PARTITION_BYTES + 1))


class MedicationStore:
    """Medications of the export by id (first one kept), with their prefilter verdict, on disk."""

    def __init__(self, path: Path, readonly: bool = False) -> None:
        self.path = path
        if readonly:
            self.db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        else:
            self.db = sqlite3.connect(path)
            self.db.execute("PRAGMA journal_mode=OFF")
            self.db.execute("PRAGMA synchronous=OFF")
            self.db.execute("CREATE TABLE IF NOT EXISTS med (id TEXT PRIMARY KEY, candidate INTEGER, json BLOB)")
        self.count = 0

    def add(self, rid: str, candidate: bool, raw: bytes) -> None:
        self.count += self.db.execute("INSERT OR IGNORE INTO med VALUES (?, ?, ?)",
                                      (rid, int(candidate), raw)).rowcount

    def get(self, rid: str) -> tuple[bool, bytes] | None:
        row = self.db.execute("SELECT candidate, json FROM med WHERE id = ?", (rid,)).fetchone()
        return (bool(row[0]), row[1]) if row else None

    def close(self) -> None:
        self.db.commit()
        self.db.close()


@dataclass
class Task:
    """One partition to evaluate (pickled to a worker)."""

    paths: list[str]
    medications: str
    now: datetime
    thresholds: Thresholds


@dataclass
class PartitionResult:
    rows: list[dict[str, Any]] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)
    failed: list[str] = field(default_factory=list)   # patients whose evaluation raised


_verdicts: Any = None


def _cache() -> Any:
    global _verdicts
    if _verdicts is None:
        from cds_service.chart.verdicts import VerdictCache
        _verdicts = VerdictCache()
    return _verdicts


def _lines(paths: list[str]) -> Iterator[bytes]:
    for path in paths:
        with open(path, "rb") as f:
            yield from f


@dataclass
class Group:
    """One patient's lines of the export, and what their headers say."""

    lines: list[bytes] = field(default_factory=list)
    patient: bool = False
    patient_line: int = -1     # index in ``lines`` of the first Patient line
    deceased: bool = False     # its raw resource says deceased (confirmed on the chart)
    candidate: bool = False
    refs: set[str] = field(default_factory=set)

    def add(self, rtype: str, candidate: Any, refs: Any, deceased: Any, raw: bytes) -> None:
        self.lines.append(raw)
        if rtype == "Patient" and not self.patient:
            self.patient, self.deceased, self.patient_line = True, bool(deceased), len(self.lines) - 1
        self.candidate = self.candidate or bool(candidate)
        self.refs.update(refs)


def sweep_patient(key: str, group: Group, medication: Callable[[str], tuple[bool, bytes] | None],
                  now: datetime, thresholds: Thresholds, counts: Counter) -> list[dict[str, Any]] | None:
    """One patient, whatever the engine: counted, skipped (no Patient resource, deceased, no
    antiresorptive) or evaluated; its worklist rows, or None when its evaluation failed. ``medication``: Medication id → (prefilter
    verdict, raw line), or None when the export has none of that id."""
    from .patient import evaluate_patient, is_deceased

    if not group.patient:
        counts["unknown_patients"] += 1
        counts["unknown_patient_resources"] += len(group.lines)
        return []
    counts["patients_seen"] += 1
    if group.deceased and is_deceased(key, orjson.loads(group.lines[group.patient_line]), now=now,
                                      thresholds=thresholds):
        counts["patients_deceased"] += 1
        return []
    found = {ref: medication(ref) for ref in sorted(group.refs)}
    if not group.candidate and not any(v is None or v[0] for v in found.values()):
        counts["patients_without_antiresorptive"] += 1
        return []
    resources = [orjson.loads(raw) for raw in group.lines]
    resources += [orjson.loads(v[1]) for v in found.values() if v is not None]
    try:
        result = evaluate_patient(key, resources, now=now, thresholds=thresholds, verdicts=_cache())
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


def evaluate_partition(task: Task) -> PartitionResult:
    """Group one partition's lines by patient (file order) and sweep each patient."""
    groups: dict[str, Group] = {}
    for line in _lines(task.paths):
        header, raw = line.rstrip(b"\n").split(b"\t", 1)
        key, rtype, candidate, refs, deceased = orjson.loads(header)
        group = groups.get(key)
        if group is None:
            group = groups[key] = Group()
        group.add(rtype, candidate, refs, deceased, raw)
    out = PartitionResult()
    meds = MedicationStore(Path(task.medications), readonly=True)
    try:
        for key in sorted(groups):
            rows = sweep_patient(key, groups[key], meds.get, task.now, task.thresholds, out.counts)
            if rows is None:
                out.failed.append(key)
            else:
                out.rows.extend(rows)
    finally:
        meds.db.close()
    return out


@dataclass
class ReadTask:
    """One export file to read into partitions (pickled to a worker)."""

    index: int
    path: str
    name: str
    tmp: str
    partitions: int
    today: date
    zone: str


@dataclass
class FileStats:
    """What reading one file gave (counts only; rejected lines and Medications are on disk)."""

    index: int
    name: str
    lines: int = 0
    by_type: Counter = field(default_factory=Counter)
    ignored: Counter = field(default_factory=Counter)
    rejected: Counter = field(default_factory=Counter)
    blank: int = 0


_prefilter: Prefilter | None = None


def _hit(line: bytes) -> bool:
    global _prefilter
    if _prefilter is None:
        _prefilter = Prefilter()
    return _prefilter.hit(line)


def part_path(tmp: str | Path, file_index: int, partition: int) -> Path:
    return Path(tmp) / f"f{file_index:05d}-p{partition:04d}.ndjson"


def routed_lines(path: Path, name: str, today: date, zone: ZoneInfo, stats: FileStats
                 ) -> Iterator[tuple[int, records.Routed | records.Rejection, bytes]]:
    """The lines of one file for an engine: ``(line, Routed, raw)`` for a usable resource of a
    type the rules read, ``(line, Rejection, b"")`` for a rejected one; ``stats`` counts all."""
    for item in records.read_lines(path, name):
        if isinstance(item, records.Rejection):
            stats.rejected[item.reason] += 1
            yield item.line, item, b""
            continue
        lineno, raw = item
        stats.lines += 1
        routed = records.route(raw, hit=_hit, today=today, zone=zone, keep_observation=prefetched_observation)
        if routed is None:
            stats.blank += 1
        elif isinstance(routed, str):
            stats.rejected[routed] += 1
            yield lineno, records.Rejection(name, lineno, routed), b""
        elif not routed.key:   # a type the rules never read, an Observation the prefetch would not
            # bring (not a code of its template), or a Medication without id
            stats.ignored[routed.resource_type] += 1
        else:
            stats.by_type[routed.resource_type] += 1
            yield lineno, routed, raw.strip()


def header_of(routed: records.Routed) -> list[Any]:
    """What the per-patient step needs of a line besides its bytes (see :meth:`Group.add`)."""
    return [routed.key, routed.resource_type, int(routed.candidate), list(routed.refs), int(routed.deceased)]


def read_file(task: ReadTask) -> FileStats:
    """Step 1, one file: every line to its patient's partition (``f{file}-p{partition}``), the
    Medications to ``f{file}-med``, the rejected lines to ``f{file}-rejected`` (all NDJSON)."""
    stats = FileStats(task.index, task.name)
    tmp = Path(task.tmp)
    outs: dict[int, Any] = {}
    meds = (tmp / f"f{task.index:05d}-med.ndjson").open("wb")
    rejected = (tmp / f"f{task.index:05d}-rejected.ndjson").open("wb")
    try:
        for _, routed, raw in routed_lines(Path(task.path), task.name, task.today, ZoneInfo(task.zone), stats):
            if isinstance(routed, records.Rejection):
                rejected.write(orjson.dumps(routed.to_json()) + b"\n")
            elif routed.resource_type == "Medication":
                meds.write(orjson.dumps([routed.key, int(routed.candidate)]) + b"\t" + raw + b"\n")
            else:
                i = zlib.crc32(routed.key.encode()) % task.partitions
                out = outs.get(i)
                if out is None:
                    out = outs[i] = part_path(tmp, task.index, i).open("wb", buffering=256 * 1024)
                out.write(orjson.dumps(header_of(routed)) + b"\t" + raw + b"\n")
    finally:
        for f in (*outs.values(), meds, rejected):
            f.close()
    return stats


def _pool(workers: int) -> Any:
    ctx = multiprocessing.get_context("spawn")   # no fork of a process holding threads or files
    return ProcessPoolExecutor(max_workers=workers, mp_context=ctx)


def _read_all(tasks: list[ReadTask], pool: Any, progress: Progress) -> list[FileStats]:
    """Every file, largest first when in parallel; the stats in file order."""
    progress.reading(len(tasks))
    done: dict[int, FileStats] = {}
    if pool is None:
        for t in tasks:
            progress.file(t.name)
            done[t.index] = read_file(t)
            progress.lines(done[t.index].lines)
    else:
        by_size = sorted(tasks, key=lambda t: -Path(t.path).stat().st_size)
        for stats in pool.map(read_file, by_size):
            done[stats.index] = stats
            progress.file(stats.name)
            progress.lines(stats.lines)
    return [done[t.index] for t in tasks]


def _merge(tasks: list[ReadTask], tmp: Path, out_dir: Path) -> int:
    """The Medications of every file into one table (the first by file order kept) and the
    rejected lines into ``rejected.ndjson`` (file order); the number of Medications."""
    store = MedicationStore(tmp / "medications.sqlite3")
    with (out_dir / "rejected.ndjson").open("wb") as rejected:
        for t in tasks:
            with (tmp / f"f{t.index:05d}-med.ndjson").open("rb") as f:
                for line in f:
                    header, raw = line.rstrip(b"\n").split(b"\t", 1)
                    rid, candidate = orjson.loads(header)
                    store.add(rid, bool(candidate), raw)
            with (tmp / f"f{t.index:05d}-rejected.ndjson").open("rb") as f:
                rejected.write(f.read())
    store.close()
    return store.count


def _evaluate(tasks: list[Task], pool: Any, progress: Progress) -> Iterator[PartitionResult]:
    progress.evaluating(len(tasks))
    results = map(evaluate_partition, tasks) if pool is None else pool.map(evaluate_partition, tasks)
    for r in results:
        progress.partition_done(r.counts["patients_seen"])
        yield r


def run(input_path: Path, out_dir: Path, *, now: datetime, thresholds: Thresholds = DEFAULT_THRESHOLDS,
        workers: int | None = None, progress: Progress | None = None,
        partitions: int | None = None) -> dict[str, Any]:
    """Sweep ``input_path`` (a folder of NDJSON files, or one file) as of ``now``; write the
    worklist, the summary and the rejected lines to ``out_dir``; return the summary."""
    started = time.monotonic()
    progress = progress or Progress()
    workers = max(1, workers or os.cpu_count() or 1)
    input_path = Path(input_path)
    files = records.input_files(input_path)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n = partitions or partition_count(files, workers)
    rows: list[dict[str, Any]] = []
    counts: Counter = Counter()
    today = now.astimezone(thresholds.zone).date()
    with tempfile.TemporaryDirectory(prefix="bone-cds-sweep-") as tmpdir, \
            (_pool(workers) if workers > 1 else nullcontext()) as pool:
        tmp = Path(tmpdir)
        reads = [ReadTask(k, str(p), str(p.relative_to(input_path)) if p != input_path else p.name,
                          tmpdir, n, today, thresholds.clock_time_zone) for k, p in enumerate(files)]
        per_file = _read_all(reads, pool, progress)
        medications = _merge(reads, tmp, out_dir)
        tasks = [Task([str(part_path(tmp, r.index, i)) for r in reads if part_path(tmp, r.index, i).exists()],
                      str(tmp / "medications.sqlite3"), now, thresholds) for i in range(n)]
        failed: list[str] = []
        for r in _evaluate(tasks, pool, progress):
            rows.extend(r.rows)
            counts.update(r.counts)
            failed.extend(r.failed)
    stats = ReadStats.of(per_file)
    progress.close()
    csv_path, ndjson_path = write_worklist(rows, out_dir)
    elapsed = time.monotonic() - started
    read = sum(stats.by_type.values()) + sum(stats.ignored.values())
    summary = _summary(today.isoformat(), input_path, stats, counts, rows, medications, read, elapsed,
                       csv_path, ndjson_path, out_dir, failed)
    write_summary(summary, out_dir)
    return summary


@dataclass
class ReadStats:
    """The read step's counts over all files."""

    files: list[dict[str, Any]] = field(default_factory=list)
    by_type: Counter = field(default_factory=Counter)
    ignored: Counter = field(default_factory=Counter)
    rejected: Counter = field(default_factory=Counter)
    blank: int = 0

    @classmethod
    def of(cls, per_file: list[FileStats]) -> "ReadStats":
        out = cls()
        for f in per_file:
            out.files.append({"file": f.name, "lines": f.lines})
            out.by_type.update(f.by_type)
            out.ignored.update(f.ignored)
            out.rejected.update(f.rejected)
            out.blank += f.blank
        return out


def _listed_rejections(out_dir: Path) -> list[dict[str, Any]]:
    listed = []
    with (out_dir / "rejected.ndjson").open("rb") as f:
        for line in f:
            if len(listed) >= LISTED_REJECTIONS:
                break
            listed.append(orjson.loads(line))
    return listed


def _summary(as_of: str, input_path: Path, stats: ReadStats, counts: Counter, rows: list[dict],
             medications: int, read: int, elapsed: float, csv_path: Path, ndjson_path: Path,
             out_dir: Path, failed: list[str]) -> dict[str, Any]:
    rejected = sum(stats.rejected.values())
    return {
        "as_of": as_of,
        "input": str(input_path),
        "files": stats.files,
        "resources_read": read,
        "resources_by_type": dict(sorted(stats.by_type.items())),
        "resources_not_read_by_the_rules": dict(sorted(stats.ignored.items())),
        "medications": medications,
        "blank_lines": stats.blank,
        "rejected": {"count": rejected, "by_reason": dict(sorted(stats.rejected.items())),
                     "lines": _listed_rejections(out_dir), "all": str(out_dir / "rejected.ndjson")},
        "patients_seen": counts["patients_seen"],
        "patients_deceased_not_evaluated": counts["patients_deceased"],
        "patients_without_antiresorptive": counts["patients_without_antiresorptive"],
        "patients_evaluated": counts["patients_evaluated"],
        "patients_with_findings": counts["patients_with_findings"],
        "patients_with_unreadable_records": counts["patients_with_unreadable_records"],
        # our bug, never the data's: no row could be made; the ids (sorted) to look into
        "patients_failed": {"count": len(failed), "ids": sorted(failed)[:LISTED_REJECTIONS]},
        "unknown_patient": {"patients": counts["unknown_patients"],
                            "resources": counts["unknown_patient_resources"]},
        "findings": len(rows),
        "findings_by_rule": dict(sorted(Counter(r["rule_id"] for r in rows).items())),
        "findings_by_indicator": dict(sorted(Counter(r["indicator"] for r in rows).items())),
        "seconds": round(elapsed, 3),
        "resources_per_second": round(read / elapsed) if elapsed > 0 else None,
        "worklist": {"csv": str(csv_path), "ndjson": str(ndjson_path)},
    }


__all__ = ["MedicationStore", "evaluate_partition", "partition_count", "run"]
