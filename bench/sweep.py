"""``python -m bench.sweep``: the population sweep on a seeded synthetic export (issue 15).

A population of patients with realistic mixes of records (labs, conditions, procedures, everyday
drugs; about 10% on an antiresorptive: denosumab 60 mg every 6 months, some of them overdue, or
alendronate for years) is written as Bulk Data NDJSON, one type per file, at each size (10k and
100k resources by default; ``--sizes 10000,100000,1000000``). Per size, each in a fresh process:

* **floor**: read every line of every file and ``orjson.loads`` it (the least any sweep does);
* **local**: ``sweep.local.run`` with ``--workers`` processes (default 2), timed after the
  process's one-time start-up (``sweep.worker.prepare``: validators, value sets, prefilter, one
  warm-up evaluation), which is reported apart (``start s``) as the floor's ``import orjson`` is
  not timed either; ``+start`` is the ratio with it added;
* **spark** (``--engines local,spark``): ``sweep.spark.run`` on ``local[N]`` (N = ``--workers``),
  session start included; its ratio to the local engine is reported (target ≤ 3× at 1M).

Reported: seconds, resources/s, patients/s and patients/s per core, the ratio of the sweep's
throughput to the floor's (target ≥ 0.20), peak memory (the main process and the largest worker,
``ru_maxrss``), and the growth of the sweep's time per 10× resources (target ≤ 11×). Figures,
not a test: ``tests/test_bench_sweep.py`` only checks the generator and one small run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson

from .workload import ALENDRONATE, CALCIUM_CARB, CHOLECALCIFEROL, DMAB60, LOINC, RXNORM, SNOMED

ANCHOR = date(2026, 11, 23)
NOW = datetime(2026, 11, 23, 23, 59, 59, tzinfo=timezone.utc)
DEFAULT_SEED = 20261123
#: Everyday drugs (RxNorm) most patients take instead.
OTHER_DRUGS = (("860975", "24 HR metformin hydrochloride 500 MG Extended Release Oral Tablet"),
               ("314076", "lisinopril 10 MG Oral Tablet"), ("617312", "atorvastatin 10 MG Oral Tablet"),
               ("197361", "amlodipine 5 MG Oral Tablet"), ("310965", "ibuprofen 200 MG Oral Tablet"),
               ("198211", "simvastatin 40 MG Oral Tablet"), ("966247", "levothyroxine 0.05 MG Oral Tablet"))
#: Labs: most Observations are vital signs and panels the rules never read.
LABS = (("17861-6", "Calcium [Mass/volume] in Serum or Plasma", "mg/dL", 8.0, 10.4),
        ("62238-1", "GFR/1.73 sq M.predicted [CKD-EPI]", "mL/min/{1.73_m2}", 25, 95),
        ("1751-7", "Albumin [Mass/volume] in Serum or Plasma", "g/dL", 3.2, 4.8),
        ("8867-4", "Heart rate", "/min", 55, 100), ("8480-6", "Systolic blood pressure", "mm[Hg]", 100, 160),
        ("29463-7", "Body weight", "kg", 45, 110), ("4548-4", "Hemoglobin A1c", "%", 4.8, 9.0))
CONDITIONS = (("38341003", "Hypertension"), ("44054006", "Diabetes mellitus type 2"),
              ("64859006", "Osteoporosis"), ("55822004", "Hyperlipidemia"), ("195967001", "Asthma"))


def _ref(pid: str) -> dict[str, str]:
    return {"reference": f"Patient/{pid}"}


def patient_records(rng: random.Random, pid: str) -> list[dict[str, Any]]:
    """One synthetic patient: ~16 resources; about 10% on denosumab or alendronate."""
    out: list[dict[str, Any]] = []
    birth = ANCHOR - timedelta(days=rng.randint(40 * 365, 90 * 365))
    patient = {"resourceType": "Patient", "id": pid, "gender": rng.choice(("female", "male")),
               "birthDate": birth.isoformat(),
               "identifier": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                                                    "code": "MR"}]}, "value": f"MRN{pid[2:]}"}]}
    if rng.random() < 0.02:
        patient["deceasedDateTime"] = (ANCHOR - timedelta(days=rng.randint(1, 900))).isoformat()
    out.append(patient)
    n = 0

    def rid(kind: str) -> str:
        nonlocal n
        n += 1
        return f"{pid}-{kind}{n}"
    for _ in range(rng.randint(4, 12)):
        code, display, unit, lo, hi = rng.choice(LABS)
        d = ANCHOR - timedelta(days=rng.randint(1, 730))
        out.append({"resourceType": "Observation", "id": rid("o"), "status": "final",
                    "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                              "code": "laboratory"}]}],
                    "code": {"coding": [{"system": LOINC, "code": code, "display": display}], "text": display},
                    "subject": _ref(pid), "effectiveDateTime": f"{d.isoformat()}T09:00:00Z",
                    "valueQuantity": {"value": round(rng.uniform(lo, hi), 1), "unit": unit,
                                      "system": "http://unitsofmeasure.org", "code": unit}})
    for code, display in rng.sample(CONDITIONS, rng.randint(1, 3)):
        out.append({"resourceType": "Condition", "id": rid("c"), "subject": _ref(pid),
                    "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                                   "code": "active"}]},
                    "code": {"coding": [{"system": SNOMED, "code": code, "display": display}], "text": display},
                    "onsetDateTime": (ANCHOR - timedelta(days=rng.randint(100, 4000))).isoformat()})
    for code, display in rng.sample(OTHER_DRUGS, rng.randint(1, 4)):
        out.append({"resourceType": "MedicationRequest", "id": rid("m"), "status": "active", "intent": "order",
                    "subject": _ref(pid), "authoredOn": (ANCHOR - timedelta(days=rng.randint(10, 2000))).isoformat(),
                    "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": code, "display": display}],
                                                  "text": display}})
    if rng.random() < 0.5:
        out.append({"resourceType": "Procedure", "id": rid("p"), "status": "completed", "subject": _ref(pid),
                    "code": {"coding": [{"system": SNOMED, "code": "73761001", "display": "Colonoscopy"}]},
                    "performedDateTime": (ANCHOR - timedelta(days=rng.randint(30, 3000))).isoformat()})
    roll = rng.random()
    if roll < 0.07:     # denosumab 60 mg every 6 months; the last dose 1–14 months ago
        last = ANCHOR - timedelta(days=rng.randint(30, 420))
        for k in range(rng.randint(1, 6)):
            d = last - timedelta(days=182 * k)
            out.append({"resourceType": "MedicationAdministration", "id": rid("a"), "status": "completed",
                        "subject": _ref(pid), "effectiveDateTime": f"{d.isoformat()}T10:00:00Z",
                        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": DMAB60[0],
                                                                  "display": DMAB60[1]}], "text": DMAB60[1]},
                        "dosage": {"dose": {"value": 60, "unit": "mg", "system": "http://unitsofmeasure.org",
                                            "code": "mg"}}})
    elif roll < 0.10:   # alendronate, 1–8 years of orders
        start = ANCHOR - timedelta(days=rng.randint(365, 8 * 365))
        out.append({"resourceType": "MedicationRequest", "id": rid("m"), "status": "active", "intent": "order",
                    "subject": _ref(pid), "authoredOn": start.isoformat(),
                    "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": ALENDRONATE[0],
                                                              "display": ALENDRONATE[1]}], "text": ALENDRONATE[1]}})
    if roll < 0.10 or rng.random() < 0.15:
        drug = rng.choice((CALCIUM_CARB, CHOLECALCIFEROL))
        out.append({"resourceType": "MedicationStatement", "id": rid("s"), "status": "active",
                    "subject": _ref(pid), "effectiveDateTime": (ANCHOR - timedelta(days=400)).isoformat(),
                    "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": drug[0], "display": drug[1]}],
                                                  "text": drug[1]}})
    return out


def write_population(dest: Path, resources: int, seed: int = DEFAULT_SEED) -> dict[str, int]:
    """At least ``resources`` resources as ``Type.ndjson`` files in ``dest`` (two files for the
    largest types); returns counts (patients, resources, on antiresorptives)."""
    rng = random.Random(seed)
    dest.mkdir(parents=True, exist_ok=True)
    files: dict[str, Any] = {}
    written = patients = on_ar = 0
    try:
        while written < resources:
            pid = f"p-{patients:07d}"
            recs = patient_records(rng, pid)
            patients += 1
            on_ar += any(r["resourceType"] == "MedicationAdministration" or "alendron" in json.dumps(r)
                         for r in recs if r["resourceType"].startswith("Medication"))
            for r in recs:
                name = r["resourceType"] + ("" if r["resourceType"] != "Observation" or patients % 2 else ".2")
                f = files.get(name)
                if f is None:
                    f = files[name] = (dest / f"{name}.ndjson").open("wb")
                f.write(orjson.dumps(r) + b"\n")
                written += 1
    finally:
        for f in files.values():
            f.close()
    return {"patients": patients, "resources": written, "on_antiresorptive": on_ar}


def _floor(src: Path) -> dict[str, Any]:
    """Every line of every file of the export read (the same files the sweep reads, in the same
    way: binary line iteration) and parsed with ``orjson.loads`` (the sweep's own parser), in one
    process, nothing else: the least any sweep must do (it must parse every line to report the
    malformed ones)."""
    t, c = time.perf_counter(), time.process_time()
    n = 0
    for p in sorted(src.glob("*.ndjson")):
        with p.open("rb") as f:
            for line in f:
                orjson.loads(line)
                n += 1
    return {"seconds": time.perf_counter() - t, "cpu_s": time.process_time() - c, "resources": n}


def _cpu() -> float:
    """CPU seconds of this process and its finished children."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _local(src: Path, out: Path, workers: int) -> dict[str, Any]:
    from sweep import local, worker
    startup = worker.prepare()   # once per process, before the workers fork (reported apart)
    t, c = time.perf_counter(), _cpu()
    summary = local.run(src, out, now=NOW, workers=workers)
    return {"seconds": time.perf_counter() - t, "cpu_s": _cpu() - c, "startup_s": startup,
            "patients": summary["patients_seen"],
            "evaluated": summary["patients_evaluated"], "findings": summary["findings"],
            "resources": summary["resources_read"]}


def _spark(src: Path, out: Path, workers: int) -> dict[str, Any]:
    from sweep import spark
    t = time.perf_counter()
    summary = spark.run(src, out, now=NOW, master=f"local[{workers}]")   # session start included
    return {"seconds": time.perf_counter() - t, "patients": summary["patients_seen"],
            "evaluated": summary["patients_evaluated"], "findings": summary["findings"],
            "resources": summary["resources_read"]}


def measure_one(kind: str, src: Path, workers: int) -> dict[str, Any]:
    """One measurement in this process (called in a fresh subprocess by :func:`measure`)."""
    if kind == "floor":
        result = _floor(src)
    elif kind == "spark":
        with tempfile.TemporaryDirectory() as out:
            result = _spark(src, Path(out), workers)
    else:
        with tempfile.TemporaryDirectory() as out:
            result = _local(src, Path(out), workers)
    result["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["max_worker_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return result


def measure(kind: str, src: Path, workers: int) -> dict[str, Any]:
    code = ("import json, sys; from pathlib import Path; from bench.sweep import measure_one; "
            f"print(json.dumps(measure_one({kind!r}, Path({str(src)!r}), {workers})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parent.parent)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.sweep", description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10000,100000", help="resources per population, comma-separated")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--engines", default="local", help="local, or local,spark")
    ap.add_argument("--repeats", type=int, default=3,
                    help="runs of the floor and of the local engine per size, interleaved; the fastest "
                         "of each is reported (Spark runs once)")
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    results: list[dict[str, Any]] = []
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; workers {args.workers}")
    print(f"{'resources':>10} {'patients':>9} {'eval':>6} {'floor s':>8} {'sweep s':>8} {'cpu s':>6} "
          f"{'start s':>7} {'res/s':>8} {'pat/s/core':>10} {'vs floor':>8} {'+start':>6} {'rss MB':>7} "
          f"{'worker MB':>9} {'growth':>7}")
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        for size in sizes:
            src = Path(tmp) / f"pop-{size}"
            counts = write_population(src, size, args.seed)
            # the fastest of --repeats runs of each, interleaved (one run of ~10 ms at 10k is mostly noise)
            floors, runs = [], []
            for _ in range(max(1, args.repeats)):
                floors.append(measure("floor", src, args.workers))
                runs.append(measure("local", src, args.workers))
            floor = min(floors, key=lambda r: r["seconds"])
            run = min(runs, key=lambda r: r["seconds"])
            ratio = floor["seconds"] / run["seconds"]
            row = {"size": size, **counts, "floor": floor, "local": run, "repeats": len(runs),
                   "floor_seconds_all": [r["seconds"] for r in floors],
                   "local_seconds_all": [r["seconds"] for r in runs],
                   "resources_per_s": run["resources"] / run["seconds"],
                   "patients_per_s_per_core": run["patients"] / run["seconds"] / args.workers,
                   "throughput_vs_floor": ratio,
                   "throughput_vs_floor_with_startup": floor["seconds"] / (run["seconds"] + run["startup_s"])}
            if results:
                prev = results[-1]
                row["growth"] = (run["seconds"] / prev["local"]["seconds"]) / (size / prev["size"]) * 10
            if "spark" in args.engines.split(","):
                row["spark"] = measure("spark", src, args.workers)
                row["spark_vs_local"] = row["spark"]["seconds"] / run["seconds"]
                assert row["spark"]["findings"] == run["findings"], "engines disagree"
            results.append(row)
            print(f"{size:>10,} {counts['patients']:>9,} {run['evaluated']:>6,} {floor['seconds']:>8.2f} "
                  f"{run['seconds']:>8.2f} {run['cpu_s']:>6.2f} {run['startup_s']:>7.2f} "
                  f"{row['resources_per_s']:>8,.0f} {row['patients_per_s_per_core']:>10,.0f} "
                  f"{ratio:>8.2f} {row['throughput_vs_floor_with_startup']:>6.2f} "
                  f"{run['max_rss_mb']:>7.0f} {run['max_worker_rss_mb']:>9.0f} "
                  f"{row.get('growth', float('nan')):>6.1f}x"
                  + (f"  spark {row['spark']['seconds']:.2f}s = {row['spark_vs_local']:.1f}x local"
                     if "spark" in row else ""), flush=True)
    print("targets: throughput >= 0.20 of the floor; growth <= 11x per 10x; memory flat with size; "
          "spark <= 3x local at 1M")
    print(f"floor s and sweep s: the fastest of {args.repeats} runs each, interleaved, each in a fresh process")
    print("vs floor = floor s / sweep s (the floor: one process; the sweep: --workers processes); "
          "+start: the same with the sweep's one-time start-up (start s: sweep.worker.prepare) added; "
          "cpu s: the sweep's CPU time, main process and workers")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
