"""BP-RENAL-CONTRAINDICATION (RULES.md §4): eGFR below the agent's cut-off, or severe CKD."""

from __future__ import annotations

import pytest

from cards.thresholds import Thresholds
from tests.factory import ICD10, SNOMED, condition, draft, procedure
from tests.rules._bp_helpers import (
    ALENDRONATE_70,
    ETIDRONATE,
    IBANDRONATE_150,
    IBANDRONATE_IV,
    PAMIDRONATE,
    RISEDRONATE_150,
    ZOL4,
    ZOL5,
    ZOL_IN,
    ago,
    calcium,
    card,
    creatinine,
    egfr,
    ids,
    override_codes,
    run,
)

RID = "BP-RENAL-CONTRAINDICATION"


def _iv_labs(value, days=10, **kw):
    return [egfr(value, ago(days), **kw), calcium(9.4, ago(days))]


def test_bp_renal_zol5_egfr_28_is_critical_with_number_date_and_why_no_crcl() -> None:
    """BP-RENAL-CONTRAINDICATION: zoledronic acid 5 mg at eGFR 28 is critical (contraindicated)."""
    cards = run(_iv_labs(28) + [creatinine(1.9, ago(10))], [draft(ZOL5)])
    c = card(cards, RID)
    assert c is not None
    assert c["indicator"] == "critical"
    assert c["summary"] == (
        f"eGFR 28 on {ago(10)} (below 35): zoledronic acid 5 mg is contraindicated " "at this kidney function"
    )
    assert override_codes(c) == ["crcl-above-cutoff", "specialist-decision", "acute-value-recovered"]
    assert c["source"]["topic"] == {
        "system": "urn:bone-safety-cds:rule",
        "code": RID,
        "display": "Kidney function below the agent's cut-off",
    }
    assert "Reclast" in c["source"]["label"]
    assert c["links"][0]["url"].endswith("query=reclast")
    # v2 (A10): a creatinine without a weight gives no CrCl: the eGFR is judged and the card says why
    assert "Cockcroft-Gault creatinine clearance could not be computed (no body weight)" in c["detail"]


def test_bp_renal_zol5_egfr_40_does_not_fire() -> None:
    """BP-RENAL-CONTRAINDICATION: zoledronic acid 5 mg at eGFR 40 is acceptable."""
    assert RID not in ids(run(_iv_labs(40), [draft(ZOL5)]))


@pytest.mark.parametrize(
    "code, cutoff, indicator, oral",
    [
        (ZOL5, 35, "critical", False),
        (ALENDRONATE_70, 35, "warning", True),
        (RISEDRONATE_150, 30, "warning", True),
        (IBANDRONATE_150, 30, "warning", True),
        (IBANDRONATE_IV, 30, "critical", False),
        (PAMIDRONATE, 30, "critical", False),
        (ETIDRONATE, 30, "warning", True),
        (ZOL4, 30, "critical", False),
    ],
)
def test_bp_renal_cutoff_per_agent_below_at_above(code, cutoff, indicator, oral) -> None:
    """BP-RENAL-CONTRAINDICATION: just below the agent's cut-off fires; at and above do not."""
    days = 200 if oral else 10  # oral window 365 days, IV window 30 days
    below = card(run(_iv_labs(cutoff - 1, days), [draft(code)]), RID)
    assert below is not None and below["indicator"] == indicator
    assert f"eGFR {cutoff - 1} on {ago(days)} (below {cutoff})" in below["summary"]
    assert RID not in ids(run(_iv_labs(cutoff, days), [draft(code)]))
    assert RID not in ids(run(_iv_labs(cutoff + 1, days), [draft(code)]))


def test_bp_renal_iv_window_is_30_days_oral_window_365_days() -> None:
    """BP-RENAL-CONTRAINDICATION: stale eGFR (outside the agent's window) is not used."""
    assert RID in ids(run([egfr(28, ago(30)), calcium(9.4, ago(5))], [draft(ZOL5)]))
    assert RID not in ids(run([egfr(28, ago(31)), calcium(9.4, ago(5))], [draft(ZOL5)]))
    assert RID in ids(run([egfr(30, ago(365))], [draft(ALENDRONATE_70)]))
    assert RID not in ids(run([egfr(30, ago(366))], [draft(ALENDRONATE_70)]))


