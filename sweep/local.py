"""The local engine: stream the export, partition by patient to disk, evaluate in a process pool.

1. **Read** (:func:`read_file`, one task per export file): :func:`sweep.partitions.split_file`
   parses every line once and appends it, with a small header, to one of N hash partitions
   (``f{file}-p{partition}`` in a temporary folder); Medications (which name no patient) and
   rejected lines go to per-file side files. Blocks of bytes are written, never an object per line.
2. **Merge** (main process, file order): the Medications into one SQLite table by id (the first
   kept), the rejected lines into ``rejected.ndjson``.
3. **Evaluate** (:func:`evaluate_partition`, one task per partition):
   :func:`sweep.partitions.sweep_partition` over the partition's files in file order.

With ``workers`` N, this process is one of them and N - 1 children are forked from it once it
is prepared (:func:`sweep.worker.prepare`: validators, value sets, prefilter, rules), so they
start warm and nothing is pickled to them but file paths; a main process with other threads
starts them from a fork server instead (``forkserver``, prepared there). Steps 1 and 3 share
their tasks (:func:`shared_map`): largest first, each process taking the next as it is free. A
forked process pays for every page it writes that it still shares with the other (copy-on-write;
measured at 10k resources on the 2-core VM: ~2,700 page faults, ~20 ms of CPU, in each of the
two), which is why the main process works instead of waiting on two children. An export smaller
than :data:`SMALL_EXPORT_BYTES` is swept in this process: a pool would cost more than it saves.

Memory is bounded by one partition (about :data:`PARTITION_BYTES` of the export each, or the
largest patient if it is larger), not by the export. Lines reach a patient in file order whatever
the number of workers, and the worklist is sorted by a total order, so any number of workers or
partitions gives the same files (tested).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import sqlite3
import tempfile
import threading
import time
from collections import Counter, deque
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Callable, Iterator
from zoneinfo import ZoneInfo

import orjson

from cards.thresholds import DEFAULT_THRESHOLDS, Thresholds

from . import records, worker
from .output import write_summary, write_worklist
from .partitions import (LINES, MEDICATIONS, REJECTED, STATS, FileStats, PartitionResult,
                         medication_lines, split_file, sweep_partition)
from .progress import Progress

log = logging.getLogger(__name__)

#: Target size of one partition file: the most one worker holds in memory at a time.
PARTITION_BYTES = 32 * 1024 * 1024
MAX_PARTITIONS = 256
#: Below this many bytes of input (gzip counted 5x) one process sweeps the export: starting
#: workers and handing them the partitions would take longer than the work.
SMALL_EXPORT_BYTES = 2 * 1024 * 1024
#: Rejected lines listed in summary.json (all of them are in rejected.ndjson).
LISTED_REJECTIONS = 100


def input_bytes(files: list[Path]) -> int:
    """The size of the export (gzip counted 5x)."""
    size = 0
    for p in files:
        try:
            size += p.stat().st_size * (5 if p.name.endswith(".gz") else 1)
        except OSError:
            continue
    return size


def partition_count(files: list[Path], workers: int) -> int:
    """Enough partitions for :data:`PARTITION_BYTES` each, at least 2 per worker."""
    return max(2 * workers, min(MAX_PARTITIONS, input_bytes(files) // PARTITION_BYTES + 1))


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


def _blocks_of(paths: list[str]) -> Iterator[bytes]:
    for path in paths:
        with open(path, "rb") as f:
            yield f.read()


def evaluate_partition(task: Task) -> PartitionResult:
    """Step 3, one partition: its files (file order) through :func:`sweep_partition`."""
    meds = MedicationStore(Path(task.medications), readonly=True)
    try:
        return sweep_partition(_blocks_of(task.paths), meds.get, task.now, task.thresholds)
    finally:
        meds.db.close()


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


def part_path(tmp: str | Path, file_index: int, partition: int) -> Path:
    return Path(tmp) / f"f{file_index:05d}-p{partition:04d}.ndjson"


def read_file(task: ReadTask) -> FileStats:
    """Step 1, one file: every line to its patient's partition (``f{file}-p{partition}``), the
    Medications to ``f{file}-med``, the rejected lines to ``f{file}-rejected``."""
    tmp = Path(task.tmp)
    outs: dict[int, Any] = {}
    meds = (tmp / f"f{task.index:05d}-med.ndjson").open("wb")
    rejected = (tmp / f"f{task.index:05d}-rejected.ndjson").open("wb")
    stats = FileStats(task.index, task.name)
    try:
        for kind, i, block in split_file(task.index, Path(task.path), task.name, task.partitions,
                                         task.today, ZoneInfo(task.zone)):
            if kind == LINES:
                out = outs.get(i)
                if out is None:
                    out = outs[i] = part_path(tmp, task.index, i).open("wb", buffering=0)
                out.write(block)
            elif kind == MEDICATIONS:
                meds.write(block)
            elif kind == REJECTED:
                rejected.write(block)
            elif kind == STATS:
                stats = block
    finally:
        for f in (*outs.values(), meds, rejected):
            f.close()
    return stats


def _started() -> None:
    """A no-op task: the pool has forked its workers once it has run."""


def _fork_safe() -> bool:
    """This process can fork its workers: the platform forks and no other thread runs."""
    return "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1


def _pool(workers: int) -> Any:
    """``workers`` worker processes forked from this (prepared) process; from a prepared fork
    server when this process runs other threads (a fork copies no thread, and a lock one held
    would stay held)."""
    methods = multiprocessing.get_all_start_methods()
    if _fork_safe():
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"))
        # the first submit forks every worker before it returns (and before the executor starts
        # its threads): this process goes on with its own tasks while they start
        pool.submit(_started)
        return pool
    if "forkserver" in methods:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["sweep.local"])
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=worker.prepare)
    else:   # pragma: no cover - platforms without fork
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=worker.prepare)
    pool.submit(_started).result()   # every worker starts now, before any progress-bar thread
    return pool


def shared_map(fn: Callable[[Any], Any], tasks: list[Any], pool: Any, children: int) -> Iterator[Any]:
    """``fn`` over ``tasks`` in this process and in the pool's ``children`` at once, each taking
    the next task from the front when it is free (with ``tasks`` largest first, the longest
    first, so the ends meet); results as they come (in any order). A child's next task is handed
    to the pool as its last one finishes (from the pool's result callback), so no child waits
    for this process to finish one of its own. This process is one of the ``--workers``: it is
    prepared and warm, where a child pays its copy-on-write start on each page it touches."""
    todo = deque(tasks)
    results: queue.SimpleQueue = queue.SimpleQueue()
    lock = threading.Lock()
    handed = [0]

    def feed(_finished: Future | None = None) -> None:
        if _finished is not None:
            results.put(_finished)
        with lock:
            if not todo:
                return
            task = todo.popleft()
            handed[0] += 1
        try:
            pool.submit(fn, task).add_done_callback(feed)
        except Exception as exc:  # noqa: BLE001 - a pool shut down or broken: said where results are read
            failed: Future = Future()
            failed.set_exception(exc)
            results.put(failed)

    try:
        for _ in range(children):
            feed()
        collected = 0
        while True:
            with lock:
                task = todo.popleft() if todo else None
            if task is not None:
                yield fn(task)
                while True:   # what the children finished meanwhile
                    try:
                        finished = results.get_nowait()
                    except queue.Empty:
                        break
                    collected += 1
                    yield finished.result()
                continue
            with lock:   # nothing left to take: wait for what the children hold
                if collected == handed[0]:
                    return
            finished = results.get()   # every task handed puts its future here once
            collected += 1
            yield finished.result()
    finally:
        with lock:
            todo.clear()   # an error or an interrupt: no child is handed anything more


def _read_all(tasks: list[ReadTask], pool: Any, children: int, progress: Progress) -> list[FileStats]:
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
        for stats in shared_map(read_file, by_size, pool, children):
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
            for rid, candidate, raw in medication_lines((tmp / f"f{t.index:05d}-med.ndjson").read_bytes()):
                store.add(rid, candidate, raw)
            with (tmp / f"f{t.index:05d}-rejected.ndjson").open("rb") as f:
                rejected.write(f.read())
    store.close()
    return store.count


def _evaluate(tasks: list[Task], pool: Any, children: int, progress: Progress) -> Iterator[PartitionResult]:
    """Every partition; the results in any order (the worklist is sorted, the counts summed)."""
    progress.evaluating(len(tasks))
    results = map(evaluate_partition, tasks) if pool is None else shared_map(evaluate_partition, tasks, pool, children)
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
    if input_bytes(files) < SMALL_EXPORT_BYTES:
        workers = 1
    n = partitions or partition_count(files, workers)
    rows: list[dict[str, Any]] = []
    counts: Counter = Counter()
    today = now.astimezone(thresholds.zone).date()
    worker.prepare(thresholds)   # before the workers fork: they start warm
    children = workers - 1   # this process is one of the workers
    with tempfile.TemporaryDirectory(prefix="bone-cds-sweep-") as tmpdir, \
            (_pool(children) if children else nullcontext()) as pool:
        tmp = Path(tmpdir)
        reads = [ReadTask(k, str(p), str(p.relative_to(input_path)) if p != input_path else p.name,
                          tmpdir, n, today, thresholds.clock_time_zone) for k, p in enumerate(files)]
        per_file = _read_all(reads, pool, children, progress)
        medications = _merge(reads, tmp, out_dir)
        tasks = [Task([str(part_path(tmp, r.index, i)) for r in reads if part_path(tmp, r.index, i).exists()],
                      str(tmp / "medications.sqlite3"), now, thresholds) for i in range(n)]
        failed: list[str] = []
        for r in _evaluate(tasks, pool, children, progress):
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


__all__ = ["MedicationStore", "SMALL_EXPORT_BYTES", "evaluate_partition", "partition_count", "run"]
