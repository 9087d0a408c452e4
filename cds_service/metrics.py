"""``GET /metrics``: Prometheus metrics for operations (issue 16), open like ``/healthz``.

No label holds patient data: routes are URL rules (``/cds-services/<service_id>``), service ids
and rule ids come from this service's own catalog (an unknown id is ``other``), JWT rejection
reasons are the verifier's fixed check names, FHIR read outcomes a fixed set.

Several gunicorn workers: ``bone-cds serve`` sets ``PROMETHEUS_MULTIPROC_DIR`` to
``<data dir>/prometheus`` (emptied at start, a dead worker's files marked by gunicorn's
``child_exit``) before this module is imported, and ``/metrics`` then adds up every worker's
values (prometheus-client's multiprocess mode). Without it (tests, ``flask run``) the values
are the process's own.

Metrics: ``bone_cds_http_requests_total{route,method,status}``,
``bone_cds_hook_duration_seconds{service}`` (histogram), ``bone_cds_cards_total{rule,indicator}``,
``bone_cds_feedback_stored_total{service}``, ``bone_cds_jwt_rejections_total{reason}``,
``bone_cds_fhir_reads_total{outcome}`` (ok, timeout, unauthorized, unavailable, capped),
``bone_cds_validation_cache_total{result}`` (hit, miss),
``bone_cds_cards_suppressed_total{rule,reason}`` (repeats left out).
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, Iterable

from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

from . import prefetch

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
INDICATORS = frozenset({"info", "warning", "critical"})

HTTP_REQUESTS = Counter("bone_cds_http_requests", "HTTP requests answered", ["route", "method", "status"])
HOOK_DURATION = Histogram("bone_cds_hook_duration_seconds", "Hook call latency (request to answer)",
                          ["service"], buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
CARDS = Counter("bone_cds_cards", "Cards issued", ["rule", "indicator"])
SUPPRESSED = Counter("bone_cds_cards_suppressed", "Repeated cards not shown (governance.suppression)",
                     ["rule", "reason"])
FEEDBACK = Counter("bone_cds_feedback_stored", "Feedback items stored", ["service"])
JWT_REJECTIONS = Counter("bone_cds_jwt_rejections", "JWT rejections (401) by failed check", ["reason"])
FHIR_READS = Counter("bone_cds_fhir_reads", "Prefetch keys read from a FHIR server, by outcome", ["outcome"])
VALIDATION_CACHE = Counter("bone_cds_validation_cache", "R4B validation-cache lookups", ["result"])

_lock = threading.Lock()


def _known_services() -> frozenset[str]:
    from hooks.services import services
    return frozenset(s.id for s in services())


def _known_rules() -> frozenset[str]:
    from cards.registry import CATALOG_ORDER
    from .data_card import DATA_CARD_ID
    return frozenset(CATALOG_ORDER) | {DATA_CARD_ID}


def count_cards(cards: Iterable[dict[str, Any]]) -> None:
    """Count issued cards by rule and indicator (unknown values are ``other``)."""
    rules = _known_rules()
    for c in cards:
        rule = ((c.get("source") or {}).get("topic") or {}).get("code")
        indicator = c.get("indicator")
        CARDS.labels(rule if rule in rules else "other", indicator if indicator in INDICATORS else "other").inc()


def cards_suppressed(cards: Iterable[dict[str, Any]], reason: str) -> None:
    """Count repeated cards left out, by rule and why (``order-select-override``, ``snooze``)."""
    rules = _known_rules()
    for c in cards:
        rule = ((c.get("source") or {}).get("topic") or {}).get("code")
        SUPPRESSED.labels(rule if rule in rules else "other", reason).inc()


def feedback_stored(service_id: str, items: int) -> None:
    FEEDBACK.labels(service_id if service_id in _known_services() else "other").inc(items)


def jwt_rejected(reason: str) -> None:
    """One 401 from the JWT guard; ``reason`` is the verifier's check name (no token, no claim)."""
    JWT_REJECTIONS.labels(reason[:80]).inc()


def _fhir_read(outcome: str) -> None:
    FHIR_READS.labels(outcome).inc()


def _validation_cache(app: Flask) -> None:
    """Add the cache's hits and misses since the last request (the cache counts per worker)."""
    cache = app.config.get("VERDICTS")
    if cache is None:
        return
    with _lock:
        last_hits, last_misses = getattr(cache, "_metrics_seen", (0, 0))
        hits, misses = cache.hits, cache.misses
        if hits < last_hits or misses < last_misses:   # cleared
            last_hits = last_misses = 0
        cache._metrics_seen = (hits, misses)
    if hits > last_hits:
        VALIDATION_CACHE.labels("hit").inc(hits - last_hits)
    if misses > last_misses:
        VALIDATION_CACHE.labels("miss").inc(misses - last_misses)


def exposition() -> bytes:
    """The metrics text: every worker's values in multiprocess mode, else this process's."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def install(app: Flask) -> None:
    """The ``/metrics`` route and the request hooks that count."""
    services = _known_services()
    if _fhir_read not in prefetch.READ_OBSERVERS:
        prefetch.READ_OBSERVERS.append(_fhir_read)

    @app.before_request
    def _start() -> None:
        g.bone_cds_t0 = time.perf_counter()

    @app.after_request
    def _count(response: Response) -> Response:
        rule = request.url_rule.rule if request.url_rule is not None else "(unmatched)"
        method = request.method if request.method in ("GET", "POST", "OPTIONS", "HEAD") else "other"
        HTTP_REQUESTS.labels(rule, method, str(response.status_code)).inc()
        if request.endpoint == "cds.call_service" and request.method == "POST":
            sid = (request.view_args or {}).get("service_id")
            t0 = g.get("bone_cds_t0")
            if t0 is not None:
                HOOK_DURATION.labels(sid if sid in services else "other").observe(time.perf_counter() - t0)
            _validation_cache(app)
        return response

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(exposition(), mimetype=CONTENT_TYPE_LATEST)


def mark_worker_dead(pid: int) -> None:
    """gunicorn ``child_exit``: a dead worker's live values are dropped (counters are kept)."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(pid)
