"""The worklist: urgency order, MRN, deceased patients (A37), Medications by reference, the
prefilter's skips, identical files for any number of workers, and the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date, datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson

from cds_service.cli import main
from sweep import local
from sweep.patient import sort_key
from tests.sweep_helpers import FIXTURES, ROOT, patient_view_fixtures, write_population

NOW = datetime(2026, 11, 23, 15, tzinfo=timezone.utc)
OVERDUE = FIXTURES / "denosumab" / "overdue-8-months.json"


def _rows(out: Path) -> list[dict]:
    return [orjson.loads(l) for l in (out / "worklist.ndjson").read_bytes().splitlines()]


def _edit(path: Path, change) -> None:
    """Apply ``change(resource)`` to every line of an NDJSON file."""
    lines = [json.loads(l) for l in path.read_text().splitlines()]
    path.write_text("".join(json.dumps(change(r) or r) + "\n" for r in lines))


def test_rows_are_sorted_by_urgency_then_days_overdue() -> None:
    rows = [
        {"patient_id": "a", "rule_id": "R", "indicator": "info", "days_overdue": None},
        {"patient_id": "b", "rule_id": "R", "indicator": "warning", "days_overdue": 3},
        {"patient_id": "c", "rule_id": "R", "indicator": "critical", "days_overdue": None},
        {"patient_id": "d", "rule_id": "R", "indicator": "warning", "days_overdue": 90},
        {"patient_id": "e", "rule_id": "R", "indicator": "warning", "days_overdue": None},
        {"patient_id": "f", "rule_id": "R", "indicator": "info", "days_overdue": -5},
    ]
    assert [r["patient_id"] for r in sorted(rows, key=sort_key)] == ["c", "d", "b", "e", "f", "a"]


def test_worklist_over_the_fixtures_is_in_urgency_order_with_dates(tmp_path: Path) -> None:
    write_population(tmp_path / "in")
    local.run(tmp_path / "in", tmp_path / "out", now=NOW, workers=1)
    rows = _rows(tmp_path / "out")
    assert len(rows) >= 10
    assert rows == sorted(rows, key=sort_key)
    csv_lines = (tmp_path / "out" / "worklist.csv").read_text().splitlines()
    assert csv_lines[0] == ("patient_id,mrn,rule_id,indicator,summary,key_date,due_date,days_overdue,"
                            "suggested_action")
    assert len(csv_lines) == len(rows) + 1
    overdue = [r for r in rows if r["rule_id"] == "DMAB-OVERDUE-TRANSITION"]
    assert overdue and all(r["key_date"] and r["due_date"] and isinstance(r["days_overdue"], int)
                           for r in overdue)
    assert any(r["days_overdue"] > 0 for r in overdue)
    assert all(r["summary"] and r["indicator"] in ("critical", "warning", "info") for r in rows)


def test_the_due_date_is_the_one_the_rule_expected(tmp_path: Path) -> None:
    """Denosumab 120 mg loading course: the day-8 dose was expected, not 4 weeks after the last."""
    write_population(tmp_path / "in", [FIXTURES / "denosumab" / "oncology-gctb-loading-day8-missed.json"])
    local.run(tmp_path / "in", tmp_path / "out", now=NOW, workers=1)
    [row] = _rows(tmp_path / "out")
    assert row["rule_id"] == "DMAB-ONCOLOGY-INTERVAL"
    assert row["due_date"] in row["summary"] and row["key_date"] in row["summary"]
    assert row["days_overdue"] == (date(2026, 11, 23) - date.fromisoformat(row["due_date"])).days > 0


def test_mrn_comes_from_the_identifier_of_type_mr(tmp_path: Path) -> None:
    write_population(tmp_path / "in", [OVERDUE])
    _edit(tmp_path / "in" / "Patient.ndjson", lambda p: {**p, "identifier": [
        {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "SS"}]},
         "value": "999-99-9999"},
        {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]},
         "system": "urn:oid:1.2.3", "value": "MRN-0042"}]})
    local.run(tmp_path / "in", tmp_path / "out", now=NOW, workers=1)
    assert [r["mrn"] for r in _rows(tmp_path / "out")] == ["MRN-0042"]


def test_deceased_patients_get_no_row_and_are_counted(tmp_path: Path) -> None:
    patients = write_population(tmp_path / "in", [OVERDUE] * 5)
    deceased = {patients[0].patient_id: {"deceasedBoolean": True},
                patients[1].patient_id: {"deceasedDateTime": "2026-06-01"},
                patients[2].patient_id: {"deceasedDateTime": "2027-01-01"},      # after the as-of date
                patients[3].patient_id: {"deceasedBoolean": False},
                patients[4].patient_id: {"deceasedDateTime": "2026-11"}}         # partial: Nov 1
    _edit(tmp_path / "in" / "Patient.ndjson", lambda p: {**p, **deceased[p["id"]]})
    summary = local.run(tmp_path / "in", tmp_path / "out", now=NOW, workers=1)
    assert sorted(r["patient_id"] for r in _rows(tmp_path / "out")) == sorted(
        [patients[2].patient_id, patients[3].patient_id])
    assert summary["patients_deceased_not_evaluated"] == 3
    assert summary["patients_seen"] == 5 and summary["patients_evaluated"] == 2


def test_deceased_date_time_is_read_in_the_clock_zone(tmp_path: Path) -> None:
    """The chart's own D8 decides (clock_time_zone), not a copy of it."""
    from cards.thresholds import Thresholds

    patients = write_population(tmp_path / "in", [OVERDUE])
    _edit(tmp_path / "in" / "Patient.ndjson",
          lambda p: {**p, "deceasedDateTime": "2026-11-23T23:30:00-05:00"})   # 2026-11-24 04:30 UTC
    now_ny = datetime(2026, 11, 23, 23, 59, 59, tzinfo=ZoneInfo("America/New_York"))
    utc = local.run(tmp_path / "in", tmp_path / "utc", now=NOW, workers=1)
    ny = local.run(tmp_path / "in", tmp_path / "ny", now=now_ny, workers=1,
                   thresholds=Thresholds(clock_time_zone="America/New_York"))
    assert utc["patients_deceased_not_evaluated"] == 0 and len(_rows(tmp_path / "utc")) == 1
    assert ny["patients_deceased_not_evaluated"] == 1 and _rows(tmp_path / "ny") == []
    assert patients[0].patient_id not in json.dumps(ny)