def test_bp_renal_latest_eGFR_wins_and_ignored_statuses_do_not_count() -> None:
    """BP-RENAL-CONTRAINDICATION: a later normal eGFR wins; entered-in-error/cancelled ignored."""
    assert RID not in ids(run([egfr(25, ago(40)), egfr(62, ago(5))], [draft(ALENDRONATE_70)]))
    assert RID not in ids(
        run([egfr(62, ago(40)), egfr(25, ago(5), status="entered-in-error")], [draft(ALENDRONATE_70)])
    )
    assert RID not in ids(run([egfr(25, ago(5), status="cancelled")], [draft(ALENDRONATE_70)]))
    assert RID in ids(run([egfr(62, ago(40)), egfr(25, ago(5), status="amended")], [draft(ALENDRONATE_70)]))


def test_bp_renal_comparators_and_units() -> None:
    """BP-RENAL-CONTRAINDICATION: "<15" is below every cut-off; ">60" is not; units (D5)."""
    c = card(run([egfr(15, ago(3), comparator="<")], [draft(RISEDRONATE_150)]), RID)
    assert c is not None and c["summary"].startswith(f"eGFR <15 on {ago(3)}")
    assert RID not in ids(run([egfr(None, ago(3), value_string=">60")], [draft(ALENDRONATE_70)]))
    # unit string without UCUM system is normalised; an unknown unit is not used
    assert RID in ids(run([egfr(33, ago(3), unit="ml/min/1.73m2", ucum=False)], [draft(ALENDRONATE_70)]))
    # A35: on an eGFR code plain mL/min means mL/min/1.73 m² (used); mL/s is not recognised
    assert RID in ids(run([egfr(33, ago(3), unit="mL/min", ucum=False)], [draft(ALENDRONATE_70)]))
    assert RID not in ids(run([egfr(33, ago(3), unit="mL/s", ucum=False)], [draft(ALENDRONATE_70)]))
    # 34.5 rounds half-up to 35: not below 35; 34.4 rounds to 34: below
    assert RID not in ids(run([egfr(34.5, ago(3))], [draft(ALENDRONATE_70)]))
    assert RID in ids(run([egfr(34.4, ago(3))], [draft(ALENDRONATE_70)]))


def test_bp_renal_ckd4_record_fires_for_any_agent_without_egfr() -> None:
    """BP-RENAL-CONTRAINDICATION: an active CKD 4/5 record fires (oral → warning, ZOL 5 mg → critical)."""
    ckd = condition("N18.4", ICD10, onset="2024-02-01")
    oral = card(run([ckd], [draft(ALENDRONATE_70)]), RID)
    assert oral is not None and oral["indicator"] == "warning"
    assert (
        oral["summary"] == "CKD stage 4/5 on record: alendronate is not recommended in severe kidney disease"
    )
    assert "No usable kidney function result in the last 365 days" in oral["detail"]
    zol = card(run([ckd, calcium(9.2, ago(3))], [draft(ZOL5)]), RID)
    assert zol is not None and zol["indicator"] == "critical"
    assert "contraindicated" in zol["summary"]


def test_bp_renal_ckd_record_wins_over_a_normal_egfr() -> None:
    """BP-RENAL-CONTRAINDICATION: eGFR 45 with an active CKD stage 5 diagnosis still fires."""
    c = card(run([condition("433146000"), egfr(45, ago(20))], [draft(RISEDRONATE_150)]), RID)
    assert c is not None and "is not below the cut-off, but a severe kidney disease record" in c["detail"]


def test_bp_renal_dialysis_makes_any_iv_agent_critical_oral_stays_warning() -> None:
    """BP-RENAL-CONTRAINDICATION: IV bisphosphonate with dialysis/ESRD → critical; oral → warning."""
    hd = procedure("302497006", SNOMED, ago(20))
    iv = card(run([hd, calcium(9.0, ago(2))], [draft(IBANDRONATE_IV)]), RID)
    assert iv is not None and iv["indicator"] == "critical"
    assert iv["summary"] == "Dialysis on record: ibandronate IV is not recommended in severe kidney disease"
    esrd = card(run([condition("N18.6", ICD10), calcium(9.0, ago(2))], [draft(PAMIDRONATE)]), RID)
    assert esrd is not None and esrd["indicator"] == "critical"
    oral = card(run([hd], [draft(ALENDRONATE_70)]), RID)
    assert oral is not None and oral["indicator"] == "warning"
    # v2 (A14): every IV agent is critical, CKD stage 4 (not ESRD/dialysis) included
    ckd4 = card(run([condition("431857002"), calcium(9.0, ago(2))], [draft(IBANDRONATE_IV)]), RID)
    assert ckd4 is not None and ckd4["indicator"] == "critical"


