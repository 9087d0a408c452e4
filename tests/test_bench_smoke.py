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


def test_flask_floor_is_the_service_app_answering_no_cards(tmp_path, monkeypatch) -> None:
    """The floor is "the same server": our app (CORS, JSON errors) whose hook route only decodes."""
    monkeypatch.setenv("BONE_CDS_DATA_DIR", str(tmp_path))
    client = floor.flask_app().test_client()
    r = client.post("/cds-services/bone-safety-order-sign", data=b'{"hook": "order-sign", "x": [1, 2]}',
                    content_type="application/json")
    assert r.status_code == 200 and r.get_json() == {"cards": []}
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    bad = client.post("/cds-services/bone-safety-order-sign", data=b"{not json", content_type="application/json")
    assert bad.status_code == 400 and bad.get_json()["error"] == "invalid_json"
    assert client.get("/cds-services").status_code == 200


def test_new_patient_bodies_are_all_new_yet_clinically_the_same(workloads) -> None:
    """First-sight HTTP runs send each request for a new patient: every resource is new to the
    verdict cache, and the answer (rules fired) is the same as for the original patient."""
    w = next(x for x in workloads if x.name == "typical/patient-view")
    make = w.new_patients()
    a, b = make(), make()
    assert a != b != w.body
    ours = json.loads(a)
    assert ours["context"]["patientId"] != w.pid and ours["context"]["patientId"].startswith(w.pid)
    assert w.pid + '"' not in a.decode()                  # no resource keeps the original patient
    service = service_by_id(w.service_id)
    fired = lambda body: sorted(c["source"]["topic"]["code"] for c in  # noqa: E731
                                evaluate_hook(service, json.loads(body), now=NOW).response["cards"])
    assert fired(a) == fired(w.body)


def test_in_process_modes_differ_only_in_the_cache(workloads) -> None:
    from bench import inprocess
    w = next(x for x in workloads if x.name == "typical/order-sign")
    first = inprocess.measure(w, NOW, iterations=2, warmup=1, time_limit=5, min_iterations=2,
                              mode=inprocess.FIRST_SIGHT)
    repeat = inprocess.measure(w, NOW, iterations=2, warmup=1, time_limit=5, min_iterations=2,
                               mode=inprocess.REPEAT)
    assert first["fired"] == repeat["fired"] and first["mode"] != repeat["mode"]
    with pytest.raises(ValueError):
        inprocess.measure(w, NOW, iterations=1, warmup=0, time_limit=1, mode="lukewarm")


def test_budget_summary_has_a_line_per_budget_and_cache_state() -> None:
    from bench.run import budget_summary
    row = lambda mode, p95: {"mode": mode, "budget": {"p95_ms": p95, "pass": p95 < 10}}  # noqa: E731
    out = {"in_process": {"typical/patient-view": row("first-sight", 12.0),
                          "typical/patient-view (repeat)": row("repeat", 3.0)}}
    lines = budget_summary(out)
    assert [(b["mode"], b["pass"]) for b in lines] == [("first-sight", False), ("repeat", True)]


def test_budget_summary_judges_the_heavy_patient_over_http_at_its_own_ratio() -> None:
    """Issue 11 "Speed budgets": heavy over HTTP <= 2.5x the floor, typical <= 3x; heavy in process
    p95 < 25 ms."""
    from bench.run import BUDGET_HEAVY_P95_MS, BUDGET_HTTP_HEAVY_FLOOR_RATIO, budget_summary
    assert BUDGET_HEAVY_P95_MS == 25.0 and BUDGET_HTTP_HEAVY_FLOOR_RATIO == 2.5

    def row(patient: str, ratio: float) -> dict:
        limit = 2.5 if patient == "heavy" else 3.0
        return {"workload": f"{patient}/order-sign", "patient": patient, "concurrency": 1,
                "mode": "first-sight", "median_ratio": ratio,
                "budget": {"limit_ratio": limit, "pass": ratio <= limit}}
    lines = budget_summary({"http": [row("typical", 2.8), row("heavy", 2.8)]})
    assert [(b["name"].split(",")[1].strip(), b["pass"]) for b in lines] == [
        ("typical patient", True), ("heavy patient", False)]
    assert "<= 2.5x the floor" in lines[1]["name"]


def test_scale_section_times_each_kind_and_judges_growth() -> None:
    """Section "scale" (issue 11 §3) at tiny sizes: every kind measured on both paths, the same
    rules fire on both, and a PASS/MISS per kind lands in the table and the budget."""
    from bench import scale
    from bench.run import budget_summary, table
    res = scale.run(kinds=scale.KINDS, sizes=(20, 200), hooks=("order-sign",), now=NOW, seed=11)
    assert {r["kind"] for r in res["rows"]} == set(scale.KINDS) and len(res["rows"]) == 10
    for r in res["rows"]:
        assert r["hook_s"] > 0 and r["direct_s"] > 0
        assert r["fired"] == r["hook_fired"], r["kind"]
    for kind, info in res["kinds"].items():
        assert isinstance(info["pass"], bool) and info["growth"]["order-sign"]["chart+rules"], kind
    text = scale.table(res)
    assert all(k in text for k in scale.KINDS) and ("PASS" in text or "MISS" in text)
    counts = {}
    for r in scale.scaled_resources("Condition", 200, 11, ANCHOR):
        counts[r["resourceType"]] = counts.get(r["resourceType"], 0) + 1
    assert counts["Condition"] == 200 and counts["Observation"] < 100
    out = {"meta": {"seed": 11, "anchor": "x", "python": "3", "cpu_count": 2,
                    "versions": {"fhir.resources": "x"}, "quick": True}, "scale": res}
    assert "Scale:" in table(out)
    assert len([b for b in budget_summary(out) if b["mode"] == "scale"]) == len(scale.KINDS)
