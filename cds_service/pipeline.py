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

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Mapping

import requests

from cards.engine import TYPE_WORDS, Evaluation, evaluate
from cards.model import Card
from cards.registry import REGISTRY, RuleInput
from cards.thresholds import DEFAULT_THRESHOLDS, Thresholds
from hooks.services import Service

from .chart import BISPHOSPHONATE, DENOSUMAB, Chart, build_chart
from .chart.verdicts import VerdictCache
from .config import DEFAULT_REQUEST_BUDGET
from .errors import ApiError
from .prefetch import FetchSettings, PrefetchResult, gather
from .request import HookRequest, parse_hook_request

DATA_CARD_ID = "SERVICE-DATA-UNAVAILABLE"

log = logging.getLogger(__name__)

_REASON_WORDS = {
    "no-fhir-server": "the request named no FHIR server", "server-not-allowed":
    "the request's FHIR server is not on this service's allowlist", "unauthorized":
    "the FHIR server refused the access token", "forbidden": "the FHIR server refused access",
    "timeout": "the FHIR server did not answer in time", "deadline": "the FHIR server did not answer in time",
    "unreachable": "the FHIR server could not be reached", "invalid-json": "the FHIR server sent an unreadable answer",
}


@dataclass
class HookOutcome:
    """The response and what the logs and metrics want to know about it."""

    response: dict[str, Any]
    fired: list[str] = field(default_factory=list)
    prefetch: dict[str, str] = field(default_factory=dict)
    skipped: int = 0
    timings: dict[str, float] = field(default_factory=dict)


def _triggers_antiresorptive(chart: Chart) -> bool:
    return any(d.drug.drug_class in (DENOSUMAB, BISPHOSPHONATE) for d in chart.triggers)


def _on_therapy(chart: Chart) -> bool:
    return any(r.drug.drug_class in (DENOSUMAB, BISPHOSPHONATE) for r in chart.medications)


def evaluate_hook(service: Service, body: Any, *, now: datetime, fetch: FetchSettings = FetchSettings(),
                  thresholds: Thresholds = DEFAULT_THRESHOLDS, session: requests.Session | None = None,
                  request: HookRequest | None = None, verdicts: VerdictCache | None = None,
                  budget: float | None = DEFAULT_REQUEST_BUDGET,
                  deadline: Callable[[], bool] | None = None) -> HookOutcome:
    """Run one hook call; raises :class:`ApiError` (400 bad request, 412 data unavailable).

    ``verdicts``: the process's memo of R4B validation verdicts (the app's; None validates all).
    ``budget``: seconds of wall time for the chart and the rules once the FHIR reads are done
    (``BONE_CDS_REQUEST_BUDGET``; None: unbounded); rules not started in time are reported in the
    data card. ``deadline`` (tests): a callable that says the budget is spent, used instead."""
    t0 = time.perf_counter()
    req = request or parse_hook_request(body, service.hook)
    timings: dict[str, float] = {"parse": time.perf_counter() - t0}

    if service.hook != "patient-view":
        # No antiresorptive among the triggering drafts: nothing to check, nothing to fetch (§7).
        t = time.perf_counter()
        drafts_only = build_chart([], now, hook=req.hook, draft_orders=req.draft_orders,
                                  selections=req.selections, verdicts=verdicts)
        timings["drafts"] = time.perf_counter() - t
        if not _triggers_antiresorptive(drafts_only):
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
    if deadline is None and budget is not None:
        stop_at = time.monotonic() + budget
        deadline = lambda: time.monotonic() >= stop_at  # noqa: E731 - the budget's clock

    t = time.perf_counter()
    chart = build_chart(data.resources, now, hook=req.hook, draft_orders=req.draft_orders,
                        selections=req.selections, unavailable=missing_types, verdicts=verdicts)
    timings["chart"] = time.perf_counter() - t

    t = time.perf_counter()
    inp = RuleInput(chart=chart, hook=req.hook, now=now, thresholds=thresholds,
                    patient_id=req.patient_id, user_id=req.user_id)
    result = evaluate(inp, deadline=deadline)
    cards = list(result.cards)
    relevant = _triggers_antiresorptive(chart) if req.hook != "patient-view" else _on_therapy(chart)
    if result.out_of_time:
        log.warning("request budget spent: %d rules not run", len(result.out_of_time),
                    extra={"event": {"out_of_time": result.out_of_time}})
    if (result.not_run or result.failed or result.out_of_time) and relevant:
        cards.append(_with_out_of_time(_data_card(result, missing_types), result))
    timings["rules"] = time.perf_counter() - t

    t = time.perf_counter()
    response = {"cards": [c.to_json() for c in cards]}
    timings["serialise"] = time.perf_counter() - t
    return HookOutcome(response, fired=result.fired, prefetch=data.status_line(),
                       skipped=len(chart.skipped), timings=timings)


