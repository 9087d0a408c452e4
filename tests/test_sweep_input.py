"""Reading an export: file names, several files per type, gzip, and every kind of bad line —
counted and reported with file and 1-based line, never a crash, never a silently smaller worklist."""

from __future__ import annotations

import gzip
import json
from datetime import datetime, timezone
from pathlib import Path

import orjson

from sweep import local
from tests.sweep_helpers import FIXTURES, write_population

NOW = datetime(2026, 11, 23, 15, tzinfo=timezone.utc)
OVERDUE = FIXTURES / "denosumab" / "overdue-8-months.json"


def _rows(out: Path) -> list[dict]:
    return [orjson.loads(l) for l in (out / "worklist.ndjson").read_bytes().splitlines()]


def _export(tmp_path: Path, files_per_type: int = 1) -> Path:
    write_population(tmp_path / "in", [OVERDUE], files_per_type=files_per_type)
    return tmp_path / "in"


def test_gzip_and_several_files_per_type_give_the_same_worklist(tmp_path: Path) -> None:
    plain = _export(tmp_path, files_per_type=1)
    split = tmp_path / "split"
    write_population(split, [OVERDUE], files_per_type=3)
    for f in list(split.glob("*.ndjson")):       # Type.ndjson.gz, Type.2.ndjson.gz, …
        Path(str(f) + ".gz").write_bytes(gzip.compress(f.read_bytes()))
        f.unlink()
    assert any(".2." in f.name for f in split.iterdir())
    a = local.run(plain, tmp_path / "a", now=NOW, workers=1)
    b = local.run(split, tmp_path / "b", now=NOW, workers=1)
    assert _rows(tmp_path / "a") == _rows(tmp_path / "b")
    assert [r["rule_id"] for r in _rows(tmp_path / "a")] == ["DMAB-OVERDUE-TRANSITION"]
    assert a["resources_read"] == b["resources_read"] and len(b["files"]) > len(a["files"])


def test_the_type_of_a_line_is_its_own_resource_type_not_the_file_name(tmp_path: Path) -> None:
    src = _export(tmp_path)
    mixed = b"".join(f.read_bytes() for f in sorted(src.glob("*.ndjson")))
    for f in src.glob("*.ndjson"):
        f.unlink()
    (src / "export.ndjson").write_bytes(mixed)
    local.run(src, tmp_path / "out", now=NOW, workers=1)
    assert [r["rule_id"] for r in _rows(tmp_path / "out")] == ["DMAB-OVERDUE-TRANSITION"]


def test_every_bad_line_is_reported_with_file_and_line(tmp_path: Path) -> None:
    src = _export(tmp_path)
    good = (src / "Observation.ndjson").read_text()
    bad = [
        '{"resourceType": "Observation", "status": ',                          # line 1 malformed
        '{"id": "x", "status": "final"}',                                      # 2 no resourceType
        '{"resourceType": "Observatoin", "id": "typo"}',                       # 3 unknown type
        '{"resourceType": "Observation", "id": "orphan", "status": "final"}',  # 4 no patient
        '{"resourceType": "Condition", "id": "g", "subject": {"reference": "Group/1"}}',  # 5
        '[1, 2]',                                                              # 6 not a resource
        '',                                                                    # 7 blank: skipped
        '{"resourceType": "Encounter", "id": "e", "subject": {"reference": "Patient/x"}}',  # 8
    ]
    (src / "Observation.2.ndjson").write_text("\n".join(bad) + "\n" + good)
    raw = (src / "Condition.ndjson").read_bytes() * 200
    (src / "Condition.3.ndjson.gz").write_bytes(gzip.compress(raw)[:-40])   # truncated gzip
    summary = local.run(src, tmp_path / "out", now=NOW, workers=1)

    rejected = {(r["file"], r["line"]): r["reason"] for r in summary["rejected"]["lines"]}
    f = "Observation.2.ndjson"
    assert rejected[(f, 1)] == "malformed-json"
    assert rejected[(f, 2)] == "no-resource-type"
    assert rejected[(f, 3)] == "unknown-type"
    assert rejected[(f, 4)] == "no-patient"
    assert rejected[(f, 5)] == "no-patient"
    assert rejected[(f, 6)] == "not-a-resource"
    gz = [(k, v) for k, v in rejected.items() if k[0] == "Condition.3.ndjson.gz"]
    assert len(gz) == 1 and gz[0][1] == "truncated-gzip" and gz[0][0][1] > 1
    assert summary["rejected"]["count"] == 7
    assert summary["rejected"]["by_reason"] == {"malformed-json": 1, "no-patient": 2, "no-resource-type": 1,
                                                "not-a-resource": 1, "truncated-gzip": 1, "unknown-type": 1}
    assert summary["resources_not_read_by_the_rules"] == {"Encounter": 1}
    assert summary["blank_lines"] == 1
    on_disk = [json.loads(l) for l in (tmp_path / "out" / "rejected.ndjson").read_text().splitlines()]
    assert len(on_disk) == 7 and all(set(r) <= {"file", "line", "reason", "resourceType"} for r in on_disk)
    # what could be read still counts: the good lines after the bad ones, the gzip's first lines
    assert [r["rule_id"] for r in _rows(tmp_path / "out")] == ["DMAB-OVERDUE-TRANSITION"]
    assert summary["resources_by_type"]["Condition"] > 2


