"""The local engine: stream the export, partition by patient to disk, evaluate in a process pool.

1. **Read** every NDJSON line once (:mod:`sweep.records`): each usable line goes, with a small
   header (its patient, type, prefilter verdict), to one of N hash partitions (NDJSON files in a
   temporary folder); Medications (which name no patient) go to a SQLite table by id.
2. **Evaluate** the partitions in a pool of ``workers`` processes: each groups its lines by
   patient, skips the patients the prefilter rules out (:mod:`sweep.prefilter`) and those deceased
   on or before the as-of date (A37), and runs the patient-view rules over the rest
   (:func:`sweep.patient.evaluate_patient`).

Memory is bounded by one partition (about :data:`PARTITION_BYTES` of the export each), not by the
export. The worklist is sorted by a total order, so any number of workers or partitions gives the
same files.
"""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import tempfile
import time
import zlib
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

import orjson

from cards.thresholds import DEFAULT_THRESHOLDS, Thresholds

from . import records
from .output import write_rejected, write_summary, write_worklist
from .prefilter import Prefilter
from .progress import Progress

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

    path: str
    medications: str
    now: datetime
    thresholds: Thresholds


@dataclass
class PartitionResult:
    rows: list[dict[str, Any]] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)


_verdicts: Any = None


def _cache() -> Any:
    global _verdicts
    if _verdicts is None:
        from cds_service.chart.verdicts import VerdictCache
        _verdicts = VerdictCache()
    return _verdicts


def evaluate_partition(task: Task) -> PartitionResult:
    """Group one partition's lines by patient and evaluate the patients that need it."""
    from .patient import evaluate_patient

    groups: dict[str, dict[str, Any]] = {}
    with open(task.path, "rb") as f:
        for line in f:
            header, raw = line.rstrip(b"\n").split(b"\t", 1)
            key, rtype, candidate, refs, deceased = orjson.loads(header)
            g = groups.get(key)
            if g is None:
                g = groups[key] = {"lines": [], "patient": False, "deceased": False,
                                   "candidate": False, "refs": set()}
            g["lines"].append(raw)
            if rtype == "Patient" and not g["patient"]:
                g["patient"], g["deceased"] = True, bool(deceased)
            g["candidate"] = g["candidate"] or bool(candidate)
            g["refs"].update(refs)
    out = PartitionResult()
    meds = MedicationStore(Path(task.medications), readonly=True)
    try:
        for key in sorted(groups):
            g = groups[key]
            if not g["patient"]:
                out.counts["unknown_patients"] += 1
                out.counts["unknown_patient_resources"] += len(g["lines"])
                continue
            out.counts["patients_seen"] += 1
            if g["deceased"]:
                out.counts["patients_deceased"] += 1
                continue
            found = {ref: meds.get(ref) for ref in sorted(g["refs"])}
            if not g["candidate"] and not any(v is None or v[0] for v in found.values()):
                out.counts["patients_without_antiresorptive"] += 1
                continue
            resources = [orjson.loads(raw) for raw in g["lines"]]
            resources += [orjson.loads(v[1]) for v in found.values() if v is not None]
            result = evaluate_patient(key, resources, now=task.now, thresholds=task.thresholds,
                                      verdicts=_cache())
            out.counts["patients_evaluated"] += 1
            out.counts["patients_with_unreadable_records"] += result.unreadable
            out.counts["patients_with_findings"] += bool(result.rows)
            out.rows.extend(result.rows)
    finally:
        meds.db.close()
    return out


@dataclass
class ReadStats:
    files: list[dict[str, Any]] = field(default_factory=list)
    by_type: Counter = field(default_factory=Counter)
    ignored: Counter = field(default_factory=Counter)
    rejected: Counter = field(default_factory=Counter)
    blank: int = 0


def _partition(files: list[Path], root: Path, tmp: Path, n: int, now: datetime, thresholds: Thresholds,
               progress: Progress, rejected_out: Any) -> tuple[ReadStats, int]:
    """Step 1: every line of every file to its partition (or the Medication table, or rejected)."""
    hit = Prefilter().hit
    today, zone = now.astimezone(thresholds.zone).date(), thresholds.zone
    stats = ReadStats()
    outs = [open(tmp / f"part-{i:04d}.ndjson", "wb", buffering=256 * 1024) for i in range(n)]
    meds = MedicationStore(tmp / "medications.sqlite3")
    progress.reading(len(files))
    try:
        for path in files:
            name = str(path.relative_to(root)) if path != root else path.name
            progress.file(name)
            count = 0
            for item in records.read_lines(path, name):
                if isinstance(item, records.Rejection):
                    stats.rejected[item.reason] += 1
                    rejected_out.write(orjson.dumps(item.to_json()) + b"\n")
                    continue
                lineno, raw = item
                count += 1
                if count % 4096 == 0:
                    progress.lines(4096)
                routed = records.route(raw, hit=hit, today=today, zone=zone)
                if routed is None:
                    stats.blank += 1
                    continue
                if isinstance(routed, str):
                    stats.rejected[routed] += 1
                    rejected_out.write(orjson.dumps(records.Rejection(name, lineno, routed).to_json()) + b"\n")
                    continue
                if not routed.key:       # a type the rules never read, or a Medication without id
                    stats.ignored[routed.resource_type] += 1
                    continue
                stats.by_type[routed.resource_type] += 1
                raw = raw.strip()
                if routed.resource_type == "Medication":
                    meds.add(routed.key, routed.candidate, raw)
                    continue
                header = orjson.dumps([routed.key, routed.resource_type, int(routed.candidate),
                                       list(routed.refs), int(routed.deceased)])
                outs[zlib.crc32(routed.key.encode()) % n].write(header + b"\t" + raw + b"\n")
            progress.lines(count % 4096)
            stats.files.append({"file": name, "lines": count})
    finally:
        for f in outs:
            f.close()
        meds.close()
    return stats, meds.count


def _evaluate(tasks: list[Task], workers: int, progress: Progress) -> Iterator[PartitionResult]:
    progress.evaluating(len(tasks))
    if workers <= 1:
        for t in tasks:
            r = evaluate_partition(t)
            progress.partition_done(r.counts["patients_seen"])
            yield r
        return
    ctx = multiprocessing.get_context("spawn")   # no fork of a process holding threads or files
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        for r in pool.map(evaluate_partition, tasks):
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
    with tempfile.TemporaryDirectory(prefix="bone-cds-sweep-") as tmpdir:
        tmp = Path(tmpdir)
        with (out_dir / "rejected.ndjson").open("wb") as rejected_out:
            stats, medications = _partition(files, input_path, tmp, n, now, thresholds, progress, rejected_out)
        tasks = [Task(str(tmp / f"part-{i:04d}.ndjson"), str(tmp / "medications.sqlite3"), now, thresholds)
                 for i in range(n)]
        for r in _evaluate(tasks, workers, progress):
            rows.extend(r.rows)
            counts.update(r.counts)
    progress.close()
    csv_path, ndjson_path = write_worklist(rows, out_dir)
    elapsed = time.monotonic() - started
    read = sum(stats.by_type.values()) + sum(stats.ignored.values())
    summary = _summary(now.astimezone(thresholds.zone).date().isoformat(), input_path, stats, counts,
                       rows, medications, read, elapsed, csv_path, ndjson_path, out_dir)
    write_summary(summary, out_dir)
    return summary


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
             out_dir: Path) -> dict[str, Any]:
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
