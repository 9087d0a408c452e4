"""Bulk Data NDJSON made from the patient-view fixtures, for the sweep tests and fixtures/bulk/.

Each fixture becomes its own patient: every resource id and every ``Type/id`` reference is
prefixed with ``fx{n}-`` (so ``Patient/pat-1`` of fixture 3 is ``Patient/fx3-pat-1``), which keeps
the fixtures' patients apart exactly as a server's export would. Resources are written one type
per file as ``$export`` does. Regenerate the committed sample with
``python -m tests.sweep_helpers fixtures/bulk``.
"""

from __future__ import annotations

import json
import re
import sys
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
SCENARIO = "org.bone-safety-cds.scenario"
_REF = re.compile(r"^([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})$")


@dataclass(frozen=True)
class FixturePatient:
    path: Path
    body: dict
    patient_id: str      # in the NDJSON
    now: datetime


def patient_view_fixtures() -> list[Path]:
    out = []
    for path in sorted(FIXTURES.glob("*/*.json")):
        if path.parent.name == "negative":
            continue
        body = json.loads(path.read_text())
        if body.get("hook") == "patient-view":
            out.append(path)
    return out


def _rewrite(value: Any, prefix: str) -> Any:
    if isinstance(value, dict):
        out = {k: _rewrite(v, prefix) for k, v in value.items()}
        if isinstance(value.get("resourceType"), str) and isinstance(value.get("id"), str):
            out["id"] = prefix + value["id"]
        ref = value.get("reference")
        if isinstance(ref, str) and _REF.match(ref):
            rtype, rid = _REF.match(ref).groups()  # type: ignore[union-attr]
            out["reference"] = f"{rtype}/{prefix}{rid}"
        return out
    if isinstance(value, list):
        return [_rewrite(v, prefix) for v in value]
    return value


def _resources(body: dict) -> list[dict]:
    out = []
    for value in (body.get("prefetch") or {}).values():
        if not isinstance(value, dict):
            continue
        if value.get("resourceType") == "Bundle":
            out += [e["resource"] for e in value.get("entry") or []
                    if isinstance(e, dict) and isinstance(e.get("resource"), dict)
                    and e["resource"].get("resourceType") != "OperationOutcome"]
        elif value.get("resourceType") != "OperationOutcome":
            out.append(value)
    return out


def write_population(dest: Path, paths: list[Path] | None = None, *, files_per_type: int = 1,
                     ) -> list[FixturePatient]:
    """The fixtures' patients as ``Type.ndjson`` files in ``dest`` (``Type.2.ndjson`` … when
    ``files_per_type`` > 1, round robin); the patients written, with each fixture's ``now``."""
    dest.mkdir(parents=True, exist_ok=True)
    by_type: dict[str, list[dict]] = defaultdict(list)
    patients = []
    for n, path in enumerate(paths if paths is not None else patient_view_fixtures(), 1):
        body = json.loads(path.read_text())
        prefix = f"fx{n}-"
        for res in _resources(body):
            by_type[res["resourceType"]].append(_rewrite(res, prefix))
        now = datetime.fromisoformat(body["extension"][SCENARIO]["now"].replace("Z", "+00:00"))
        patients.append(FixturePatient(path, body, prefix + body["context"]["patientId"], now))
    for rtype, resources in sorted(by_type.items()):
        for k in range(files_per_type):
            chunk = resources[k::files_per_type]
            if not chunk:
                continue
            name = f"{rtype}.ndjson" if k == 0 else f"{rtype}.{k + 1}.ndjson"
            (dest / name).write_text("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in chunk))
    return patients


if __name__ == "__main__":  # pragma: no cover
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "fixtures/bulk")
    for old in target.glob("*.ndjson"):
        old.unlink()
    written = write_population(target)
    print(f"{len(written)} patients written to {target}")
