"""Hook latency under a feedback flood (issue 12 "Feedback under load"):
``python -m bench.feedback_flood [--calls 80] [--flooders 2] [--batch 1000] [--feedback-process auto]
[--quick]``; ``--cpu 40``: where a batch's CPU goes (worker or feedback child) instead.

A real ``bone-cds serve`` (gunicorn, uvicorn workers, ``--workers 2 --threads 4`` like
``./scripts/serve``) on a free 127.0.0.1 port with a temporary data directory (SQLite store). One
client makes one-card patient-view calls one after another (the typical patient, a new patient
each call: first sight), timed in ``--rounds`` alternating phases: with nothing else running
(idle), then while ``--flooders`` clients post ``--batch``-item feedback batches continuously (new card ids each batch, so every
item is a real insert). Prints idle and flood p50/p95, the ratio of the p95s (budget: flood p95
≤ 2× idle p95) and how much feedback was stored meanwhile. ``--feedback-process`` sets the
server's ``BONE_CDS_FEEDBACK_PROCESS`` (``off``: batches stored in the worker's threads, as
before the feedback process; ``auto``, the default, is on under ``bone-cds serve``).

Client and server share the machine's cores: the flood also costs CPU (decoding and validating
1,000 items), so the ratio measures the lock *and* the CPU contention. Figures on a loaded machine
are indicative; the ratio is measured within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any, Sequence

import requests

from .servers import bone_cds, group_processes, temp_dir
from .stats import summary_ms
from .workload import DEFAULT_ANCHOR, DEFAULT_SEED, build_workloads

HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}
#: The budget of issue 12: hook p95 under the flood within this factor of idle.
BUDGET = 2.0


def feedback_batch(n: int, batch_no: int, client: int) -> bytes:
    """``n`` distinct overridden-with-reason feedback entries for card ids never issued."""
    entries = [{"card": f"flood-{client}-{batch_no}-{i}", "outcome": "overridden",
                "outcomeTimestamp": "2026-11-23T15:05:00Z",
                "overrideReason": {"reason": {"system": "http://example.org/reasons", "code": "not-relevant"},
                                   "userComment": "benchmark"}} for i in range(n)]
    return json.dumps({"feedback": entries}, separators=(",", ":")).encode()


class Flood:
    """``clients`` threads posting feedback batches until :meth:`stop`."""

    def __init__(self, url: str, clients: int, batch: int) -> None:
        self.url, self.batch = url, batch
        self.stop_event = threading.Event()
        self.running = threading.Event()            # set: post; clear: wait (an idle phase)
        self.in_flight = 0
        self.lock = threading.Lock()
        self.posts = self.items = self.errors = 0
        self.latencies: list[float] = []
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(clients)]
        # bodies made up front (the client's own CPU is not part of the flood it measures)
        self.bodies = [[feedback_batch(batch, b, i) for b in range(4)] for i in range(clients)]

    def _run(self, client: int) -> None:
        session = requests.Session()
        n = 0
        while not self.stop_event.is_set():
            if not self.running.wait(0.1):
                continue
            with self.lock:
                self.in_flight += 1
            # a new run of card ids for every post: swap the batch number in the ids
            body = self.bodies[client][n % 4].replace(
                f"flood-{client}-{n % 4}-".encode(), f"flood-{client}-r{n}-".encode())
            n += 1
            t0 = time.perf_counter()
            try:
                r = session.post(self.url, data=body, headers=HEADERS, timeout=120)
                ok = r.status_code == 200
                stored = r.json().get("stored", 0) if ok else 0
            except requests.RequestException:
                ok, stored = False, 0
            with self.lock:
                self.posts += 1
                self.items += stored
                self.errors += 0 if ok else 1
                self.latencies.append(time.perf_counter() - t0)
                self.in_flight -= 1

    def pause(self) -> None:
        """Stop posting and wait until the posts in flight are answered (an idle phase)."""
        self.running.clear()
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            with self.lock:
                if self.in_flight == 0:
                    return
            time.sleep(0.01)

    def resume(self) -> None:
        """Post again, and return once every client has had a post answered (the flood is on)."""
        with self.lock:
            start = self.posts
        self.running.set()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with self.lock:
                if self.posts - start >= len(self.threads):
                    return
            time.sleep(0.01)

    def __enter__(self) -> "Flood":
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop_event.set()
        self.running.set()
        for t in self.threads:
            t.join(150)


def timed_calls(url: str, next_body: Any, calls: int) -> tuple[list[float], int]:
    """Latencies (s) of ``calls`` sequential hook calls, and how many did not answer 200."""
    session, out, bad = requests.Session(), [], 0
    bodies = [next_body() for _ in range(calls)]
    for body in bodies:
        t0 = time.perf_counter()
        r = session.post(url, data=body, headers=HEADERS, timeout=120)
        out.append(time.perf_counter() - t0)
        if r.status_code != 200 or len(r.json().get("cards", [])) != 1:
            bad += 1
    return out, bad


def run(calls: int, flooders: int, batch: int, workers: int, threads: int, rounds: int = 3,
        feedback_process: str = "auto") -> dict[str, Any]:
    (w,) = build_workloads(DEFAULT_SEED, DEFAULT_ANCHOR, patients=["typical"], hooks=["patient-view"])
    with temp_dir() as tmp:
        tmp_path = Path(tmp)
        (tmp_path / "data").mkdir()
        with bone_cds(tmp_path, tmp_path / "data", workers, threads,
                      {"BONE_CDS_FEEDBACK_PROCESS": feedback_process}) as server:
            hook_url = f"{server.base_url}/cds-services/{w.service_id}"
            fb_url = f"{server.base_url}/cds-services/{w.service_id}/feedback"
            next_body = w.new_patients()
            timed_calls(hook_url, next_body, 2 * workers * threads)          # warm-up
            idle: list[float] = []
            flooded: list[float] = []
            bad = items_during = 0
            wall = 0.0
            per_round = max(1, calls // rounds)
            with Flood(fb_url, flooders, batch) as flood:
                for _ in range(rounds):        # idle and flood phases alternate (drift in load is shared)
                    flood.pause()
                    got, n_bad = timed_calls(hook_url, next_body, per_round)
                    idle += got
                    bad += n_bad
                    flood.resume()
                    with flood.lock:
                        items_before = flood.items
                    t0 = time.perf_counter()
                    got, n_bad = timed_calls(hook_url, next_body, per_round)
                    wall += time.perf_counter() - t0
                    flooded += got
                    bad += n_bad
                    with flood.lock:
                        items_during += flood.items - items_before
            load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    i, f = summary_ms(idle), summary_ms(flooded)
    return {"workload": w.name, "calls": calls, "flooders": flooders, "batch": batch,
            "workers": workers, "threads": threads, "feedback_process": feedback_process, "idle_ms": i, "flood_ms": f,
            "ratio_p95": f["p95"] / i["p95"], "ratio_median": f["median"] / i["median"],
            "rounds": rounds, "budget": BUDGET, "bad_answers": bad,
            "feedback": {"posts": flood.posts, "errors": flood.errors,
                         "items_stored_during_timed_calls": items_during,
                         "items_per_s": items_during / wall if wall > 0 else 0.0,
                         "post_ms": summary_ms(flood.latencies)},
            "load_average_1m": load}


def _group_cpu(pgid: int) -> dict[int, tuple[str, float]]:
    """Process id → (role, CPU seconds) of the server's process group, from ``/proc`` (Linux):
    ``master``, ``worker`` (gunicorn's), ``child`` (a worker's feedback process) or ``other``."""
    out: dict[int, tuple[str, float]] = {}
    for pid, (parent, cpu, cmd) in (group_processes(pgid) or {}).items():
        role = ("master" if pid == pgid else "worker" if parent == pgid
                else "child" if b"spawn_main" in cmd and b"resource_tracker" not in cmd else "other")
        out[pid] = (role, cpu)
    return out


def cpu_per_post(posts: int, batch: int, feedback_process: str) -> dict[str, float]:
    """CPU milliseconds per ``batch``-item feedback POST spent by the worker and by its feedback
    child (one worker, ``posts`` POSTs one after another, nothing else sent): where the batch's
    Python runs. Linux only (``/proc``)."""
    (w,) = build_workloads(DEFAULT_SEED, DEFAULT_ANCHOR, patients=["typical"], hooks=["patient-view"])
    with temp_dir() as tmp:
        tmp_path = Path(tmp)
        (tmp_path / "data").mkdir()
        with bone_cds(tmp_path, tmp_path / "data", 1, 4, {"BONE_CDS_FEEDBACK_PROCESS": feedback_process}) as server:
            url = f"{server.base_url}/cds-services/{w.service_id}/feedback"
            bodies = [feedback_batch(batch, b, 9) for b in range(posts + 1)]
            session = requests.Session()
            session.post(url, data=bodies[0], headers=HEADERS, timeout=120)     # warm-up
            pgid = server.proc.pid
            before = _group_cpu(pgid)
            t0 = time.perf_counter()
            for body in bodies[1:]:
                r = session.post(url, data=body, headers=HEADERS, timeout=120)
                if r.status_code != 200:
                    raise RuntimeError(f"feedback POST answered {r.status_code}")
            wall = time.perf_counter() - t0
            after = _group_cpu(pgid)
    spent: dict[str, float] = {}
    for pid, (role, cpu) in after.items():
        spent[role] = spent.get(role, 0.0) + (cpu - before.get(pid, (role, 0.0))[1]) * 1000 / posts
    return {"worker_ms": spent.get("worker", 0.0), "child_ms": spent.get("child", 0.0),
            "wall_ms": wall * 1000 / posts}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.feedback_flood", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=int, default=80, help="timed hook calls per phase")
    p.add_argument("--flooders", type=int, default=2)
    p.add_argument("--batch", type=int, default=1000, help="feedback items per POST (the limit is 1,000)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--rounds", type=int, default=3, help="idle/flood phase pairs (calls are split between them)")
    p.add_argument("--feedback-process", choices=("auto", "on", "off"), default="auto",
                   help="the server's BONE_CDS_FEEDBACK_PROCESS")
    p.add_argument("--quick", action="store_true", help="20 calls per phase, 1 round")
    p.add_argument("--json", type=Path, help="also write the figures there")
    p.add_argument("--cpu", type=int, metavar="POSTS", default=0,
                   help="instead: CPU ms per feedback POST in the worker and in its feedback child "
                        "(one worker, POSTS posts in a row, --feedback-process off and on; Linux)")
    args = p.parse_args(argv)
    if args.cpu:
        for mode in ("off", "on"):
            c = cpu_per_post(args.cpu, args.batch, mode)
            print(f"feedback process {mode:3}: per {args.batch}-item POST, worker {c['worker_ms']:5.1f} ms CPU, "
                  f"feedback child {c['child_ms']:5.1f} ms CPU, wall {c['wall_ms']:5.1f} ms ({args.cpu} posts)")
        return 0
    res = run(20 if args.quick else max(5, args.calls), args.flooders, args.batch, args.workers, args.threads,
              1 if args.quick else max(1, args.rounds), args.feedback_process)
    i, f, fb = res["idle_ms"], res["flood_ms"], res["feedback"]
    verdict = "PASS" if res["ratio_p95"] <= BUDGET else "MISS"
    print(f"hook under a feedback flood ({res['workload']}, first sight; {res['flooders']} clients posting "
          f"{res['batch']}-item batches; {res['workers']} workers x {res['threads']} threads; "
          f"feedback process {res['feedback_process']}; "
          f"load avg {res['load_average_1m']:.2f})")
    print(f"  idle : median {i['median']:7.1f} ms  p95 {i['p95']:7.1f} ms  max {i['max']:7.1f} ms  (n={i['n']})")
    print(f"  flood: median {f['median']:7.1f} ms  p95 {f['p95']:7.1f} ms  max {f['max']:7.1f} ms  (n={f['n']})")
    print(f"  ratio p95 flood/idle {res['ratio_p95']:.2f}x (budget <= {BUDGET:.1f}x: {verdict}); "
          f"median {res['ratio_median']:.2f}x")
    print(f"  feedback meanwhile: {fb['items_stored_during_timed_calls']} items stored "
          f"({fb['items_per_s']:.0f}/s), {fb['posts']} posts, {fb['errors']} errors, "
          f"post p50 {fb['post_ms'].get('median', float('nan')):.0f} ms")
    if res["bad_answers"]:
        print(f"  WARNING: {res['bad_answers']} hook calls did not answer 200 with one card")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
