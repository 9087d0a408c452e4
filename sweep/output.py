"""The sweep's files: ``worklist.csv``, ``worklist.ndjson``, ``summary.json``, ``rejected.ndjson``."""

from __future__ import annotations

import csv
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


def write_rejected(rejections: Iterable[dict[str, Any]], out: Path) -> Path:
    """Every rejected line (file, line, reason; never its content) to ``rejected.ndjson``."""
    path = out / "rejected.ndjson"
    with path.open("wb") as f:
        for r in rejections:
            f.write(orjson.dumps(r) + b"\n")
    return path


def write_summary(summary: dict[str, Any], out: Path) -> Path:
    path = out / "summary.json"
    path.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


__all__ = ["write_rejected", "write_summary", "write_worklist"]
