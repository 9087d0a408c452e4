"""One hook call, end to end: request → data → chart → rules → response JSON.

Shared by the HTTP route and ``bone-cds evaluate``. I/O (FHIR reads) happens only in
:func:`cds_service.prefetch.gather`; the chart and the rules are pure.

Decision per prefetch key (checklist PF-6, issue "The chart"): on ``patient-view`` the four
medication keys are required — a dose history missing one record type could put a false
"overdue" in front of the clinician — so their absence answers 412. Every other key, and every
key of the order hooks, degrades: the rules that need the missing data do not run, and one info
card says which checks could not run and why. A request where no key at all could be had
answers 412.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Mapping

import requests

from cards.builders import configured_label_urls
from cards.thresholds import DEFAULT_THRESHOLDS, Thresholds
from hooks.evaluation import assess
from hooks.services import Service

from . import jsonio
from .chart import BISPHOSPHONATE, DENOSUMAB, OUT_OF_TIME, Chart, build_chart
from .chart.identity import PatientIdentity, patient_aliases
from .chart.medication_refs import medication_index, unresolved_references
from .chart.verdicts import VerdictCache
from .config import DEFAULT_REQUEST_BUDGET
from .data_card import DATA_CARD_ID, build_data_card
from .errors import ApiError
from .prefetch import FetchSettings, PrefetchResult, gather, read_medications
from .request import HookRequest, check_draft_patients, parse_hook_request

log = logging.getLogger(__name__)


@dataclass
class HookOutcome:
    """The response and what the logs and metrics want to know about it."""

    response: dict[str, Any]
    fired: list[str] = field(default_factory=list)
    prefetch: dict[str, str] = field(default_factory=dict)
    skipped: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    excluded: dict[str, int] = field(default_factory=dict)   # counts only (never ids) for the log
    incomplete: dict[str, str] = field(default_factory=dict)  # prefetch key -> why it is partial
    capped: dict[str, int] = field(default_factory=dict)      # prefetch key -> resources left out


def _triggers_antiresorptive(chart: Chart) -> bool:
    return any(d.drug.drug_class in (DENOSUMAB, BISPHOSPHONATE) for d in chart.triggers)


def _deceased(resources: list[Any], now: datetime, identity: PatientIdentity,
              verdicts: VerdictCache | None) -> bool:
    """The context Patient of ``resources`` is deceased (D8, A37): read from the Patient alone, so
    that a patient-view for a deceased patient answers no card even when the medication data a
    living patient's answer needs (412) could not be had."""
    patients = [r for r in resources if isinstance(r, dict) and r.get("resourceType") == "Patient"]
    return bool(patients) and build_chart(patients, now, verdicts=verdicts, identity=identity).patient.deceased


def bundle_medications(bundles: Any) -> tuple[list[dict], dict[str, dict]]:
    """The Medication entries of ``bundles`` (prefetch values, ``context.draftOrders``), and those
    by ``fullUrl`` (RULES.md D3 resolution (b)); anything that is not a Bundle is skipped."""
    out, urls = [], {}
    for value in bundles:
        entries = value.get("entry") if isinstance(value, dict) and value.get("resourceType") == "Bundle" else None
        for e in entries if isinstance(entries, list) else []:
            res = e.get("resource") if isinstance(e, dict) else None
            if isinstance(res, dict) and res.get("resourceType") == "Medication":
                out.append(res)
                if isinstance(e.get("fullUrl"), str):
                    urls[e["fullUrl"]] = res
    return out, urls


def partial_types(data: PrefetchResult) -> dict[str, str]:
    """Resource type → why its records arrived only in part (incomplete or capped keys)."""
    out = {data.keys[k].resource_type: reason for k, reason in data.incomplete.items()}
    for key, dropped in data.capped.items():
        out.setdefault(data.keys[key].resource_type, "capped")
    return out


