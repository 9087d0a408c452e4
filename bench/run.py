"""``python -m bench``: figures for issue "Speed" — in process, over HTTP against ``bone-cds serve``
(with a floor server measured in the same run), and the FHIR-server fallback path.

Prints a table with the budget (PASS/MISS) and writes ``bench/results/<timestamp>.json`` (and
``--json PATH``). ``--quick`` runs few iterations (CI smoke); ``--no-http`` skips the gunicorn
servers. Every loop is bounded in count and time; every server listens on 127.0.0.1 only and is
stopped at the end, on Ctrl-C and on error.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import date, datetime, time as dtime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Sequence

import requests

from . import fallback, inprocess, load, scale, servers
from .stats import summary_ms
from .workload import DEFAULT_SEED, HOOKS, Workload, build_workloads, resources_by_type, searchset

RESULTS_DIR = Path(__file__).resolve().parent / "results"

# ------------------------------------------------------------------ the budget (issue "Speed")
BUDGET_HEAVY_P95_MS = 25.0        # full prefetch, heavy patient, in process, p95 (issue 11 "Speed budgets")
BUDGET_TYPICAL_P95_MS = 10.0      # full prefetch, typical patient, in process, p95
BUDGET_HTTP_FLOOR_RATIO = 3.0     # typical patient over HTTP: median latency <= 3x the floor's
BUDGET_HTTP_HEAVY_FLOOR_RATIO = 2.5   # heavy patient over HTTP: median latency <= 2.5x the floor's (issue 11)
BUDGET_FALLBACK_RATIO = 1.5       # fallback: total <= 1.5x the slowest single read


@dataclass(frozen=True)
class Plan:
    iterations: int
    warmup: int
    time_per_case: float
    requests_typical: int
    requests_heavy: int
    http_time_limit: float
    fallback_iterations: int
    read_reps: int


FULL = Plan(iterations=200, warmup=5, time_per_case=20.0, requests_typical=300, requests_heavy=120,
            http_time_limit=30.0, fallback_iterations=30, read_reps=5)
QUICK = Plan(iterations=5, warmup=1, time_per_case=5.0, requests_typical=24, requests_heavy=16,
             http_time_limit=10.0, fallback_iterations=3, read_reps=1)


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def _f(v: float | None, digits: int = 1) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _load(out: dict[str, Any], when: str) -> None:
    """Record the 1-minute load average (other work on the machine inflates the figures)."""
    try:
        out.setdefault("load_average_1min", {})[when] = round(os.getloadavg()[0], 2)
    except OSError:
        pass


def _meta(args: argparse.Namespace, anchor: date, plan: Plan) -> dict[str, Any]:
    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                                cwd=Path(__file__).resolve().parent).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "seed": args.seed,
            "anchor": anchor.isoformat(), "quick": args.quick, "python": sys.version.split()[0],
            "platform": platform.platform(), "cpu_count": os.cpu_count(), "commit": commit,
            "versions": {d: version(d) for d in ("fhir.resources", "pydantic", "flask", "gunicorn", "requests")},
            "plan": plan.__dict__, "workers": args.workers, "threads": args.threads,
            "concurrency": args.concurrency, "fallback_delay_ms": args.delay_ms}


# ------------------------------------------------------------------ sections


def _key(name: str, mode: str) -> str:
    """Result key of a workload measured in ``mode`` (first sight: the plain name, as before)."""
    return name if mode == inprocess.FIRST_SIGHT else f"{name} ({mode})"


def section_inprocess(workloads: list[Workload], now: datetime, plan: Plan, out: dict[str, Any],
                      say: Callable[[str], None]) -> None:
    cold_t0 = time.perf_counter()
    inprocess.run_once(workloads[0], now)          # first call in this process: model imports etc.
    out["cold_first_call_ms"] = {"workload": workloads[0].name, "ms": (time.perf_counter() - cold_t0) * 1000}
    # as `bone-cds serve` does before forking its workers: warm up, then freeze the GC
    from cds_service.warmup import warm_up
    out["warm_up_ms"] = warm_up() * 1000
    res: dict[str, Any] = {}
    out["in_process"] = res
    for mode in inprocess.MODES:
        for w in workloads:
            say(f"  in process ({mode}): {w.name} ...")
            r = inprocess.measure(w, now, iterations=plan.iterations, warmup=plan.warmup,
                                  time_limit=plan.time_per_case, mode=mode)
            limit = BUDGET_HEAVY_P95_MS if w.patient == "heavy" else BUDGET_TYPICAL_P95_MS
            p95 = r["stages"]["total"]["p95"]
            r["budget"] = {"p95_limit_ms": limit, "p95_ms": p95, "pass": p95 < limit}
            res[_key(w.name, mode)] = r


def section_fallback(workloads: list[Workload], now: datetime, plan: Plan, delay: float, out: dict[str, Any],
                     say: Callable[[str], None]) -> None:
    res: dict[str, Any] = {}
    out["fallback"] = res
    with servers.StubFhir(delay) as stub:
        seen = set()
        for w in workloads:
            if w.pid not in seen:
                stub.add_patient(w.pid, resources_by_type(w.resources), searchset)
                seen.add(w.pid)
        for mode in inprocess.MODES:
            for w in workloads:
                say(f"  fallback ({mode}): {w.name} ...")
                r = fallback.measure(w, stub.base_url, delay, now, iterations=plan.fallback_iterations,
                                     warmup=1, time_limit=plan.time_per_case, read_reps=plan.read_reps,
                                     mode=mode)
                r["budget"] = {"limit_ratio": BUDGET_FALLBACK_RATIO, "ratio": r["total_over_slowest_read"],
                               "pass": r["all_fetched"] and r["total_over_slowest_read"] <= BUDGET_FALLBACK_RATIO}
                res[_key(w.name, mode)] = r
        out["fallback_stub_reads"] = len(stub.reads)


def section_http(workloads: list[Workload], plan: Plan, args: argparse.Namespace, out: dict[str, Any],
                 say: Callable[[str], None]) -> None:
    rows: list[dict[str, Any]] = []
    out["http"] = rows
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(servers.temp_dir()))
        (tmp / "data").mkdir()
        say("  starting bone-cds serve and the floor (gunicorn, 127.0.0.1) ...")
        ours = stack.enter_context(servers.bone_cds(tmp, tmp / "data", args.workers, args.threads))
        floor = stack.enter_context(servers.floor(tmp, tmp / "data", args.workers, args.threads))
        out["http_servers"] = {"bone-cds": ours.base_url, "floor": floor.base_url,
                               "workers": args.workers, "threads": args.threads}
        for w in workloads:
            # one checked call first: the service must answer 200 with cards, else the figures mean nothing
            probe = requests.post(f"{ours.base_url}/cds-services/{w.service_id}", data=w.body,
                                  headers=load.HEADERS, timeout=60)
            if probe.status_code != 200 or not isinstance(probe.json().get("cards"), list):
                raise RuntimeError(f"{w.name}: bone-cds answered {probe.status_code}: {probe.text[:300]}")
            n = plan.requests_heavy if w.patient == "heavy" else plan.requests_typical
            for mode, c in ((m, c) for m in inprocess.MODES for c in args.concurrency):
                say(f"  http ({mode}): {w.name} c={c} ({n} requests each: floor, bone-cds) ...")
                # first sight: every request is a new patient (nothing cached); repeat: the same one
                bodies = w.new_patients() if mode == inprocess.FIRST_SIGHT else w.body
                f_cpu0 = floor.cpu_seconds()
                f = load.run(f"{floor.base_url}/cds-services/{w.service_id}", bodies, concurrency=c,
                             requests_total=n, time_limit=plan.http_time_limit)
                f_cpu = _cpu_per_request(f_cpu0, floor.cpu_seconds(), f)
                offset = ours.log_offset()
                o_cpu0 = ours.cpu_seconds()
                o = load.run(f"{ours.base_url}/cds-services/{w.service_id}", bodies, concurrency=c,
                             requests_total=n, time_limit=plan.http_time_limit)
                o_cpu = _cpu_per_request(o_cpu0, ours.cpu_seconds(), o)
                fs, os_ = f.summary(), o.summary()
                os_["server_ms"] = _server_ms(ours.log_lines_since(offset))
                fs["server_cpu_ms_per_request"], os_["server_cpu_ms_per_request"] = f_cpu, o_cpu
                ratio = os_["latency_ms"].get("median", float("nan")) / fs["latency_ms"].get("median", float("nan")) \
                    if fs["ok"] and os_["ok"] else float("nan")
                row = {"workload": w.name, "patient": w.patient, "hook": w.hook, "concurrency": c, "mode": mode,
                       "bone_cds": os_, "floor": fs, "median_ratio": ratio,
                       "cpu_ratio": o_cpu / f_cpu if o_cpu and f_cpu else None}
                limit = BUDGET_HTTP_HEAVY_FLOOR_RATIO if w.patient == "heavy" else BUDGET_HTTP_FLOOR_RATIO
                row["budget"] = {"limit_ratio": limit, "pass": bool(ratio <= limit) and os_["errors"] == 0}
                rows.append(row)
        problems = [line for line in ours.log_lines_since(0)
                    if '"hook answered"' not in line and ('"level": "INFO"' not in line)
                    and ("[INFO]" not in line)]
        out["server_log_problems"] = problems[:30]
        out["server_log_tail"] = ours.log_tail(5)


def _cpu_per_request(before: float | None, after: float | None, result: load.LoadResult) -> float | None:
    """The server's CPU milliseconds per completed request over one load run (warm-up calls
    included in the count, as they are in the CPU), or None where /proc is unavailable."""
    done = len(result.latencies) + result.errors + result.warmup_calls
    if before is None or after is None or done <= 0:
        return None
    return (after - before) * 1000 / done


def _server_ms(lines: list[str]) -> dict[str, float]:
    """The service's own per-call duration (the ``ms`` of its "hook answered" log line: evaluate_hook,
    the feedback bookkeeping and the log call, without the body's transfer and decode)."""
    values = []
    for line in lines:
        if '"hook answered"' not in line:
            continue
        try:
            values.append(float(json.loads(line)["ms"]) / 1000.0)
        except (ValueError, KeyError, TypeError):
            continue
    return summary_ms(values)


