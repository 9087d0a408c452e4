"""The memo of R4B validation verdicts (``cds_service/chart/verdicts.py``, issue "Speed").

It must never change an answer: the same verdict as validating afresh, for valid and invalid
resources alike; a changed resource is validated again; drafts and non-drafts are kept apart; it
holds no patient data; it stays within its bound. And the whole fixture corpus answers the same
cards, call after call, with the app's cache as without one.
"""

from __future__ import annotations

import copy
import json
import re
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from cds_service.app import create_app
from cds_service.chart import build_chart
from cds_service.chart.verdicts import VerdictCache, validate_r4b
from cds_service.config import ConfigError, Settings
from cds_service.pipeline import evaluate_hook
from hooks.services import services

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
SCENARIO = "org.bone-safety-cds.scenario"
NOW = datetime.fromisoformat("2026-03-01T12:00:00+00:00")


def calcium(value: Any = 7.6, status: str = "final", rid: str = "ca-1") -> dict[str, Any]:
    return {"resourceType": "Observation", "id": rid, "status": status,
            "code": {"coding": [{"system": "http://loinc.org", "code": "17861-6"}]},
            "subject": {"reference": "Patient/p-secret-42"}, "effectiveDateTime": "2026-02-20",
            "valueQuantity": {"value": value, "unit": "mg/dL", "system": "http://unitsofmeasure.org",
                              "code": "mg/dL"}}


def test_valid_resource_same_verdict_and_repaired_copy_on_hit() -> None:
    cache = VerdictCache()
    res = calcium()
    first = cache.validate(res)
    second = cache.validate(copy.deepcopy(res))
    assert first == second == validate_r4b(res)
    assert first[0] is not None and first[1] == ""
    assert (cache.misses, cache.hits) == (1, 1)


def test_invalid_resource_same_reason_on_hit() -> None:
    cache = VerdictCache()
    bad = calcium(value="seven point six")    # a string where R4B wants a decimal
    fresh = validate_r4b(bad)
    assert fresh[0] is None and fresh[1].startswith("invalid Observation")
    assert cache.validate(bad) == fresh
    assert cache.validate(bad) == fresh
    assert cache.hits == 1


def test_changed_resource_is_validated_again() -> None:
    """Same id, same meta, different content: a new digest, so R4B decides again."""
    cache = VerdictCache()
    good = calcium()
    assert cache.validate(good)[0] is not None
    changed = calcium(value="seven point six")   # a string where R4B wants a decimal
    assert cache.validate(changed)[0] is None
    assert cache.misses == 2 and cache.hits == 0