def identity_of(req: HookRequest) -> PatientIdentity:
    """The context patient of a request, with the ``fullUrl`` aliases its Bundles give it."""
    bundles = list(req.prefetch.values()) + [req.context.get("draftOrders")]
    return PatientIdentity(req.patient_id, req.fhir_server, patient_aliases(req.patient_id, bundles))


#: Requests carrying at least this many prefetch entries are evaluated with automatic garbage
#: collection paused: measured on 100k Observations, gather took 1.53 s with collection on and
#: 0.12 s with it off (the collector walks the decoded body again and again; the body holds no
#: reference cycles). Collection resumes when the call ends (jsonio.gc_paused).
PAUSE_GC_ENTRIES = 10_000


def _entries(req: HookRequest) -> int:
    return sum(len(v["entry"]) for v in req.prefetch.values()
               if isinstance(v, dict) and isinstance(v.get("entry"), list))


def evaluate_hook(service: Service, body: Any, *, now: datetime, **kwargs: Any) -> HookOutcome:
    """Run one hook call; raises :class:`ApiError` (400 bad request, 412 data unavailable).

    See :func:`_evaluate_hook` for the arguments; a large request runs with garbage collection
    paused (:data:`PAUSE_GC_ENTRIES`)."""
    t0 = time.perf_counter()
    req = kwargs.pop("request", None) or parse_hook_request(body, service.hook)
    parse_s = time.perf_counter() - t0
    if _entries(req) < PAUSE_GC_ENTRIES:
        return _evaluate_hook(service, req, now=now, parse_s=parse_s, **kwargs)
    with jsonio.gc_paused():
        return _evaluate_hook(service, req, now=now, parse_s=parse_s, **kwargs)


