"""Named thresholds and windows of the clinical catalog (RULES.md D10) with their defaults.

A hospital overrides them without a code change (``BONE_CDS_THRESHOLDS``: a JSON object or a
path to a JSON file, read by ``cds_service.config``). Unknown names, wrong types or inconsistent
values raise :class:`ThresholdError` at start-up naming the parameter.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cds_service.chart import CalciumLimits


class ThresholdError(ValueError):
    """An invalid threshold configuration; the message names the parameter."""


@dataclass(frozen=True)
class Thresholds:
    """RULES.md D10, one field per named parameter, defaults from the catalog."""

    calcium_lookback_days: int = 30
    calcium_total_low_mg_dl: Decimal = Decimal("8.5")
    calcium_total_severe_mg_dl: Decimal = Decimal("7.5")
    calcium_ionized_low_mmol_l: Decimal = Decimal("1.15")
    calcium_ionized_severe_mmol_l: Decimal = Decimal("1.00")
    albumin_reference_g_dl: Decimal = Decimal("4.0")
    albumin_pairing_days: int = 7
    egfr_lookback_days_denosumab: int = 365
    egfr_lookback_days_oral_bp: int = 365
    egfr_lookback_days_iv_bp: int = 30
    egfr_advanced_ckd: int = 30
    egfr_cutoff_zoledronic_5mg: int = 35
    egfr_cutoff_alendronate: int = 35
    egfr_cutoff_risedronate: int = 30
    egfr_cutoff_ibandronate: int = 30
    egfr_cutoff_pamidronate: int = 30
    egfr_cutoff_etidronate: int = 30
    egfr_cutoff_zoledronic_4mg: int = 30
    dialysis_procedure_lookback_days: int = 90
    vitd_lookback_days: int = 365
    vitd_deficient_ng_ml: Decimal = Decimal("20")
    vitd_severe_ng_ml: Decimal = Decimal("12")
    dental_lookback_days: int = 365
    dental_healing_days: int = 28
    initiation_gap_days: int = 365
    dmab60_interval_months: int = 6
    dmab60_overdue_months: int = 7
    dmab60_due_lead_days: int = 14
    dmab60_early_margin_days: int = 28
    dmab60_transition_horizon_months: int = 24
    dmab120_interval_days: int = 28
    dmab120_grace_days: int = 7
    dmab120_min_interval_days: int = 21
    dmab120_loading_min_interval_days: int = 6
    dmab120_stop_horizon_days: int = 180
    pregnancy_test_lookback_days: int = 30
    hcg_positive_miu_ml: Decimal = Decimal("25")
    reproductive_age_min: int = 12
    reproductive_age_max: int = 50
    infection_recent_days: int = 30
    bp_oral_holiday_years: int = 5
    bp_iv_holiday_infusions: int = 3
    zol5_min_interval_days: int = 330
    # catalog version 2 (D10): clock, card text limits and the parameters v1 kept in code
    clock_time_zone: str = "UTC"
    future_skew_minutes: int = 5
    summary_max_chars: int = 140
    record_text_max_chars: int = 40
    detail_main_max_chars: int = 700
    detail_details_max_chars: int = 1500
    calcium_lookback_days_oral_bp: int = 90
    calcium_high_mg_dl: Decimal = Decimal("10.5")
    predisposed_calcium_evidence_days: int = 30
    dmab_pv_calcium_window_months_60mg: int = 6
    dmab_pv_calcium_window_weeks_120mg: int = 8
    weight_lookback_days: int = 365
    zol4_dose_band_low: int = 30
    zol4_dose_band_high: int = 60
    supplement_dispense_lookback_days: int = 120
    calcimimetic_admin_lookback_days: int = 30
    zol5_reinitiation_months: int = 18
    dose_dedupe_days: int = 4
    dispense_default_days_supply: int = 30
    zol5_active_months: int = 12
    zol4_active_days: int = 28
    ibandronate_iv_active_months: int = 3
    pamidronate_active_days: int = 28
    oral_course_gap_days: int = 365
    oral_course_current_days: int = 90
    oral_order_default_days: int = 365
    iv_course_gap_months: int = 24
    iv_course_current_months: int = 18
    planned_followon_grace_days: int = 30
    dmab60_schedule_min_months: int = 5
    dmab120_schedule_min_days: int = 28
    dmab120_schedule_max_days: int = 91
    loading_phase_days: int = 28
    pregnancy_onset_max_weeks: int = 42
    workup_min_members: int = 2
    renal_recheck_days_iv_bp: int = 7
    renal_recheck_days_oral_bp: int = 90
    pediatric_age_below: int = 18
    gctb_exemption_min_age: int = 12

    @property
    def calcium_limits(self) -> CalciumLimits:
        return CalciumLimits(self.calcium_total_low_mg_dl, self.calcium_total_severe_mg_dl,
                             self.calcium_ionized_low_mmol_l, self.calcium_ionized_severe_mmol_l,
                             self.albumin_reference_g_dl, self.albumin_pairing_days)

    @classmethod
    def from_mapping(cls, overrides: Mapping[str, Any]) -> "Thresholds":
        """Defaults with ``overrides`` applied and checked (ThresholdError on any problem)."""
        if not isinstance(overrides, Mapping):
            raise ThresholdError("thresholds must be a JSON object of name → value")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for name, raw in overrides.items():
            if name not in fields:
                raise ThresholdError(f"unknown threshold '{name}' (see RULES.md D10)")
            kind = fields[name].type
            if kind in (str, "str"):
                if not isinstance(raw, str) or not raw.strip():
                    raise ThresholdError(f"threshold '{name}' must be a non-empty string, got {raw!r}")
                values[name] = raw.strip()
                continue
            if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
                raise ThresholdError(f"threshold '{name}' must be a number, got {raw!r}")
            try:
                if kind in (int, "int"):
                    if isinstance(raw, float) and not raw.is_integer():
                        raise ValueError
                    value: Any = int(raw)
                else:
                    value = Decimal(str(raw))
            except (ValueError, InvalidOperation):
                raise ThresholdError(f"threshold '{name}' must be a {'whole ' if kind in (int, 'int') else ''}number, got {raw!r}") from None
            if value < 0:
                raise ThresholdError(f"threshold '{name}' must not be negative, got {raw!r}")
            values[name] = value
        t = cls(**values)
        t.check()
        return t

    def check(self) -> None:
        """Consistency checks between parameters."""
        pairs = [("calcium_total_severe_mg_dl", "calcium_total_low_mg_dl"),
                 ("calcium_ionized_severe_mmol_l", "calcium_ionized_low_mmol_l"),
                 ("vitd_severe_ng_ml", "vitd_deficient_ng_ml"),
                 ("dmab60_interval_months", "dmab60_overdue_months"),
                 ("dmab60_overdue_months", "dmab60_transition_horizon_months"),
                 ("reproductive_age_min", "reproductive_age_max")]
        for lower, upper in pairs:
            if getattr(self, lower) > getattr(self, upper):
                raise ThresholdError(f"threshold '{lower}' ({getattr(self, lower)}) must not exceed "
                                     f"'{upper}' ({getattr(self, upper)})")
        for f in dataclasses.fields(self):
            if f.name.endswith(("_days", "_months", "_weeks", "_years", "_chars")) \
                    and getattr(self, f.name) == 0:
                raise ThresholdError(f"threshold '{f.name}' must be positive (a window or limit of 0)")
        if self.zol4_dose_band_low > self.zol4_dose_band_high:
            raise ThresholdError("threshold 'zol4_dose_band_low' must not exceed 'zol4_dose_band_high'")
        try:
            self.zone
        except (ZoneInfoNotFoundError, ValueError):
            raise ThresholdError(f"threshold 'clock_time_zone' is not a known IANA time zone: "
                                 f"{self.clock_time_zone!r}") from None

    @property
    def zone(self) -> ZoneInfo:
        """The configured clock zone (§1.3 Clock, A3): "today" is the date of now in this zone."""
        return ZoneInfo(self.clock_time_zone)


DEFAULT_THRESHOLDS = Thresholds()
