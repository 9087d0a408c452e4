"""``--engine spark`` gives the local engine's files, byte for byte (issue 15 "Engines").

On a generated population (bench.sweep: ~10% on antiresorptives, some deceased), the patient-view
fixtures and a few bad lines. Needs PySpark and Java (the ``spark`` extra): skipped without them.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest

pytestmark = pytest.mark.spark
pyspark = pytest.importorskip("pyspark")
if shutil.which("java") is None:
    pytest.skip("no Java runtime", allow_module_level=True)

from bench.sweep import write_population as write_synthetic  # noqa: E402
from cds_service.cli import main  # noqa: E402
from sweep import local, spark  # noqa: E402
from tests.sweep_helpers import write_population  # noqa: E402

NOW = datetime(2026, 11, 23, 23, 59, 59, tzinfo=timezone.utc)
VOLATILE = ("seconds", "resources_per_second", "worklist")


def _comparable(summary: dict) -> dict:
    out = {k: v for k, v in summary.items() if k not in VOLATILE}
    out["rejected"] = {k: v for k, v in summary["rejected"].items() if k != "all"}
    return out


@pytest.fixture(scope="module")
def population(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("pop")
    write_synthetic(src / "synthetic", 3000, seed=7)
    write_population(src / "fixtures", files_per_type=2)
    export = src / "export"
    export.mkdir()
    for folder in ("synthetic", "fixtures"):
        for f in (src / folder).iterdir():
            (export / f"{f.stem}.{folder}.ndjson").write_bytes(f.read_bytes())
    (export / "Observation.bad.ndjson").write_text('{"resourceType": "Observation", \n[]\n{"resourceType": "Nope"}\n')
    return export


def test_spark_and_local_engines_write_identical_files(population: Path, tmp_path: Path) -> None:
    a = local.run(population, tmp_path / "local", now=NOW, workers=2)
    b = spark.run(population, tmp_path / "spark", now=NOW, master="local[2]")
    for name in ("worklist.csv", "worklist.ndjson", "rejected.ndjson"):
        assert (tmp_path / "local" / name).read_bytes() == (tmp_path / "spark" / name).read_bytes(), name
    assert _comparable(a) == _comparable(b)
    assert a["findings"] >= 20 and a["patients_deceased_not_evaluated"] > 0 and a["rejected"]["count"] == 3


def test_cli_engine_spark(population: Path, tmp_path: Path) -> None:
    assert main(["sweep", str(population), "--as-of", "2026-11-23", "--out", str(tmp_path / "out"),
                 "--engine", "spark", "--master", "local[2]", "--quiet"]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["findings"] >= 20
