"""The Spark engine (``--engine spark``): the local engine's steps, distributed by Apache Spark.

The same functions do the work. Each export file is one Spark task that splits it
(:func:`sweep.partitions.split_file`: a rejected line keeps its file and 1-based line) into
blocks of partition lines; the blocks of each partition are brought together
(``partitionBy``, one Spark partition per sweep partition) and put back in file order, and
:func:`sweep.partitions.sweep_partition` sweeps its patients — the prefilter, A37 and the
patient-view rules of the service. Spark moves a few large byte strings per file and partition,
never an object per line. The worklist, ``summary.json`` and ``rejected.ndjson`` are written by
the driver exactly as the local engine writes them, so both engines give identical files
(``tests/test_sweep_spark.py``).

``local[*]`` is embedded by default; ``--master spark://…`` (or ``spark-submit``) runs it on a
cluster, whose Python workers need this project installed. Medications are broadcast to the
executors (their count is the export's product catalogue, not its population). Executors' Python
workers are forked from a prepared daemon (:mod:`sweep.spark_daemon`). Needs PySpark
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

from . import records, worker
from .local import PARTITION_BYTES, ReadStats, _summary, input_bytes
from .output import write_summary, write_worklist
from .partitions import LINES, MEDICATIONS, REJECTED, STATS, medication_lines, split_file, sweep_partition
from .progress import Progress

ROOT = Path(__file__).resolve().parent.parent
#: JVM options of an embedded (``local[…]``) driver: a short-lived batch JVM starts faster with
#: the serial collector and class-data sharing (no effect on results).
LOCAL_JVM_OPTIONS = "-XX:+UseSerialGC -Xshare:auto -XX:TieredStopAtLevel=1"


def _split(task: tuple[int, str, str], partitions: int, today: date, zone: str) -> Iterator[tuple[Any, ...]]:
    """One file's blocks as ``(kind, partition, file, block number, data)``."""
    index, path, name = task
    worker.prepare()
    for seq, (kind, part, data) in enumerate(split_file(index, Path(path), name, partitions, today,
                                                        ZoneInfo(zone))):
        yield kind, part, index, seq, data


def _sweep(items: Iterator[tuple[int, tuple[int, int, bytes]]], medications: Any, now: datetime,
           thresholds: Thresholds) -> Iterator[tuple[str, Any]]:
    """Per Spark partition (one sweep partition): its blocks in file order through
    :func:`sweep_partition`; its rows, its failed patients, then its counts."""
    worker.prepare()
    blocks = [data for _, (_, _, data) in sorted(items, key=lambda kv: (kv[1][0], kv[1][1]))]
    result = sweep_partition(blocks, medications.value.get, now, thresholds)
    for key in result.failed:
        yield "failed", key
    for row in result.rows:
        yield "row", row
    yield "counts", dict(result.counts)


def session(master: str = "local[*]") -> Any:
    """A SparkSession whose Python workers run this interpreter, find this project and are forked
    from a prepared daemon."""
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    path = os.environ.get("PYTHONPATH", "")
    if str(ROOT) not in path.split(os.pathsep):
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), path) if p)
    builder = (SparkSession.builder.master(master).appName("bone-cds-sweep")
               .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
               .config("spark.executorEnv.PYTHONPATH", os.environ["PYTHONPATH"])
               .config("spark.python.daemon.module", "sweep.spark_daemon"))
    if master.startswith("local"):
        builder = builder.config("spark.driver.extraJavaOptions", LOCAL_JVM_OPTIONS)
    return builder.getOrCreate()


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
    n = partitions or max(2 * sc.defaultParallelism, min(256, input_bytes(files) // PARTITION_BYTES + 1))
    progress.reading(len(tasks))
    from pyspark import StorageLevel
    blocks = (sc.parallelize(tasks, max(1, len(tasks)))
              .flatMap(lambda t: _split(t, n, today, zone)).persist(StorageLevel.MEMORY_AND_DISK))
    side = sorted(blocks.filter(lambda b: b[0] != LINES).map(lambda b: (b[2], b[3], b[0], b[4])).collect(),
                  key=lambda b: (b[0], b[1]))
    per_file = [b[3] for b in side if b[2] == STATS]
    for f in per_file:
        progress.file(f.name)
        progress.lines(f.lines)
    first: dict[str, tuple[bool, bytes]] = {}
    with (out_dir / "rejected.ndjson").open("wb") as out:
        for _, _, kind, data in side:
            if kind == REJECTED:
                out.write(data)
            elif kind == MEDICATIONS:
                for rid, candidate, raw in medication_lines(data):
                    first.setdefault(rid, (candidate, raw))
    medications = sc.broadcast(first)
    progress.evaluating(n)
    results = (blocks.filter(lambda b: b[0] == LINES).map(lambda b: (b[1], (b[2], b[3], b[4])))
               .partitionBy(n, lambda part: part)
               .mapPartitions(lambda items: _sweep(items, medications, now, thresholds)).collect())
    blocks.unpersist()
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