def test_bp_renal_old_dialysis_resolved_or_refuted_records_do_not_fire() -> None:
    """BP-RENAL-CONTRAINDICATION: dialysis > 90 days ago, resolved or refuted CKD do not count."""
    labs = [egfr(70, ago(100))]
    assert RID not in ids(run(labs + [procedure("302497006", SNOMED, ago(91))], [draft(ALENDRONATE_70)]))
    assert RID not in ids(run(labs + [condition("431857002", clinical="resolved")], [draft(ALENDRONATE_70)]))
    assert RID not in ids(
        run(labs + [condition("431857002", verification="refuted")], [draft(ALENDRONATE_70)])
    )
    assert RID not in ids(
        run(labs + [condition("431857002", verification="entered-in-error")], [draft(ALENDRONATE_70)])
    )
    assert RID not in ids(
        run(labs + [procedure("302497006", SNOMED, ago(20), status="not-done")], [draft(ALENDRONATE_70)])
    )


def test_bp_renal_zoledronic_without_strength_is_read_from_the_indication() -> None:
    """BP-RENAL-CONTRAINDICATION: ZOL ingredient without dose → 5 mg cut-off unless oncology."""
    c = card(run(_iv_labs(32), [draft(ZOL_IN)]), RID)
    assert c is not None and c["indicator"] == "critical"
    assert "strength not stated on the order" in c["detail"]
    myeloma = condition("109989006", onset="2025-01-10")
    assert RID not in ids(run(_iv_labs(32) + [myeloma], [draft(ZOL_IN)]))
    assert RID in ids(run(_iv_labs(29) + [myeloma], [draft(ZOL_IN)]))


def test_bp_renal_text_matched_drug_says_identified_by_name() -> None:
    """BP-RENAL-CONTRAINDICATION: a drug recognised by text only is named as such (D3)."""
    c = card(run([egfr(31, ago(50))], [draft(None, text="Fosamax 70 mg weekly")]), RID)
    assert c is not None and "identified by name, not code" in c["detail"]


def test_bp_renal_two_drafts_one_card_naming_both() -> None:
    """BP-RENAL-CONTRAINDICATION: one card per request naming every draft concerned (§7)."""
    cards = run(
        _iv_labs(33),
        [draft(ALENDRONATE_70, text="Alendronate 70 mg tablet"), draft(ZOL5, text="Reclast 5 mg/100 mL")],
    )
    assert ids(cards).count(RID) == 1
    c = card(cards, RID)
    assert c["indicator"] == "critical"
    assert "Alendronate 70 mg tablet" in c["detail"] and "Reclast 5 mg/100 mL" in c["detail"]


def test_bp_renal_hooks_order_select_uses_selections_and_no_iv_card_on_patient_view() -> None:
    """BP-RENAL-CONTRAINDICATION: order-select only for the selected draft; patient-view only for a
    current oral course (A21), so not without one."""
    d = draft(ZOL5)
    labs = _iv_labs(28)
    assert RID in ids(run(labs, [d], hook="order-select"))
    assert RID not in ids(run(labs, [d], hook="order-select", selections=[]))
    assert RID not in ids(run(labs, [], hook="patient-view"))


def test_bp_renal_excludes_ar_renal_function_unknown() -> None:
    """§7: BP-RENAL-CONTRAINDICATION and AR-RENAL-FUNCTION-UNKNOWN never together."""
    cards = run([condition("433146000"), calcium(9.4, ago(5))], [draft(ZOL5)])
    assert RID in ids(cards) and "AR-RENAL-FUNCTION-UNKNOWN" not in ids(cards)


def test_bp_renal_thresholds_come_from_configuration() -> None:
    """BP-RENAL-CONTRAINDICATION: the alendronate cut-off is the D10 parameter, not a literal."""
    labs = [egfr(33, ago(30))]
    assert RID in ids(run(labs, [draft(ALENDRONATE_70)]))
    assert RID not in ids(
        run(labs, [draft(ALENDRONATE_70)], thresholds=Thresholds(egfr_cutoff_alendronate=30))
    )