def test_medications_by_reference_and_the_prefilter(tmp_path: Path) -> None:
    src = tmp_path / "in"
    write_population(src, [OVERDUE])
    meds: dict[str, dict] = {}

    def by_reference(r: dict) -> dict:
        concept = r.pop("medicationCodeableConcept", None)
        if concept is not None:
            mid = f"med-{len(meds)}"
            meds[mid] = {"resourceType": "Medication", "id": mid, "code": concept}
            r["medicationReference"] = {"reference": f"Medication/{mid}"}
        return r
    for f in src.glob("Medication*.ndjson"):
        _edit(f, by_reference)
    assert meds
    (src / "Medication.ndjson").write_text("".join(json.dumps(m) + "\n" for m in meds.values()))
    # a patient on metformin only: no antiresorptive, no chart
    (src / "Patient.2.ndjson").write_text(json.dumps({"resourceType": "Patient", "id": "noise-1"}) + "\n")
    (src / "MedicationRequest.9.ndjson").write_text(json.dumps({
        "resourceType": "MedicationRequest", "id": "mr-noise", "status": "active", "intent": "order",
        "subject": {"reference": "Patient/noise-1"}, "authoredOn": "2026-01-01",
        "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                                                  "code": "860975", "display": "metformin 500 MG"}]}}) + "\n")
    summary = local.run(src, tmp_path / "out", now=NOW, workers=1)
    assert [r["rule_id"] for r in _rows(tmp_path / "out")] == ["DMAB-OVERDUE-TRANSITION"]
    assert summary["medications"] == len(meds)
    assert summary["patients_without_antiresorptive"] == 1 and summary["patients_evaluated"] == 1


def _comparable(summary: dict) -> dict:
    return {k: v for k, v in summary.items()
            if k not in ("seconds", "resources_per_second", "worklist")} | {
        "rejected": {k: v for k, v in summary["rejected"].items() if k != "all"}}


def test_one_or_two_workers_and_any_partitioning_give_identical_files(tmp_path: Path, monkeypatch) -> None:
    write_population(tmp_path / "in", patient_view_fixtures(), files_per_type=2)
    a = local.run(tmp_path / "in", tmp_path / "a", now=NOW, workers=1, partitions=1)
    monkeypatch.setattr(local, "SMALL_EXPORT_BYTES", 0)   # a pool even for this small export
    b = local.run(tmp_path / "in", tmp_path / "b", now=NOW, workers=2, partitions=7)
    for name in ("worklist.csv", "worklist.ndjson", "rejected.ndjson"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert _comparable(a) == _comparable(b)
    assert a["findings"] > 0


def test_workers_from_a_fork_server_when_other_threads_run_give_identical_files(tmp_path: Path,
                                                                                monkeypatch) -> None:
    import threading

    write_population(tmp_path / "in", patient_view_fixtures())
    a = local.run(tmp_path / "in", tmp_path / "a", now=NOW, workers=1)
    monkeypatch.setattr(local, "SMALL_EXPORT_BYTES", 0)
    methods: list[str] = []
    children: list[int] = []
    original = local.ProcessPoolExecutor

    def pool(*args, **kw):
        methods.append(kw["mp_context"].get_start_method())
        children.append(kw["max_workers"])
        return original(*args, **kw)
    monkeypatch.setattr(local, "ProcessPoolExecutor", pool)
    stop = threading.Event()
    other = threading.Thread(target=stop.wait, daemon=True)
    other.start()
    try:
        assert not local._fork_safe()
        b = local.run(tmp_path / "in", tmp_path / "b", now=NOW, workers=2, partitions=3)
    finally:
        stop.set()
        other.join()
    monkeypatch.setattr(local, "_fork_safe", lambda: True)   # other tests may have left threads
    c = local.run(tmp_path / "in", tmp_path / "c", now=NOW, workers=2, partitions=3)
    assert methods == ["forkserver", "fork"]
    assert children == [1, 1]   # --workers 2: this process and one child
    for name in ("worklist.csv", "worklist.ndjson", "rejected.ndjson"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "c" / name).read_bytes(), name
    assert _comparable(a) == _comparable(b) == _comparable(c)


def test_a_small_export_is_swept_without_a_pool(tmp_path: Path, monkeypatch) -> None:
    write_population(tmp_path / "in", patient_view_fixtures())

    def no_pool(workers: int) -> None:
        raise AssertionError("a pool for an export this small")
    monkeypatch.setattr(local, "_pool", no_pool)
    assert local.run(tmp_path / "in", tmp_path / "out", now=NOW, workers=2)["findings"] > 0


def test_cli_sweep_writes_the_worklist_and_a_final_line(tmp_path: Path, capsys) -> None:
    write_population(tmp_path / "in", [OVERDUE])
    rc = main(["sweep", str(tmp_path / "in"), "--as-of", "2026-11-23", "--out", str(tmp_path / "out"),
               "--workers", "1"])
    assert rc == 0
    err = capsys.readouterr().err
    final = err.strip().splitlines()[-1]
    assert final.startswith("bone-cds sweep: ") and str(tmp_path / "out" / "worklist.csv") in final
    assert "1 evaluated" in final and "1 findings" in final
    assert "fx1-pat-1" not in err        # no patient identifier in progress or the final line
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["as_of"] == "2026-11-23" and summary["findings_by_rule"] == {"DMAB-OVERDUE-TRANSITION": 1}
    assert main(["sweep", str(tmp_path / "in"), "--as-of", "23/11/2026", "--out", str(tmp_path / "x")]) == 2
    assert main(["sweep", str(tmp_path / "nowhere"), "--as-of", "2026-11-23", "--out", str(tmp_path / "x")]) == 2


def test_the_sweep_path_imports_no_web_stack(tmp_path: Path) -> None:
    write_population(tmp_path / "in", [OVERDUE])
    code = (
        "import sys\n"
        "from cds_service.cli import main\n"
        f"rc = main(['sweep', {str(tmp_path / 'in')!r}, '--as-of', '2026-11-23', '--out', "
        f"{str(tmp_path / 'out')!r}, '--workers', '1', '--quiet'])\n"
        "assert rc == 0, rc\n"
        "print(','.join(m for m in ('flask', 'werkzeug', 'gunicorn', 'cds_service.app', 'cds_service.api')"
        " if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == ""
    assert (tmp_path / "out" / "worklist.csv").exists()


def test_the_readme_command_over_the_committed_sample(tmp_path: Path, capsys) -> None:
    """``bone-cds sweep fixtures/bulk --as-of 2026-11-23 --out …`` (README "Population sweep")."""
    rc = main(["sweep", str(ROOT / "fixtures" / "bulk"), "--as-of", "2026-11-23",
               "--out", str(tmp_path / "out"), "--quiet"])
    assert rc == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["patients_seen"] >= 30 and summary["findings"] >= 5
    assert summary["rejected"]["count"] == 0
    assert "worklist:" in capsys.readouterr().err


def test_observations_are_those_the_prefetch_would_bring() -> None:
    from sweep.patient import as_prefetched
    calcium = {"resourceType": "Observation", "code": {"coding": [
        {"system": "http://example.org/local", "code": "CA"}, {"system": "http://loinc.org", "code": "17861-6"}]}}
    heart_rate = {"resourceType": "Observation", "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]}}
    no_code = {"resourceType": "Observation", "valueQuantity": {"value": 8.0}}
    condition = {"resourceType": "Condition"}
    assert as_prefetched([calcium, heart_rate, no_code, condition]) == [calcium, condition]


def test_progress_is_a_bar_on_a_terminal_and_plain_lines_otherwise(tmp_path: Path) -> None:
    import io

    from sweep import progress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True
    write_population(tmp_path / "in", [OVERDUE])
    tty, pipe = Terminal(), io.StringIO()
    assert isinstance(progress.for_stream(tty), progress.BarProgress)
    local.run(tmp_path / "in", tmp_path / "a", now=NOW, workers=1, progress=progress.for_stream(tty))
    local.run(tmp_path / "in", tmp_path / "b", now=NOW, workers=1, progress=progress.for_stream(pipe))
    assert "evaluating" in tty.getvalue() and "\r" in tty.getvalue()
    plain = pipe.getvalue().splitlines()
    assert plain and all(line.startswith("sweep: ") for line in plain)
    assert not any("fx1-pat-1" in text for text in (tty.getvalue(), pipe.getvalue()))
    assert progress.for_stream(tty, quiet=True).__class__ is progress.Progress


def test_a_patient_whose_evaluation_fails_is_listed_and_the_others_still_get_rows(tmp_path: Path, monkeypatch,
                                                                                  capsys) -> None:
    import sweep.patient as patient_mod

    patients = write_population(tmp_path / "in", [OVERDUE, OVERDUE])
    original = patient_mod.evaluate_patient

    def flaky(key, resources, **kw):
        if key == patients[0].patient_id:
            raise RuntimeError("a bug quoting record content")
        return original(key, resources, **kw)
    monkeypatch.setattr(patient_mod, "evaluate_patient", flaky)
    rc = main(["sweep", str(tmp_path / "in"), "--as-of", "2026-11-23", "--out", str(tmp_path / "out"),
               "--workers", "1", "--quiet"])
    assert rc == 1
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["patients_failed"] == {"count": 1, "ids": [patients[0].patient_id]}
    assert [r["patient_id"] for r in _rows(tmp_path / "out")] == [patients[1].patient_id]
    err = capsys.readouterr().err
    assert "record content" not in err and patients[0].patient_id not in err


def test_tasks_are_valid_fhir_r4_and_stable_across_runs(tmp_path: Path) -> None:
    from fhir.resources.R4B.task import Task

    write_population(tmp_path / "in")
    for out in ("a", "b"):
        assert main(["sweep", str(tmp_path / "in"), "--as-of", "2026-11-23", "--out", str(tmp_path / out),
                     "--workers", "1", "--quiet", "--tasks"]) == 0
    lines = (tmp_path / "a" / "tasks.ndjson").read_bytes().splitlines()
    assert lines == (tmp_path / "b" / "tasks.ndjson").read_bytes().splitlines()
    rows = _rows(tmp_path / "a")
    assert len(lines) == len(rows) >= 10
    tasks = [orjson.loads(l) for l in lines]
    for task, row in zip(tasks, rows):
        Task.model_validate(task)
        assert task["for"]["reference"] == f"Patient/{row['patient_id']}"
        assert task["code"]["coding"][0]["code"] == row["rule_id"]
    assert len({t["id"] for t in tasks}) == len(tasks)
    assert {t["priority"] for t in tasks} <= {"asap", "urgent", "routine"}