def test_draft_flag_is_part_of_the_key() -> None:
    """A draft without status is repaired to status draft (IOP-1); the same JSON as a chart
    record is not, and each keeps its own verdict and repaired copy."""
    order = {"resourceType": "MedicationRequest", "id": "d1", "intent": "order",
             "subject": {"reference": "Patient/x"},
             "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                                                       "code": "993452"}]}}
    cache = VerdictCache()
    as_draft = cache.validate(order, draft=True)
    as_record = cache.validate(order, draft=False)
    assert as_draft == validate_r4b(order, draft=True)
    assert as_record == validate_r4b(order, draft=False)
    assert as_draft[0] is not None and as_draft[0]["status"] == "draft"
    assert as_record[0] is None                  # status is required outside the hook's drafts
    assert cache.validate(order, draft=True) == as_draft
    assert cache.validate(order, draft=False) == as_record


def test_holds_digests_not_patient_data() -> None:
    cache = VerdictCache()
    cache.validate(calcium())
    cache.validate(calcium(value="seven"))
    keys = list(cache._verdicts.keys())          # noqa: SLF001 - inspecting what is kept
    assert all(isinstance(k, bytes) and len(k) == 16 for k in keys)
    kept = repr(keys) + repr(list(cache._verdicts.values()))  # noqa: SLF001
    assert "p-secret-42" not in kept and "ca-1" not in kept


def test_bounded_and_switchable_off() -> None:
    cache = VerdictCache(size=3)
    for i in range(10):
        cache.validate(calcium(rid=f"ca-{i}"))
    assert len(cache) == 3
    off = VerdictCache(size=0)
    assert off.validate(calcium()) == validate_r4b(calcium())
    assert len(off) == 0 and off.hits == 0


def test_not_json_shaped_input_is_validated_uncached() -> None:
    res = calcium()
    res["valueQuantity"]["value"] = object()     # only possible for in-process callers
    cache = VerdictCache()
    assert cache.validate(res) == validate_r4b(res)
    assert len(cache) == 0


def test_threads_share_one_cache_safely() -> None:
    cache = VerdictCache(size=50)
    resources = [calcium(rid=f"ca-{i}") for i in range(80)] + [calcium(value="bogus", rid=f"b-{i}") for i in range(20)]
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for r in resources:
                fixed, reason = cache.validate(r)
                assert (fixed is None) == (r["id"].startswith("b-")), reason
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(cache) <= 50


def test_chart_reports_the_same_skipped_resources_with_the_cache() -> None:
    resources = [calcium(), calcium(value="x", rid="ca-str"), calcium(value=8.1, rid="ca-2")]
    plain = build_chart(resources, NOW)
    values = [lab.value for lab in plain.labs("calcium-serum")]   # read: lab results validate lazily
    assert len(values) == 2 and len(plain.skipped) == 1
    cache = VerdictCache()
    for _ in range(3):
        cached = build_chart(copy.deepcopy(resources), NOW, verdicts=cache)
        assert [lab.value for lab in cached.labs("calcium-serum")] == values
        assert cached.skipped == plain.skipped
    assert cache.hits > 0


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def _without_uuids(value: Any) -> Any:
    """The answer without what is fresh on every call: card/suggestion uuids, draft resource ids."""
    if isinstance(value, dict):
        return {k: _without_uuids(v) for k, v in value.items()
                if k != "uuid" and not (k == "id" and isinstance(v, str) and _UUID.fullmatch(v))}
    if isinstance(value, list):
        return [_without_uuids(v) for v in value]
    return value


def _cases() -> list[Path]:
    return [p for p in sorted(FIXTURES.glob("*/*.json")) if p.parent.name not in ("negative", "service")]


def test_every_fixture_answers_the_same_with_a_warm_shared_cache() -> None:
    """All scenarios, one shared cache, three rounds: identical cards (bar uuids) to no cache."""
    by_hook = {s.hook: s for s in services()}
    cache = VerdictCache()
    bodies = []
    for path in _cases():
        body = json.loads(path.read_text())
        now = datetime.fromisoformat(body["extension"][SCENARIO]["now"].replace("Z", "+00:00"))
        expected = _without_uuids(evaluate_hook(by_hook[body["hook"]], copy.deepcopy(body), now=now).response)
        bodies.append((path.name, body, now, expected))
    for _ in range(3):
        for name, body, now, expected in bodies:
            got = evaluate_hook(by_hook[body["hook"]], copy.deepcopy(body), now=now, verdicts=cache).response
            assert _without_uuids(got) == expected, name
    assert cache.hits > cache.misses


def test_app_has_a_cache_sized_from_the_environment(tmp_path: Path) -> None:
    app = create_app(Settings.from_env({"BONE_CDS_DATA_DIR": str(tmp_path), "BONE_CDS_VALIDATION_CACHE": "7"}))
    assert app.config["VERDICTS"].size == 7
    off = create_app(Settings.from_env({"BONE_CDS_DATA_DIR": str(tmp_path), "BONE_CDS_VALIDATION_CACHE": "0"}))
    assert off.config["VERDICTS"].size == 0
    with pytest.raises(ConfigError, match="BONE_CDS_VALIDATION_CACHE"):
        Settings.from_env({"BONE_CDS_VALIDATION_CACHE": "lots"})


def test_http_answers_are_unchanged_on_repeat_calls(tmp_path: Path) -> None:
    """Over the route: the second and third call of one scenario (cache warm) answer what the first did."""
    path = FIXTURES / "denosumab" / "overdue-7-months-plus-1-day-month-end.json"
    body = json.loads(path.read_text())
    now = datetime.fromisoformat(body["extension"][SCENARIO]["now"].replace("Z", "+00:00"))
    service = next(s for s in services() if s.hook == body["hook"])
    app = create_app(Settings.from_env({"BONE_CDS_DATA_DIR": str(tmp_path)}), clock=lambda: now)
    client = app.test_client()
    answers = [_without_uuids(client.post(f"/cds-services/{service.id}", json=body).get_json()) for _ in range(3)]
    assert answers[0]["cards"] and answers[0] == answers[1] == answers[2]
    assert app.config["VERDICTS"].hits > 0


def test_warm_up_builds_the_model_of_every_type_the_chart_reads() -> None:
    """Before gunicorn forks, one valid resource of each type the chart reads is validated, so
    no worker's first request pays for building an R4B model class (5–20 ms each)."""
    from cds_service.chart.chart import READ_TYPES
    from cds_service.warmup import _MINIMAL_RESOURCES, warm_up
    assert {r["resourceType"] for r in _MINIMAL_RESOURCES} == set(READ_TYPES)
    assert all(validate_r4b(r)[1] == "" for r in _MINIMAL_RESOURCES)   # all valid R4B
    assert warm_up(freeze=False) > 0
