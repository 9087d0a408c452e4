"""Named parameters of the catalog (RULES.md D10): defaults, overrides and start-up validation."""

from __future__ import annotations

import dataclasses
import re
from decimal import Decimal
from pathlib import Path

import pytest

from cards.thresholds import DEFAULT_THRESHOLDS, ThresholdError, Thresholds
from cds_service.config import ConfigError, Settings

CATALOG = Path(__file__).resolve().parents[2] / "shared" / "clinical" / "RULES.md"


def _d10_names() -> list[str]:
    text = CATALOG.read_text(encoding="utf-8")
    section = text[text.index("### D10."):text.index("## 3. Denosumab rules")]
    names: list[str] = []
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        base = ""
        for tok in re.findall(r"`([^`]+)`", line.split("|")[1]):
            if tok.startswith("_"):
                names.append(base + tok)
            else:
                names.append(tok)
                base = tok.rsplit("_", 1)[0]
    return names


@pytest.mark.skipif(not CATALOG.exists(), reason="catalog not beside the project")
def test_every_catalog_parameter_is_a_threshold() -> None:
    fields = {f.name for f in dataclasses.fields(Thresholds)}
    missing = [n for n in _d10_names() if n not in fields]
    assert not missing, f"D10 parameters without a setting: {missing}"


def test_v2_defaults() -> None:
    t = DEFAULT_THRESHOLDS
    assert (t.clock_time_zone, t.future_skew_minutes, t.detail_main_max_chars) == ("UTC", 5, 700)
    assert (t.planned_followon_grace_days, t.oral_order_default_days, t.zol5_reinitiation_months) == (30, 365, 18)
    assert t.calcium_high_mg_dl == Decimal("10.5")
    assert str(t.zone) == "UTC"


def test_time_zone_is_a_setting_and_validated() -> None:
    assert str(Thresholds.from_mapping({"clock_time_zone": "Asia/Tokyo"}).zone) == "Asia/Tokyo"
    for bad in ("Mars/Olympus", "../etc/passwd", " "):
        with pytest.raises(ThresholdError, match="clock_time_zone"):
            Thresholds.from_mapping({"clock_time_zone": bad})
    with pytest.raises(ThresholdError, match="clock_time_zone"):
        Thresholds.from_mapping({"clock_time_zone": 9})


@pytest.mark.parametrize("name", ["dose_dedupe_days", "weight_lookback_days", "detail_main_max_chars",
                                  "planned_followon_grace_days"])
def test_zero_windows_are_refused(name: str) -> None:
    with pytest.raises(ThresholdError, match=name):
        Thresholds.from_mapping({name: 0})


def test_inconsistent_dose_band_is_refused() -> None:
    with pytest.raises(ThresholdError, match="zol4_dose_band_low"):
        Thresholds.from_mapping({"zol4_dose_band_low": 70})


def test_bad_zone_stops_start_up_with_the_name() -> None:
    with pytest.raises(ConfigError, match="clock_time_zone"):
        Settings.from_env({"BONE_CDS_THRESHOLDS": '{"clock_time_zone": "Nowhere/Else"}'})
