"""The sweep's files: ``worklist.csv``, ``worklist.ndjson``, ``summary.json``, ``rejected.ndjson``,
and on request ``tasks.ndjson`` (one FHIR R4 Task per row, for loading back into an EHR worklist)."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path
from typing import Any, Iterable

import orjson

from .patient import COLUMNS, sort_key


def write_worklist(rows: Iterable[dict[str, Any]], out: Path) -> tuple[Path, Path]:
    """Rows sorted by urgency (:func:`sweep.patient.sort_key`) to CSV and NDJSON; their paths."""
    ordered = sorted(rows, key=sort_key)
    csv_path, ndjson_path = out / "worklist.csv", out / "worklist.ndjson"
    with csv_path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in ordered:
            writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in COLUMNS})
    with ndjson_path.open("wb") as f:
        for row in ordered:
            f.write(orjson.dumps({k: row.get(k) for k in COLUMNS}) + b"\n")
    return csv_path, ndjson_path


#: Task.priority per card indicator (FHIR request-priority: routine < urgent < asap < stat).
PRIORITY = {"critical": "asap", "warning": "urgent", "info": "routine"}
RULE_SYSTEM = "urn:bone-safety-cds:rule"
TASK_SYSTEM = "urn:bone-safety-cds:sweep-task"


def task_of(row: dict[str, Any], as_of: str) -> dict[str, Any]:
    """A FHIR R4 Task proposing the follow-up of one worklist row. Its id and identifier are the
    same for the same patient, rule and date, so loading a re-run again updates, never duplicates."""
    key = f"{row['rule_id']}|{row['patient_id']}|{as_of}"
    facts = [f"Suggested: {row['suggested_action']}." if row.get("suggested_action") else "",
             f"Last dose {row['key_date']}." if row.get("key_date") else "",
             f"Due {row['due_date']} ({row['days_overdue']} days overdue on {as_of})."
             if row.get("due_date") and (row.get("days_overdue") or 0) > 0 else
             (f"Due {row['due_date']}." if row.get("due_date") else "")]
    task: dict[str, Any] = {
        "resourceType": "Task",
        "id": "bcds-" + hashlib.sha256(key.encode()).hexdigest()[:32],
        "identifier": [{"system": TASK_SYSTEM, "value": key}],
        "status": "requested", "intent": "proposal",
        "priority": PRIORITY.get(row["indicator"], "routine"),
        "code": {"coding": [{"system": RULE_SYSTEM, "code": row["rule_id"]}], "text": row["summary"]},
        "description": row["summary"],
        "for": {"reference": f"Patient/{row['patient_id']}"},
        "authoredOn": as_of,
    }
    note = " ".join(f for f in facts if f)
    if note:
        task["note"] = [{"text": note}]
    return task


def write_tasks(out: Path, as_of: str) -> Path:
    """``tasks.ndjson`` from ``worklist.ndjson`` (same order): one Task per row."""
    path = out / "tasks.ndjson"
    with (out / "worklist.ndjson").open("rb") as rows, path.open("wb") as f:
        for line in rows:
            f.write(orjson.dumps(task_of(orjson.loads(line), as_of)) + b"\n")
    return path


def write_summary(summary: dict[str, Any], out: Path) -> Path:
    path = out / "summary.json"
    path.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


__all__ = ["task_of", "write_summary", "write_tasks", "write_worklist"]
