"""In-process figures: one hook call as the HTTP route runs it, minus Flask and the socket.

Per iteration: ``cds_service.jsonio.loads`` of the request bytes (``decode``, as the route does), :func:`evaluate_hook` with its own
per-stage timings (``parse`` = parse_hook_request, ``drafts`` = the drafts-only chart of the order
hooks, ``prefetch`` = gather, ``chart`` = build_chart, ``rules``, ``serialise`` = Card.to_json), then
``json.dumps`` of the response (``encode``, as ``api.json_response`` does). ``hook`` is the wall time
of evaluate_hook, ``total`` = decode + hook + encode, and ``cpu`` the CPU time this thread spent
on the whole call (``time.thread_time``): on a machine shared with other work, ``cpu`` is the
intrinsic cost and ``total - cpu`` the time spent waiting for a core.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

from cds_service import jsonio
from cds_service.chart.verdicts import VerdictCache
from cds_service.pipeline import evaluate_hook
from hooks.services import service_by_id

from .stats import summary_ms
from .workload import Workload

#: the two states of the service's R4B verdict cache (``cds_service/chart/verdicts.py``) measured
FIRST_SIGHT, REPEAT = "first-sight", "repeat"
MODES = (FIRST_SIGHT, REPEAT)

STAGES = ("decode", "parse", "drafts", "prefetch", "chart", "rules", "serialise", "encode", "hook", "total", "cpu")


def run_once(workload: Workload, now: datetime,
             verdicts: VerdictCache | None = None) -> tuple[dict[str, float], dict[str, Any]]:
    """One call; (stage -> seconds, response). Raises ApiError like the route would turn into 4xx."""
    service = service_by_id(workload.service_id)
    assert service is not None, workload.service_id
    c0 = time.thread_time()
    t0 = time.perf_counter()
    body = jsonio.loads(workload.body)
    t1 = time.perf_counter()
    outcome = evaluate_hook(service, body, now=now, verdicts=verdicts)
    t2 = time.perf_counter()
    json.dumps(outcome.response, separators=(",", ":"), ensure_ascii=False)
    t3 = time.perf_counter()
    c3 = time.thread_time()
    stages = {"decode": t1 - t0, **outcome.timings, "encode": t3 - t2, "hook": t2 - t1, "total": t3 - t0,
              "cpu": c3 - c0}
    return stages, outcome.response


def measure(workload: Workload, now: datetime, *, iterations: int, warmup: int,
            time_limit: float, min_iterations: int = 5, mode: str = FIRST_SIGHT) -> dict[str, Any]:
    """Median/p95/... per stage over up to ``iterations`` calls, stopping after ``time_limit`` seconds
    (but never before ``min_iterations`` measured calls, each of which is itself bounded).

    ``mode``: :data:`FIRST_SIGHT` empties the service's verdict cache before every call (the first
    call on a patient: every resource validated); :data:`REPEAT` keeps it (the same patient again,
    as in patient-view → order-select → order-sign)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    verdicts = VerdictCache()
    samples: dict[str, list[float]] = {s: [] for s in STAGES}
    response: dict[str, Any] = {}
    for _ in range(max(0, warmup)):
        run_once(workload, now, verdicts)
    started = time.monotonic()
    for i in range(max(1, iterations)):
        if i >= min_iterations and time.monotonic() - started > time_limit:
            break
        if mode == FIRST_SIGHT:
            verdicts.clear()
        stages, response = run_once(workload, now, verdicts)
        for name, seconds in stages.items():
            samples.setdefault(name, []).append(seconds)
    return {"stages": {name: summary_ms(v) for name, v in samples.items() if v},
            "mode": mode, "iterations": len(samples["total"]), "elapsed_s": time.monotonic() - started,
            "cards": len(response.get("cards", [])),
            "fired": [c.get("source", {}).get("topic", {}).get("code") for c in response.get("cards", [])]}
