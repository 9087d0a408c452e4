"""Smoke test of ``python -m bench.sweep`` (not a timing test): the synthetic population is
deterministic for a seed, has what it promises, and one small sweep over it finds rows."""

from __future__ import annotations

from pathlib import Path

from bench.sweep import NOW, write_population
from sweep import local


def test_population_is_seeded_and_about_ten_percent_on_antiresorptives(tmp_path: Path) -> None:
    a = write_population(tmp_path / "a", 5000, seed=3)
    b = write_population(tmp_path / "b", 5000, seed=3)
    assert a == b and a["resources"] >= 5000
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted(p.name for p in (tmp_path / "b").iterdir())
    assert all((tmp_path / "a" / f.name).read_bytes() == f.read_bytes() for f in (tmp_path / "b").iterdir())
    assert 0.05 <= a["on_antiresorptive"] / a["patients"] <= 0.16
    summary = local.run(tmp_path / "a", tmp_path / "out", now=NOW, workers=1)
    assert summary["patients_seen"] == a["patients"] and summary["rejected"]["count"] == 0
    assert summary["patients_evaluated"] < summary["patients_seen"] / 4 and summary["findings"] > 0
