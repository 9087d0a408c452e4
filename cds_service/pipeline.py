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

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping

import requests

from cards.engine import evaluate
from cards.registry import RuleInput
from cards.thresholds import DEFAULT_THRESHOLDS, Thresholds
from hooks.services import Service

from .chart import BISPHOSPHONATE, DENOSUMAB, Chart, build_chart
from .chart.identity import PatientIdentity, patient_aliases
from .chart.verdicts import VerdictCache
from .data_card import DATA_CARD_ID, build_data_card
from .errors import ApiError
from .prefetch import FetchSettings, PrefetchResult, gather
from .request import HookRequest, check_draft_patients, parse_hook_request

@dataclass
class HookOutcome:
    """The response and what the logs and metrics want to know about it."""

    response: dict[str, Any]
    fired: list[str] = field(default_factory=list)
    prefetch: dict[str, str] = field(default_factory=dict)
    skipped: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    excluded: dict[str, int] = field(default_factory=dict)   # counts only (never ids) for the log


def _triggers_antiresorptive(chart: Chart) -> bool:
    return any(d.drug.drug_class in (DENOSUMAB, BISPHOSPHONATE) for d in chart.triggers)


def identity_of(req: HookRequest) -> PatientIdentity:
    """The context patient of a request, with the ``fullUrl`` aliases its Bundles give it."""
    bundles = list(req.prefetch.values()) + [req.context.get("draftOrders")]
    return PatientIdentity(req.patient_id, req.fhir_server, patient_aliases(req.patient_id, bundles))


def evaluate_hook(service: Service, body: Any, *, now: datetime, fetch: FetchSettings = FetchSettings(),
                  thresholds: Thresholds = DEFAULT_THRESHOLDS, session: requests.Session | None = None,
                  request: HookRequest | None = None, verdicts: VerdictCache | None = None) -> HookOutcome:
    """Run one hook call; raises :class:`ApiError` (400 bad request, 412 data unavailable).

    ``verdicts``: the process's memo of R4B validation verdicts (the app's; None validates all)."""
    t0 = time.perf_counter()
    req = request or parse_hook_request(body, service.hook)
    identity = identity_of(req)
    check_draft_patients(req, identity)
    timings: dict[str, float] = {"parse": time.perf_counter() - t0}

    if service.hook != "patient-view":
        # No antiresorptive among the triggering drafts: nothing to check, nothing to fetch (§7).
        t = time.perf_counter()
        drafts_only = build_chart([], now, hook=req.hook, draft_orders=req.draft_orders,
                                  selections=req.selections, verdicts=verdicts, identity=identity)
        timings["drafts"] = time.perf_counter() - t
        if not _triggers_antiresorptive(drafts_only) and not drafts_only.unreadable_drafts:
            return HookOutcome({"cards": []}, timings=timings)

    t = time.perf_counter()
    data: PrefetchResult = gather(service.prefetch, req, fetch, session)
    timings["prefetch"] = time.perf_counter() - t
    unavailable = data.unavailable
    if unavailable and (set(unavailable) & service.required_keys or set(unavailable) >= set(service.prefetch)):
        keys = sorted(set(unavailable) & service.required_keys or unavailable)
        raise ApiError(412, "prefetch_unavailable",
                       "required data could not be obtained from prefetch or the FHIR server: "
                       + ", ".join(f"{k} ({unavailable[k]})" for k in keys),
                       missing=keys)
    missing_types = {data.keys[k].resource_type: reason for k, reason in unavailable.items()}

    t = time.perf_counter()
    chart = build_chart(data.resources, now, hook=req.hook, draft_orders=req.draft_orders,
                        selections=req.selections, unavailable=missing_types, verdicts=verdicts,
                        identity=identity)
    timings["chart"] = time.perf_counter() - t

    t = time.perf_counter()
    inp = RuleInput(chart=chart, hook=req.hook, now=now, thresholds=thresholds,
                    patient_id=req.patient_id, user_id=req.user_id)
    result = evaluate(inp)
    cards = list(result.cards)
    data_card = build_data_card(result, inp, missing_types,
                                key_types={k: r.resource_type for k, r in data.keys.items()})
    if data_card is not None:
        cards.append(data_card)
    timings["rules"] = time.perf_counter() - t

    t = time.perf_counter()
    response = {"cards": [c.to_json() for c in cards]}
    timings["serialise"] = time.perf_counter() - t
    return HookOutcome(response, fired=result.fired, prefetch=data.status_line(),
                       skipped=len(chart.skipped), timings=timings, excluded=dict(chart.excluded))


def run_hook(service: Service, body: Any, *, now: datetime, settings: Any = None,
             session: requests.Session | None = None) -> dict[str, Any]:
    """The response JSON of one hook call (``settings``: a :class:`~cds_service.config.Settings`)."""
    fetch = settings.fetch if settings is not None else FetchSettings()
    thresholds = settings.thresholds if settings is not None else DEFAULT_THRESHOLDS
    return evaluate_hook(service, body, now=now, fetch=fetch, thresholds=thresholds,
                         session=session).response


__all__ = ["HookOutcome", "evaluate_hook", "identity_of", "run_hook", "DATA_CARD_ID"]
