"""Smoke test of the benchmark (bench/, issue "Speed"): not a timing test.

The workload generator is deterministic for a seed and builds what it promises, and one call of
each workload goes through ``evaluate_hook`` to a 200-style answer (no ApiError, a cards list)
along the full path (every prefetch key used as sent, the chart built).
"""

from __future__ import annotations

import io
import json
from datetime import date, datetime, timezone

import pytest

from bench import floor
from bench.workload import HOOKS, PREFETCH_KEYS, build_workloads
from cds_service.pipeline import evaluate_hook
from hooks.services import service_by_id

ANCHOR = date(2026, 11, 23)
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def workloads():
    return build_workloads(seed=11, anchor=ANCHOR)


def test_generator_is_deterministic_for_a_seed(workloads) -> None:
    again = build_workloads(seed=11, anchor=ANCHOR)
    assert [w.body for w in again] == [w.body for w in workloads]
    other = build_workloads(seed=12, anchor=ANCHOR)
    assert [w.body for w in other] != [w.body for w in workloads]


def test_workloads_have_the_promised_shape(workloads) -> None:
    assert [(w.patient, w.hook) for w in workloads] == [(p, h) for p in ("typical", "heavy") for h in HOOKS]
    by_patient = {w.patient: w.counts() for w in workloads}
    typical, heavy = by_patient["typical"], by_patient["heavy"]
    meds = ("MedicationRequest", "MedicationAdministration", "MedicationStatement", "MedicationDispense")
    assert 45 <= typical["Observation"] <= 55 and sum(typical[t] for t in meds) == 10
    assert heavy["Observation"] == 500 and heavy["Condition"] == 50
    assert [heavy[t] for t in meds] == [25, 25, 25, 25]
    for w in workloads:
        body = json.loads(w.body)
        service = service_by_id(w.service_id)
        assert service is not None and service.hook == w.hook == body["hook"]
        assert set(body["prefetch"]) == set(service.prefetch) == set(PREFETCH_KEYS.values())
        assert body["prefetch"]["patient"]["resourceType"] == "Patient"
        assert all(body["prefetch"][k]["type"] == "searchset" for k in service.prefetch if k != "patient")
        if w.hook != "patient-view":
            draft = body["context"]["draftOrders"]["entry"][0]["resource"]
            assert draft["status"] == "draft" and draft["medicationCodeableConcept"]["coding"][0]["code"] == "993452"


def test_each_workload_answers_through_evaluate_hook(workloads) -> None:
    for w in workloads:
        service = service_by_id(w.service_id)
        outcome = evaluate_hook(service, json.loads(w.body), now=NOW)
        assert isinstance(outcome.response["cards"], list), w.name
        json.dumps(outcome.response)
        assert set(outcome.prefetch.values()) == {"prefetch"}, w.name
        assert "chart" in outcome.timings, f"{w.name}: the full path did not run"
        assert outcome.skipped == 0, f"{w.name}: the generator made resources the chart could not read"


def test_floor_app_decodes_and_answers_no_cards() -> None:
    seen: list[str] = []
    raw = b'{"hook": "patient-view"}'
    env = {"REQUEST_METHOD": "POST", "CONTENT_LENGTH": str(len(raw)), "wsgi.input": io.BytesIO(raw)}
    body = b"".join(floor.app(env, lambda status, headers: seen.append(status)))
    assert seen == ["200 OK"] and json.loads(body) == {"cards": []}