def _cpu_jiffies() -> tuple[int, int] | None:
    """(busy, total) CPU jiffies of the whole machine, from /proc/stat (None where unavailable)."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            fields = [int(x) for x in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields) - idle, sum(fields)


def machine_busy(seconds: float) -> float | None:
    """Share (0..1) of all CPUs busy over the next ``seconds``."""
    a = _cpu_jiffies()
    time.sleep(seconds)
    b = _cpu_jiffies()
    if a is None or b is None or b[1] == a[1]:
        return None
    return (b[0] - a[0]) / (b[1] - a[1])


def wait_idle(limit: float, say: Callable[[str], None], threshold: float = 0.15) -> dict[str, Any]:
    """Wait (at most ``limit`` seconds) for a 2-second window with the machine < ``threshold`` busy."""
    started = time.monotonic()
    busy = machine_busy(0.5)
    while busy is not None and busy >= threshold and time.monotonic() - started < limit:
        say(f"  waiting for an idle machine: {busy * 100:.0f}% busy ({time.monotonic() - started:.0f}/{limit:.0f} s)")
        busy = machine_busy(2.0)
    return {"waited_s": round(time.monotonic() - started, 1), "busy_pct": None if busy is None else round(busy * 100),
            "idle": busy is not None and busy < threshold}


# ------------------------------------------------------------------ report


def table(out: dict[str, Any]) -> str:
    lines: list[str] = []
    meta = out["meta"]
    lines.append(f"bone-safety-cds benchmark  seed={meta['seed']} anchor={meta['anchor']} "
                 f"python={meta['python']} cpus={meta['cpu_count']} fhir.resources={meta['versions']['fhir.resources']}"
                 f"{'  (QUICK)' if meta['quick'] else ''}")
    load_avg = out.get("load_average_1min")
    busy = out.get("machine_busy_pct")
    if load_avg:
        cpus = meta.get("cpu_count") or 1
        lines.append("Machine: 1-min load average before " + ", ".join(f"{k} {v:.2f}" for k, v in load_avg.items())
                     + ("; all CPUs busy during " + ", ".join(f"{k} {v}%" for k, v in busy.items()) if busy else ""))
        if max(load_avg.values()) > 0.5 * cpus or (busy and busy.get("in_process", 0) > 100 / cpus + 15):
            lines.append(f"  WARNING: other work shared the {cpus} CPUs (in process alone keeps one CPU busy: "
                         f"{100 / cpus:.0f}%); wall-clock figures are inflated, see the cpu column")
    wl = out.get("workloads", {})
    if wl:
        lines.append("")
        lines.append("Workloads (resources in the prefetch; request size)")
        for name, info in wl.items():
            c = info["counts"]
            meds = sum(v for k, v in c.items() if k.startswith("Medication"))
            lines.append(f"  {name:24} Observation {c['Observation']:4}  medication {meds:4}  "
                         f"Condition {c['Condition']:3}  Procedure {c['Procedure']:3}  body {info['bytes'] / 1024:7.1f} KiB")
    if "cold_first_call_ms" in out:
        cold = out["cold_first_call_ms"]
        lines.append("")
        lines.append(f"Cold start: first evaluate_hook in this process ({cold['workload']}): {cold['ms']:.1f} ms")
    ip = out.get("in_process")
    if ip:
        cols = ("decode", "parse", "drafts", "prefetch", "chart", "rules", "serialise", "encode", "total", "cpu")
        lines.append("")
        lines.append("In process, full prefetch (ms; decode/encode = jsonio.loads/json.dumps as the route does; "
                     "total = decode + evaluate_hook + encode;\n  cpu = this thread's CPU time for the whole call: "
                     "total - cpu is time spent waiting for a core, e.g. on a shared machine);\n  first sight = "
                     "the service's R4B verdict cache emptied before every call (a patient seen for the first time: "
                     "every resource validated);\n  (repeat) = the same patient again with the cache warm (as in "
                     "patient-view -> order-select -> order-sign)")
        head = f"  {'workload':31} {'':4}" + "".join(f"{c:>10}" for c in cols) + f"{'n':>6}   budget"
        lines.append(head)
        lines.append("  " + "-" * (len(head) - 2))
        for name, r in ip.items():
            st = r["stages"]
            b = r["budget"]
            for stat in ("median", "p95"):
                cells = "".join(f"{_f(st[c][stat], 2) if c in st else '-':>10}" for c in cols)
                tail = f"{r['iterations']:>6}" if stat == "median" else " " * 6
                verdict = f"   p95 < {b['p95_limit_ms']:.0f} ms: {_verdict(b['pass'])}" if stat == "p95" else ""
                lines.append(f"  {name if stat == 'median' else '':31} {('med' if stat == 'median' else 'p95'):4}"
                             f"{cells}{tail}{verdict}")
    fb = out.get("fallback")
    if fb:
        lines.append("")
        any_row = next(iter(fb.values()))
        lines.append(f"Fallback path: no prefetch, {any_row['keys']} reads from a stub FHIR server on 127.0.0.1 "
                     f"answering each after {any_row['delay_ms']:.0f} ms (ms; medians unless marked)")
        head = (f"  {'workload':31}{'slowest':>9}{'seq sum':>9}{'prefetch':>10}{'chart':>8}{'total':>8}{'p95':>8}"
                f"{'tot/delay':>11}{'tot/slowest':>13}{'speedup':>9}   budget")
        lines.append(head)
        lines.append("  " + "-" * (len(head) - 2))
        for name, r in fb.items():
            lines.append(f"  {name:31}{r['slowest_read_ms']:9.1f}{r['sequential_sum_ms']:9.1f}"
                         f"{r['prefetch_ms']['median']:10.1f}{r['chart_ms']['median']:8.1f}{r['total_ms']['median']:8.1f}"
                         f"{r['total_ms']['p95']:8.1f}{r['total_over_delay']:10.2f}x{r['total_over_slowest_read']:12.2f}x"
                         f"{r['parallel_speedup']:8.1f}x   <= {BUDGET_FALLBACK_RATIO}x slowest read: "
                         f"{_verdict(r['budget']['pass'])}{'' if r['all_fetched'] else ' (NOT ALL KEYS FETCHED)'}")
        lines.append("  slowest = slowest single read alone (GET + JSON decode, same session); seq sum = the reads one "
                     "after another; speedup = seq sum / prefetch stage")
    http = out.get("http")
    if http:
        srv = out.get("http_servers", {})
        lines.append("")
        lines.append(f"Over HTTP: bone-cds serve vs floor (the same Flask app whose hook route only decodes the JSON and "
                     f"answers {{\"cards\": []}}), both "
                     f"gunicorn gthread {srv.get('workers')} workers x {srv.get('threads')} threads on 127.0.0.1; "
                     f"latency ms, throughput req/s;\n  srv p50 = the service's own median ms per call from its log line (evaluate_hook + "
                     f"feedback bookkeeping, without transfer, body decode and queueing);\n  first sight = every request "
                     f"is a new patient (patient id replaced, nothing cached); (repeat) = the same request again")
        lines.append("  cpu = the server's CPU ms per request (all its processes and threads, from /proc; a busy "
                     "machine inflates it far less than latency), cpu ratio = ours / the floor's")
        head = (f"  {'workload':31}{'conc':>5} |{'p50':>8}{'p95':>8}{'p99':>8}{'req/s':>8}{'err':>4}{'srv p50':>8}{'cpu':>6} |"
                f"{'p50':>7}{'p95':>7}{'p99':>7}{'req/s':>8}{'err':>4}{'cpu':>6} |{'p50 ratio':>10}{'cpu ratio':>10}   budget")
        lines.append(f"  {'':31}{'':5} |{'bone-cds':^50} |{'floor':^39} |")
        lines.append(head)
        lines.append("  " + "-" * (len(head) - 2))
        for r in http:
            o, f = r["bone_cds"], r["floor"]
            ol, fl = o["latency_ms"], f["latency_ms"]
            verdict = (f"   <= {r['budget']['limit_ratio']:g}x floor: {_verdict(r['budget']['pass'])}"
                       if "budget" in r else "")
            name = _key(r["workload"], r.get("mode", inprocess.FIRST_SIGHT))
            lines.append(f"  {name:31}{r['concurrency']:>5} |{_f(ol.get('median')):>8}{_f(ol.get('p95')):>8}"
                         f"{_f(ol.get('p99')):>8}{o['throughput_rps']:8.1f}{o['errors']:>4}"
                         f"{_f(o.get('server_ms', {}).get('median')):>8}{_f(o.get('server_cpu_ms_per_request')):>6} |"
                         f"{_f(fl.get('median')):>7}{_f(fl.get('p95')):>7}{_f(fl.get('p99')):>7}"
                         f"{f['throughput_rps']:8.1f}{f['errors']:>4}{_f(f.get('server_cpu_ms_per_request')):>6} |"
                         f"{r['median_ratio']:9.1f}x{_f(r.get('cpu_ratio')):>9}x{verdict}")
    if out.get("scale"):
        lines.append("")
        lines.append(scale.table(out["scale"]))
    budget = out.get("budget")
    if budget:
        lines.append("")
        lines.append("Budget")
        for b in budget:
            lines.append(f"  {_verdict(b['pass'])}  {b['name']}: {b['detail']}")
    return "\n".join(lines)


def budget_summary(out: dict[str, Any]) -> list[dict[str, Any]]:
    """One PASS/MISS line per budget and cache state (first sight of a patient; repeat call)."""
    items = []
    ip = out.get("in_process") or {}
    for mode in inprocess.MODES:
        for patient, limit in (("heavy", BUDGET_HEAVY_P95_MS), ("typical", BUDGET_TYPICAL_P95_MS)):
            rows = {k: v for k, v in ip.items() if k.startswith(patient + "/") and v.get("mode") == mode}
            if rows:
                worst = max(rows, key=lambda k: rows[k]["budget"]["p95_ms"])
                items.append({"name": f"in process, full prefetch, {patient} patient, {mode}: p95 < {limit:.0f} ms",
                              "mode": mode, "pass": all(v["budget"]["pass"] for v in rows.values()),
                              "detail": f"worst p95 {rows[worst]['budget']['p95_ms']:.1f} ms ({worst})"})
    for mode in inprocess.MODES:
        for patient, limit in (("typical", BUDGET_HTTP_FLOOR_RATIO), ("heavy", BUDGET_HTTP_HEAVY_FLOOR_RATIO)):
            http = [r for r in out.get("http") or [] if "budget" in r and r.get("mode") == mode
                    and r.get("patient", r["workload"].split("/")[0]) == patient]
            if not http:
                continue
            worst = max(http, key=lambda r: r["median_ratio"] if r["median_ratio"] == r["median_ratio"] else 1e9)
            items.append({"name": f"over HTTP, {patient} patient, {mode}: median latency <= "
                                  f"{limit:g}x the floor", "mode": mode,
                          "pass": all(r["budget"]["pass"] for r in http),
                          "detail": f"worst {worst['median_ratio']:.1f}x ({worst['workload']} c={worst['concurrency']}); "
                                    f"best {min(r['median_ratio'] for r in http):.1f}x"})
    fb_all = out.get("fallback") or {}
    for mode in inprocess.MODES:
        fb = {k: v for k, v in fb_all.items() if v.get("mode") == mode}
        if fb:
            worst_name = max(fb, key=lambda k: fb[k]["total_over_slowest_read"])
            w = fb[worst_name]
            items.append({"name": f"fallback, {mode}: total <= {BUDGET_FALLBACK_RATIO}x the slowest single read",
                          "mode": mode, "pass": all(v["budget"]["pass"] for v in fb.values()),
                          "detail": f"worst {w['total_over_slowest_read']:.2f}x ({worst_name}: total "
                                    f"{w['total_ms']['median']:.1f} ms, slowest read {w['slowest_read_ms']:.1f} ms, "
                                    f"of which prefetch {w['prefetch_over_slowest_read']:.2f}x)"})
    if out.get("scale"):
        items += scale.budget(out["scale"])
    return items


# ------------------------------------------------------------------ main


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="few iterations (CI smoke): figures are indicative only")
    p.add_argument("--no-http", action="store_true", help="skip the gunicorn servers (in process and fallback only)")
    p.add_argument("--no-fallback", action="store_true", help="skip the stub-FHIR-server fallback path")
    p.add_argument("--only", metavar="SECTIONS", help="comma-separated sections to run, of "
                   "in_process, fallback, http, scale (default: all)")
    p.add_argument("--json", metavar="PATH", help="also write the results JSON here")
    p.add_argument("--results-dir", metavar="DIR", default=str(RESULTS_DIR),
                   help="where <timestamp>.json goes (default bench/results)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--anchor", help="evaluation day of the workloads, YYYY-MM-DD (default: today, UTC; the "
                                    "HTTP server uses its real clock)")
    p.add_argument("--patients", default="typical,heavy")
    p.add_argument("--hooks", default=",".join(HOOKS))
    p.add_argument("--iterations", type=int, help="in-process iterations per workload (bounded by --time-per-case)")
    p.add_argument("--time-per-case", type=float, help="seconds per in-process/fallback workload at most")
    p.add_argument("--requests", type=int, help="HTTP requests per (workload, concurrency, server)")
    p.add_argument("--concurrency", default="1,4,16")
    p.add_argument("--workers", type=int, default=2, help="gunicorn workers (bone-cds serve's default: 2)")
    p.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker (default: 4)")
    p.add_argument("--delay-ms", type=float, default=50.0, help="stub FHIR server delay per read")
    p.add_argument("--wait-idle", type=float, default=0.0, metavar="SECONDS",
                   help="before each section wait up to SECONDS for the machine to be idle (shared machines)")
    args = p.parse_args(argv)
    args.concurrency = [int(c) for c in str(args.concurrency).split(",") if c.strip()]
    if not args.concurrency or min(args.concurrency) < 1 or max(args.concurrency) > 64:
        p.error("--concurrency: whole numbers 1..64")
    if not (1 <= args.workers <= 16 and 1 <= args.threads <= 32):
        p.error("--workers 1..16, --threads 1..32")
    if not (0 < args.delay_ms <= 2000 and 0 <= args.wait_idle <= 600):
        p.error("--delay-ms 0..2000 (exclusive of 0), --wait-idle 0..600")
    sections = ("in_process", "fallback", "http", "scale")
    args.only = [x.strip() for x in (args.only or ",".join(sections)).split(",") if x.strip()]
    if not args.only or set(args.only) - set(sections):
        p.error("--only: " + ",".join(sections))
    args.patients = [x.strip() for x in args.patients.split(",") if x.strip()]
    args.hooks = [x.strip() for x in args.hooks.split(",") if x.strip()]
    if set(args.patients) - {"typical", "heavy"} or set(args.hooks) - set(HOOKS) or not args.patients or not args.hooks:
        p.error("--patients: typical,heavy; --hooks: " + ",".join(HOOKS))
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    plan = QUICK if args.quick else FULL
    overrides = {}
    if args.iterations:
        overrides["iterations"] = max(1, min(args.iterations, 100_000))
    if args.time_per_case:
        overrides["time_per_case"] = max(0.1, min(args.time_per_case, 600.0))
    if args.requests:
        overrides["requests_typical"] = overrides["requests_heavy"] = max(1, min(args.requests, 100_000))
    plan = Plan(**{**plan.__dict__, **overrides})
    anchor = date.fromisoformat(args.anchor) if args.anchor else datetime.now(timezone.utc).date()
    now = datetime.combine(anchor, dtime(12, 0), tzinfo=timezone.utc)

    def say(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    def on_term(signum: int, frame: Any) -> None:   # SIGTERM: unwind like Ctrl-C, stopping the servers
        raise KeyboardInterrupt
    previous = signal.signal(signal.SIGTERM, on_term)

    out: dict[str, Any] = {"meta": _meta(args, anchor, plan)}
    status = 0
    started = time.monotonic()
    try:
        workloads = build_workloads(args.seed, anchor, patients=args.patients, hooks=args.hooks)
        out["workloads"] = {w.name: {"counts": w.counts(), "bytes": len(w.body)} for w in workloads}
        say(f"bench: {len(workloads)} workloads, seed {args.seed}, anchor {anchor}{' (quick)' if args.quick else ''}")
        def section(name: str, fn: Callable[[], None]) -> None:
            if args.wait_idle > 0:
                out.setdefault("wait_idle", {})[name] = wait_idle(args.wait_idle, say)
            _load(out, name)
            before = _cpu_jiffies()
            try:
                fn()
            finally:
                after = _cpu_jiffies()
                if before and after and after[1] > before[1]:
                    out.setdefault("machine_busy_pct", {})[name] = round(
                        100 * (after[0] - before[0]) / (after[1] - before[1]))

        if "in_process" in args.only:
            section("in_process", lambda: section_inprocess(workloads, now, plan, out, say))
        if not args.no_fallback and "fallback" in args.only:
            section("fallback", lambda: section_fallback(workloads, now, plan, args.delay_ms / 1000.0, out, say))
        if not args.no_http and "http" in args.only:
            section("http", lambda: section_http(workloads, plan, args, out, say))
        if "scale" in args.only:
            sizes = scale.QUICK_SIZES if args.quick else scale.SIZES
            section("scale", lambda: out.__setitem__("scale", scale.run(sizes=sizes, now=now, seed=args.seed,
                                                                       say=say)))
    except KeyboardInterrupt:
        say("bench: interrupted; servers stopped; writing partial results")
        out["interrupted"] = True
        status = 130
    except Exception as exc:  # noqa: BLE001 - report, keep the partial figures
        say(f"bench: failed: {type(exc).__name__}: {exc}")
        out["error"] = f"{type(exc).__name__}: {exc}"
        status = 1
    finally:
        signal.signal(signal.SIGTERM, previous)
    _load(out, "end")
    out["meta"]["elapsed_s"] = round(time.monotonic() - started, 1)
    out["budget"] = budget_summary(out)
    print(table(out))
    text = json.dumps(out, indent=2, default=str)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    paths = [Path(args.results_dir) / f"{stamp}{'-quick' if args.quick else ''}.json"]
    if args.json:
        paths.append(Path(args.json))
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n", encoding="utf-8")
    print(f"\nresults: {', '.join(str(p) for p in paths)}  ({out['meta']['elapsed_s']} s)")
    return status
