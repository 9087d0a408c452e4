"""The Spark engine (``--engine spark``): the local engine's steps, distributed by Apache Spark.

The same functions do the work: each export file is read by :func:`sweep.local.routed_lines`
(one Spark task per file, so a rejected line keeps its file and 1-based line), lines are grouped
by patient with ``groupByKey`` and put back in file order, and each patient goes through
:func:`sweep.local.sweep_patient` — the prefilter, A37 and the patient-view rules of the service.
The worklist, ``summary.json`` and ``rejected.ndjson`` are written by the driver exactly as the
local engine writes them, so both engines give identical files (``tests/test_sweep_spark.py``).

``local[*]`` is embedded by default; ``--master spark://…`` (or ``spark-submit``) runs it on a
cluster, whose Python workers need this project installed. Medications are broadcast to the
executors (their count is the export's product catalogue, not its population). Needs PySpark
(``pip install '.[spark]'``) and a Java runtime.
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from datetime import date, datetime
from pathlib import Path
from typing import Any, Iterator
from zoneinfo import ZoneInfo

import orjson

from cards.thresholds import DEFAULT_THRESHOLDS, Thresholds

from . import records
from .local import FileStats, Group, ReadStats, header_of, routed_lines, sweep_patient, _summary
from .output import write_summary, write_worklist
from .progress import Progress

ROOT = Path(__file__).resolve().parent.parent


def _read(task: tuple[int, str, str], today: date, zone: str) -> Iterator[tuple[str, Any, Any]]:
    """One file's events: ``("L", patient, (file, line, header, raw))``, ``("M", id, (file, line,
    candidate, raw))``, ``("R", (file, line), rejection)``, and last ``("S", file, stats)``."""
    index, path, name = task
    stats = FileStats(index, name)
    for lineno, routed, raw in routed_lines(Path(path), name, today, ZoneInfo(zone), stats):
        if isinstance(routed, records.Rejection):
            yield "R", (index, lineno), routed.to_json()
        elif routed.resource_type == "Medication":
            yield "M", routed.key, (index, lineno, routed.candidate, raw)
        else:
            yield "L", routed.key, (index, lineno, header_of(routed), raw)
    yield "S", index, stats


def _patients(items: Iterator[tuple[str, Any]], medications: Any, now: datetime,
              thresholds: Thresholds) -> Iterator[tuple[str, Any]]:
    """Per Spark partition: each patient's lines in file order through :func:`sweep_patient`;
    its rows, then the partition's counts."""
    counts: Counter = Counter()
    meds = medications.value
    for key, lines in items:
        group = Group()
        for _, _, header, raw in sorted(lines, key=lambda x: (x[0], x[1])):
            _, rtype, candidate, refs, deceased = header
            group.add(rtype, candidate, refs, deceased, raw)
        rows = sweep_patient(key, group, meds.get, now, thresholds, counts)
        if rows is None:
            yield "failed", key
        for row in rows or ():
            yield "row", row
    yield "counts", dict(counts)


def session(master: str = "local[*]") -> Any:
    """A SparkSession whose Python workers run this interpreter and find this project."""
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    path = os.environ.get("PYTHONPATH", "")
    if str(ROOT) not in path.split(os.pathsep):
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), path) if p)
    return (SparkSession.builder.master(master).appName("bone-cds-sweep")
            .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
            .config("spark.executorEnv.PYTHONPATH", os.environ["PYTHONPATH"])
            .getOrCreate())


def run(input_path: Path, out_dir: Path, *, now: datetime, thresholds: Thresholds = DEFAULT_THRESHOLDS,
        master: str = "local[*]", partitions: int | None = None,
        progress: Progress | None = None) -> dict[str, Any]:
    """Sweep ``input_path`` on Spark; the same files and summary as :func:`sweep.local.run`."""
    started = time.monotonic()
    progress = progress or Progress()
    input_path, out_dir = Path(input_path), Path(out_dir)
    files = records.input_files(input_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    today = now.astimezone(thresholds.zone).date()
    zone = thresholds.clock_time_zone
    spark = session(master)
    sc = spark.sparkContext
    sc.setLogLevel("ERROR")
    tasks = [(k, str(p), str(p.relative_to(input_path)) if p != input_path else p.name)
             for k, p in enumerate(files)]
    progress.reading(len(tasks))
    events = sc.parallelize(tasks, max(1, len(tasks))).flatMap(lambda t: _read(t, today, zone)).cache()
    per_file = sorted(events.filter(lambda e: e[0] == "S").map(lambda e: e[2]).collect(), key=lambda f: f.index)
    for f in per_file:
        progress.file(f.name)
        progress.lines(f.lines)
    rejected = sorted(events.filter(lambda e: e[0] == "R").map(lambda e: (e[1], e[2])).collect(),
                      key=lambda r: r[0])
    with (out_dir / "rejected.ndjson").open("wb") as out:
        for _, r in rejected:
            out.write(orjson.dumps(r) + b"\n")
    first = (events.filter(lambda e: e[0] == "M").map(lambda e: (e[1], e[2]))
             .reduceByKey(lambda a, b: a if (a[0], a[1]) <= (b[0], b[1]) else b).collectAsMap())
    medications = sc.broadcast({k: (bool(v[2]), v[3]) for k, v in first.items()})
    n = partitions or max(2 * sc.defaultParallelism, len(tasks))
    progress.evaluating(n)
    results = (events.filter(lambda e: e[0] == "L").map(lambda e: (e[1], e[2])).groupByKey(n)
               .mapPartitions(lambda items: _patients(items, medications, now, thresholds)).collect())
    events.unpersist()
    rows = [v for kind, v in results if kind == "row"]
    counts: Counter = Counter()
    for kind, v in results:
        if kind == "counts":
            counts.update(v)
            progress.partition_done(v.get("patients_seen", 0))
    progress.close()
    stats = ReadStats.of(per_file)
    csv_path, ndjson_path = write_worklist(rows, out_dir)
    elapsed = time.monotonic() - started
    read = sum(stats.by_type.values()) + sum(stats.ignored.values())
    failed = [v for kind, v in results if kind == "failed"]
    summary = _summary(today.isoformat(), input_path, stats, counts, rows, len(first), read, elapsed,
                       csv_path, ndjson_path, out_dir, failed)
    write_summary(summary, out_dir)
    return summary


__all__ = ["run", "session"]