def test_resources_of_a_patient_without_a_patient_resource_are_counted(tmp_path: Path) -> None:
    src = _export(tmp_path)
    (src / "Patient.ndjson").unlink()
    summary = local.run(src, tmp_path / "out", now=NOW, workers=1)
    assert summary["patients_seen"] == 0
    assert summary["unknown_patient"]["patients"] == 1
    assert summary["unknown_patient"]["resources"] == summary["resources_read"]
    assert _rows(tmp_path / "out") == []


def test_a_missing_input_folder_is_an_error_not_an_empty_worklist(tmp_path: Path) -> None:
    import pytest
    with pytest.raises(FileNotFoundError):
        local.run(tmp_path / "nope", tmp_path / "out", now=NOW, workers=1)


def test_an_id_ending_in_a_newline_keeps_its_records_together(tmp_path: Path) -> None:
    """``Patient.id`` "p1\\n" passes the id check (a ``$`` before a final newline) and a
    reference "Patient/p1\\n/_history/1" names it: one patient, whatever the partition format."""
    src = tmp_path / "in"
    src.mkdir()
    (src / "Patient.ndjson").write_bytes(orjson.dumps({"resourceType": "Patient", "id": "p1\n"}) + b"\n")
    (src / "Condition.ndjson").write_bytes(orjson.dumps(
        {"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p1\n/_history/1"},
         "code": {"text": "osteoporosis"}}) + b"\n")
    for partitions in (1, 3):
        summary = local.run(src, tmp_path / f"out{partitions}", now=NOW, workers=1, partitions=partitions)
        assert summary["patients_seen"] == 1 and summary["unknown_patient"]["patients"] == 0
        assert summary["patients_without_antiresorptive"] == 1 and summary["resources_read"] == 2


def test_an_observation_with_malformed_codings_never_stops_the_sweep(tmp_path: Path) -> None:
    """A coding whose ``code`` is a list (or ``system`` an object) is no search hit, and the rest
    of the export is still swept: the overdue row is kept (before the fix: TypeError, no worklist)."""
    src = _export(tmp_path)
    pid = orjson.loads((src / "Patient.ndjson").read_bytes().splitlines()[0])["id"]
    odd = [{"resourceType": "Observation", "id": f"odd-{i}", "status": "final",
            "subject": {"reference": f"Patient/{pid}"}, "effectiveDateTime": "2026-11-20",
            "code": {"coding": [coding]}}
           for i, coding in enumerate([{"system": "http://loinc.org", "code": ["17861-6"]},
                                       {"system": {"x": 1}, "code": "17861-6"}, {"code": 17861}])]
    with (src / "Observation.ndjson").open("ab") as f:
        f.write(b"".join(orjson.dumps(o) + b"\n" for o in odd))
    local.run(src, tmp_path / "out", now=NOW, workers=1)
    assert [r["rule_id"] for r in _rows(tmp_path / "out")] == ["DMAB-OVERDUE-TRANSITION"]