def run_hook(service: Service, body: Any, *, now: datetime, settings: Any = None,
             session: requests.Session | None = None) -> dict[str, Any]:
    """The response JSON of one hook call (``settings``: a :class:`~cds_service.config.Settings`)."""
    fetch = settings.fetch if settings is not None else FetchSettings()
    thresholds = settings.thresholds if settings is not None else DEFAULT_THRESHOLDS
    budget = settings.request_budget if settings is not None else DEFAULT_REQUEST_BUDGET
    return evaluate_hook(service, body, now=now, fetch=fetch, thresholds=thresholds,
                         session=session, budget=budget).response


def _data_card(result: Evaluation, missing: Mapping[str, str]) -> Card:
    """One info card: which checks could not run, and why (DESIGN.md: say what could not be checked)."""
    types = sorted({t for ts in result.not_run.values() for t in ts})
    words = ", ".join(TYPE_WORDS.get(t, t) for t in types)
    reasons = sorted({_REASON_WORDS.get(missing.get(t, ""), missing.get(t, "unknown")) for t in types})
    lines = [f"- **{rule}**: needs {', '.join(TYPE_WORDS.get(t, t) for t in ts)}"
             for rule, ts in sorted(result.not_run.items())]
    lines += [f"- **{rule}**: failed with an internal error (reported to the service's log)"
              for rule in result.failed]
    if result.failed and not types:
        reasons = ["an internal error in the service"]
    summary = (f"Some safety checks could not run: {words} unavailable" if types
               else "Some safety checks could not run because of an internal error")
    if len(summary) > 139:
        summary = "Some safety checks could not run: patient data unavailable"
    detail = ("The service could not obtain part of the patient's record, so these checks were "
              "**not** performed (their absence from the cards does not mean the patient is safe):\n\n"
              + "\n".join(lines) + "\n\nWhy: " + "; ".join(reasons) + ".")
    return Card(rule_id=DATA_CARD_ID, rule_title="Safety checks not run: data unavailable",
                summary=summary, indicator="info", source_label="bone-safety-cds", detail=detail)


# ---- the time budget's line in the data card (kept apart from _data_card: issue 11 §3) --------

def out_of_time_line(result: Evaluation) -> str:
    """One line naming the checks that the request's time budget left unperformed."""
    n = len(result.out_of_time)
    titles = "; ".join(REGISTRY[r].title if r in REGISTRY else r for r in result.out_of_time)
    return (f"- **{n} check{'s' if n != 1 else ''} did not finish in time and "
            f"{'were' if n != 1 else 'was'} not performed**: {titles}")


def _with_out_of_time(card: Card, result: Evaluation) -> Card:
    """``card`` (the data card) with the out-of-time line; when it is the card's only reason,
    the summary and detail say so instead of "data unavailable"."""
    if not result.out_of_time:
        return card
    line = out_of_time_line(result)
    if result.not_run or result.failed:
        return dataclasses.replace(card, detail=card.detail + "\n\n" + line)
    return dataclasses.replace(
        card, rule_title="Safety checks not run: out of time",
        summary="Some safety checks did not finish in time and were not performed",
        detail=("The service ran out of time for this request, so these checks were **not** performed "
                "(their absence from the cards does not mean the patient is safe):\n\n" + line))


__all__ = ["HookOutcome", "evaluate_hook", "run_hook", "DATA_CARD_ID"]