def _evaluate_hook(service: Service, req: HookRequest, *, now: datetime, fetch: FetchSettings = FetchSettings(),
                   thresholds: Thresholds = DEFAULT_THRESHOLDS, session: requests.Session | None = None,
                   verdicts: VerdictCache | None = None, budget: float | None = DEFAULT_REQUEST_BUDGET,
                   deadline: Callable[[], bool] | None = None, parse_s: float = 0.0,
                   label_urls: Mapping[str, str] | None = None) -> HookOutcome:
    """One parsed hook call (:func:`evaluate_hook` parses and picks the collector setting).

    ``verdicts``: the process's memo of R4B validation verdicts (the app's; None validates all).
    ``budget``: seconds of wall time for the chart and the rules once the FHIR reads are done
    (``BONE_CDS_REQUEST_BUDGET``; None: unbounded); rules not started in time are reported in the
    data card. ``deadline`` (tests): a callable that says the budget is spent, used instead."""
    t0 = time.perf_counter()
    identity = identity_of(req)
    check_draft_patients(req, identity)
    timings: dict[str, float] = {"parse": parse_s + time.perf_counter() - t0}

    if service.hook != "patient-view":
        # No antiresorptive among the triggering drafts: nothing to check, nothing to fetch (§7).
        t = time.perf_counter()
        sent_meds, sent_urls = bundle_medications([*req.prefetch.values(), req.context.get("draftOrders")])
        drafts_only = build_chart(sent_meds, now, hook=req.hook, draft_orders=req.draft_orders,
                                  selections=req.selections, verdicts=verdicts, identity=identity,
                                  medication_urls=sent_urls, zone=thresholds.zone,
                                  future_skew_minutes=thresholds.future_skew_minutes)
        timings["drafts"] = time.perf_counter() - t
        unknown = unresolved_references(req.draft_orders, medication_index(sent_meds + req.draft_orders, sent_urls))
        if not _triggers_antiresorptive(drafts_only) and not drafts_only.unreadable_drafts and not unknown:
            return HookOutcome({"cards": []}, timings=timings)

    t = time.perf_counter()
    data: PrefetchResult = gather(service.prefetch, req, fetch, session)
    timings["prefetch"] = time.perf_counter() - t
    unavailable = data.unavailable
    if unavailable and (set(unavailable) & service.required_keys or set(unavailable) >= set(service.prefetch)):
        if service.hook == "patient-view" and _deceased(data.resources, now, identity, verdicts):
            return HookOutcome({"cards": []}, prefetch=data.status_line(), timings=timings)  # D8/A37
        keys = sorted(set(unavailable) & service.required_keys or unavailable)
        raise ApiError(412, "prefetch_unavailable",
                       "required data could not be obtained from prefetch or the FHIR server: "
                       + ", ".join(f"{k} ({unavailable[k]})" for k in keys),
                       missing=keys)
    missing_types = {data.keys[k].resource_type: reason for k, reason in unavailable.items()}
    resources = data.resources
    urls = data.medication_urls | bundle_medications([req.context.get("draftOrders")])[1]
    wanted = unresolved_references(resources + req.draft_orders,
                                   medication_index(resources + req.draft_orders, urls))
    if wanted:   # RULES.md D3 (c): the Medications nothing in the request resolves
        t = time.perf_counter()
        resources = resources + read_medications(wanted, req, fetch, session, data.stop_at)
        timings["medications"] = time.perf_counter() - t
    if deadline is None and budget is not None:
        stop_at = time.monotonic() + budget
        deadline = lambda: time.monotonic() >= stop_at  # noqa: E731 - the budget's clock

    done = assess(resources, hook=req.hook, now=now, identity=identity, thresholds=thresholds,
                  draft_orders=req.draft_orders, selections=req.selections, unavailable=missing_types,
                  verdicts=verdicts, medication_urls=urls, user_id=req.user_id, deadline=deadline,
                  partial=partial_types(data))
    chart, inp, result = done.chart, done.input, done.result
    timings["chart"] = done.chart_s
    future = Counter(s.resource_type for s in chart.skipped if s.reason == "dated in the future")
    if future:   # §1.3 Clock (A3): ignored by the chart, logged here at the edge (types, no ids)
        log.info("%d records dated in the future ignored (clock zone %s)", sum(future.values()),
                 thresholds.clock_time_zone, extra={"event": {"future_records": dict(future)}})

    t = time.perf_counter() - done.rules_s
    cards = list(result.cards)
    unread = sorted(k for k, why in chart.unavailable.items() if why == OUT_OF_TIME)
    if unread:
        log.warning("request budget spent while building the chart: %s not read", ", ".join(unread),
                    extra={"event": {"out_of_time_types": unread}})
    if result.out_of_time:
        log.warning("request budget spent: %d rules not run", len(result.out_of_time),
                    extra={"event": {"out_of_time": result.out_of_time}})
    data_card = None if result.deceased else build_data_card(  # D8/A37: no card at all
        result, inp, chart.unavailable, incomplete=data.incomplete, capped=data.capped,
        key_types={k: r.resource_type for k, r in data.keys.items()})
    if data_card is not None:
        cards.append(data_card)
    timings["rules"] = time.perf_counter() - t

    t = time.perf_counter()
    response = {"cards": configured_label_urls([c.to_json() for c in cards], label_urls or {})}
    timings["serialise"] = time.perf_counter() - t
    return HookOutcome(response, fired=result.fired, prefetch=data.status_line(),
                       skipped=len(chart.skipped), timings=timings, excluded=dict(chart.excluded),
                       incomplete=data.incomplete, capped=data.capped)


def run_hook(service: Service, body: Any, *, now: datetime, settings: Any = None,
             session: requests.Session | None = None) -> dict[str, Any]:
    """The response JSON of one hook call (``settings``: a :class:`~cds_service.config.Settings`)."""
    fetch = settings.fetch if settings is not None else FetchSettings()
    thresholds = settings.thresholds if settings is not None else DEFAULT_THRESHOLDS
    budget = settings.request_budget if settings is not None else DEFAULT_REQUEST_BUDGET
    label_urls = settings.label_urls if settings is not None else {}
    return evaluate_hook(service, body, now=now, fetch=fetch, thresholds=thresholds,
                         session=session, budget=budget, label_urls=label_urls).response


__all__ = ["HookOutcome", "evaluate_hook", "identity_of", "run_hook", "DATA_CARD_ID"]
