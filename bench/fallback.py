"""The fallback path: no prefetch, every key read from a (stub) FHIR server that takes ``delay``
seconds per read. Shows whether the reads run in parallel: the hook's total time is compared to one
read's delay and to the slowest single read measured alone (same session, sequentially).
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from cds_service import jsonio
from cds_service.chart.verdicts import VerdictCache
from cds_service.pipeline import evaluate_hook
from cds_service.prefetch import FetchSettings, normalise_base_url, render_template
from cds_service.request import parse_hook_request
from hooks.services import service_by_id

from .inprocess import FIRST_SIGHT
from .stats import summary_ms
from .workload import Workload


def app_session() -> requests.Session:
    """A session pooled like the app's ``HTTP_SESSION`` (cds_service/app.py)."""
    s = requests.Session()
    adapter = HTTPAdapter(pool_connections=8, pool_maxsize=16, max_retries=0)
    s.mount("https://", adapter)
    s.mount("http://", adapter)
    return s


def single_reads(workload: Workload, fhir_base: str, session: requests.Session, reps: int) -> dict[str, list[float]]:
    """Each prefetch key's read alone (GET + JSON decode), ``reps`` times, sequentially: key -> seconds."""
    service = service_by_id(workload.service_id)
    assert service is not None
    req = parse_hook_request(json.loads(workload.no_prefetch_body(fhir_base)), service.hook)
    out: dict[str, list[float]] = {}
    for _ in range(max(1, reps)):
        for key, template in service.prefetch.items():
            path = render_template(template, req)
            t0 = time.perf_counter()
            resp = session.get(f"{fhir_base}/{path}", headers={"Accept": "application/fhir+json",
                                                              "Authorization": "Bearer bench-token"}, timeout=10)
            jsonio.loads(resp.content)   # as the service decodes a FHIR answer
            out.setdefault(key, []).append(time.perf_counter() - t0)
            if resp.status_code != 200:
                raise RuntimeError(f"stub FHIR server answered {resp.status_code} for key {key}")
    return out


def measure(workload: Workload, fhir_base: str, delay: float, now: datetime, *, iterations: int,
            warmup: int, time_limit: float, read_reps: int, mode: str = FIRST_SIGHT) -> dict[str, Any]:
    """The hook with every key read from the stub; ``mode`` as in :func:`bench.inprocess.measure`."""
    verdicts = VerdictCache()
    service = service_by_id(workload.service_id)
    assert service is not None
    fetch = FetchSettings(allowed_servers=(normalise_base_url(fhir_base) or fhir_base,))
    body = workload.no_prefetch_body(fhir_base)
    with app_session() as session:
        reads = single_reads(workload, fhir_base, session, read_reps)
        per_key = {k: summary_ms(v)["median"] for k, v in reads.items()}
        totals: list[float] = []
        prefetch: list[float] = []
        chart: list[float] = []
        statuses: dict[str, str] = {}
        for _ in range(max(0, warmup)):
            evaluate_hook(service, jsonio.loads(body), now=now, fetch=fetch, session=session, verdicts=verdicts)
        started = time.monotonic()
        for i in range(max(1, iterations)):
            if i >= 3 and time.monotonic() - started > time_limit:
                break
            if mode == FIRST_SIGHT:
                verdicts.clear()
            t0 = time.perf_counter()
            outcome = evaluate_hook(service, jsonio.loads(body), now=now, fetch=fetch, session=session,
                                    verdicts=verdicts)
            totals.append(time.perf_counter() - t0)
            prefetch.append(outcome.timings.get("prefetch", 0.0))
            chart.append(outcome.timings.get("chart", 0.0))
            statuses = outcome.prefetch
    total = summary_ms(totals)
    slowest_key = max(per_key, key=per_key.__getitem__)
    slowest = per_key[slowest_key]
    sequential = sum(per_key.values())
    return {
        "keys": len(per_key), "delay_ms": delay * 1000, "single_read_median_ms": per_key,
        "slowest_read_key": slowest_key, "slowest_read_ms": slowest, "sequential_sum_ms": sequential,
        "prefetch_ms": summary_ms(prefetch), "chart_ms": summary_ms(chart), "total_ms": total,
        "total_over_delay": total["median"] / (delay * 1000),
        "total_over_slowest_read": total["median"] / slowest,
        "prefetch_over_slowest_read": summary_ms(prefetch)["median"] / slowest,
        "parallel_speedup": sequential / summary_ms(prefetch)["median"],
        "all_fetched": all(v == "fetched" for v in statuses.values()) and len(statuses) == len(per_key),
        "prefetch_status": statuses, "iterations": len(totals), "mode": mode,
    }
