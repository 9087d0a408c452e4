"""One hook's rules over one patient's records: FHIR resources → chart → rules (pure).

The one place where a hook call's records become a :class:`~cds_service.chart.Chart` and the
hook's rules run over it. Both edges call it: the web edge (``cds_service.pipeline``, after the
prefetch and FHIR reads) and the batch edge (``sweep``, over a Bulk Data export), so a card and a
worklist row for the same patient and date come from the same code. No I/O, no web framework,
the clock an argument.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Iterable, Mapping

from cards.engine import Evaluation, evaluate
from cards.registry import RuleInput
from cards.thresholds import DEFAULT_THRESHOLDS, Thresholds
from cds_service.chart import Chart, build_chart
from cds_service.chart.identity import PatientIdentity
from cds_service.chart.verdicts import VerdictCache


@dataclass(frozen=True)
class Assessment:
    """The chart the rules saw, their input and their result, with the time each step took."""

    chart: Chart
    input: RuleInput
    result: Evaluation
    chart_s: float = 0.0
    rules_s: float = 0.0


def assess(resources: Iterable[Any], *, hook: str, now: datetime, identity: PatientIdentity,
           thresholds: Thresholds = DEFAULT_THRESHOLDS, draft_orders: Iterable[dict] = (),
           selections: Iterable[str] = (), unavailable: Mapping[str, str] | None = None,
           verdicts: VerdictCache | None = None, medication_urls: Mapping[str, dict] | None = None,
           user_id: str = "", deadline: Callable[[], bool] | None = None,
           partial: Mapping[str, str] | None = None) -> Assessment:
    """Build the chart of ``identity``'s records at ``now`` and run ``hook``'s rules over it.

    ``unavailable``: resource type → why it could not be had (its rules do not run);
    ``partial``: resource type → why only part of its records arrived (the rules that date
    doses say so in their card);
    ``deadline``: the request budget (the caller's clock, True once spent), for the chart
    (:func:`~cds_service.chart.build_chart`: types not read in time are left out and marked
    unavailable) and the rules (:func:`cards.engine.evaluate`); None: everything is read and run."""
    t = time.perf_counter()
    chart = build_chart(resources, now, hook=hook, draft_orders=draft_orders, selections=selections,
                        unavailable=unavailable, partial=partial, verdicts=verdicts, identity=identity,
                        medication_urls=medication_urls, zone=thresholds.zone,
                        future_skew_minutes=thresholds.future_skew_minutes,
                        dose_dedupe_days=thresholds.dose_dedupe_days, deadline=deadline)
    chart_s = time.perf_counter() - t
    t = time.perf_counter()
    inp = RuleInput(chart=chart, hook=hook, now=now, thresholds=thresholds,
                    patient_id=identity.patient_id, user_id=user_id)
    result = evaluate(inp, deadline=deadline)
    return Assessment(chart, inp, result, chart_s, time.perf_counter() - t)


__all__ = ["Assessment", "assess"]
