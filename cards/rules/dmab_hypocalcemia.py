"""DMAB-HYPOCALCEMIA — low calcium with denosumab (order-select, order-sign, patient-view).

Evidence: seed 001_282e696d69a84463.txt §Calcium and Vitamin D Supplementation and §Hypocalcemia
(severe, sometimes fatal hypocalcemia; CKD, CKD-MBD and calcimimetics raise the risk); seed
002_b4619149f75727a9.txt (not suitable with a low blood calcium; blood test before the
injection); seed 003_0a5546957735fee5.txt §Side Effects; Prolia and Xgeva labels
(contraindication: hypocalcemia — correct it before starting).

Logic (RULES.md §3, D5, §8 items 1, 2, 18): calcium judged per D5 (ionized first when not older
than the total; a lab-reported corrected calcium; else the total, albumin-corrected when albumin
< 4.0 g/dL within 7 days), after unit conversion and half-up rounding to 0.1 mg/dL (2.12 mmol/L →
8.5 mg/dL: not low). Fire when the judged value is strictly below the limit. No usable calcium
in the window is AR-CALCIUM-NOT-CHECKED's finding, never this one (§7).
Order hooks: a triggering denosumab draft, ``critical``. Patient-view: a denosumab dose within 6
calendar months (60 mg) or 8 weeks (120 mg or unknown regimen); ``critical`` when severe, else
``warning``.
"""

from __future__ import annotations

from datetime import date

from cds_service.chart import DENOSUMAB, CalciumJudgement, add_months

from ..builders import LINKS, calcium_vitamin_d_order, lab_suggestion, override_reasons
from ..model import Card
from ..registry import ALL_HOOKS, RuleInput, rule
from ..thresholds import Thresholds
from ._definitions import advanced_ckd, calcimimetic_records, supplement_records
from ._dmab_dosing_common import (Dose, denosumab_doses, lab_summary, sections, severe_kidney_records)
from . import _text as tx
from ._text import BY_TEXT_NOTE, cut

RULE_ID = "DMAB-HYPOCALCEMIA"
TITLE = "low calcium with denosumab"
SOURCE = "FDA label: Prolia/Xgeva (contraindication: hypocalcemia)"
EVIDENCE = ("seed 001 §Calcium and Vitamin D Supplementation, §Hypocalcemia; seed 002 (low blood "
            "calcium: may not be suitable; blood test before the injection); seed 003 §Side Effects; "
            "Prolia and Xgeva labels (contraindication: hypocalcemia; correct before initiating).")

def recent_doses(doses: list[Dose], today: date, th: Thresholds) -> list[Dose]:
    """Patient-view trigger: doses within ``dmab_pv_calcium_window_months_60mg`` (6) calendar
    months (60 mg) or ``dmab_pv_calcium_window_weeks_120mg`` (8) weeks (120 mg or unknown)."""
    out = []
    for d in doses:
        if d.date > today:
            continue
        if d.regimen == "60mg":
            if today <= add_months(d.date, th.dmab_pv_calcium_window_months_60mg):
                out.append(d)
        elif (today - d.date).days <= 7 * th.dmab_pv_calcium_window_weeks_120mg:
            out.append(d)
    return out


def supplement_on_list(inp: RuleInput) -> bool:
    """A calcium or vitamin D product is on the list (request/statement, dispense within 120 days),
    as DMAB-NO-CA-VITD-SUPPLEMENT reads it."""
    return bool(supplement_records(inp))


def summary_value(j: CalciumJudgement) -> str:
    comp = j.lab.comparator if j.kind in ("measured", "lab-corrected", "ionized") else None
    return f"{comp or ''}{j.value:f}"


def _summary(j: CalciumJudgement, pv_dose: Dose | None) -> str:
    when = j.date.isoformat()
    if j.kind == "ionized":
        head = f"Ionized calcium {summary_value(j)} mmol/L on {when}"
    else:
        kind = {"measured": "measured", "albumin-corrected": "albumin-corrected",
                "lab-corrected": "lab-corrected"}[j.kind]
        head = f"Calcium {summary_value(j)} mg/dL ({kind}) on {when}"
    if pv_dose is None:
        return f"{head}: correct hypocalcemia before denosumab"
    return f"{head}, denosumab given {pv_dose.date.isoformat()}: correct hypocalcemia"


@rule(RULE_ID, TITLE, hooks=ALL_HOOKS, needs={"Observation"})
def dmab_hypocalcemia(inp: RuleInput) -> Card | None:
    # ``needs`` is Observation only: on patient-view the four medication keys are required
    # (412 otherwise), and on the order hooks the triggering draft is in the request itself.
    chart, th, today = inp.chart, inp.thresholds, inp.today
    drafts = inp.drafts_of(DENOSUMAB)
    pv_doses: list[Dose] = []
    if inp.hook == "patient-view":
        pv_doses = recent_doses(denosumab_doses(chart), today, th)
        if not pv_doses:
            return None
    elif not drafts:
        return None
    judged = chart.calcium(th.calcium_lookback_days, th.calcium_limits)
    if judged is None or not judged.low:
        return None  # missing/stale/unusable → AR-CALCIUM-NOT-CHECKED; normal → no card

    if inp.hook == "patient-view":
        indicator = "critical" if judged.severe else "warning"
        pv_last = pv_doses[-1]
    else:
        indicator, pv_last = "critical", None
    summary = _summary(judged, pv_last)

    lab = judged.lab
    finding = [f"Judged calcium: **{judged.describe()}** on {judged.date.isoformat()} "
               f"({'severe' if judged.severe else 'low'}: limit "
               + (f"{th.calcium_ionized_low_mmol_l} mmol/L ionized, severe < {th.calcium_ionized_severe_mmol_l}"
                  if judged.kind == "ionized" else
                  f"{th.calcium_total_low_mg_dl} mg/dL, severe < {th.calcium_total_severe_mg_dl}")
               + ").",
               f"Unit sent: {lab.measured_unit or 'none'}; value used: {judged.value:f} {judged.unit}"
               + (" after conversion and rounding" if (lab.unit or "") != judged.unit or judged.kind == "albumin-corrected" else "")
               + "."]
    if judged.kind == "albumin-corrected" and judged.albumin is not None:
        finding.append(f"Corrected with albumin {judged.albumin.value:f} g/dL on {judged.albumin.date.isoformat()} "
                       f"(Ca + 0.8 × ({th.albumin_reference_g_dl} − albumin)).")
    elif judged.kind == "measured" and judged.albumin_unusable is not None:
        finding.append(judged.albumin_note(tx.escape_record) + " (the measured value is judged).")  # A39
    elif judged.kind == "measured":
        finding.append(f"Not albumin-corrected: no albumin below {th.albumin_reference_g_dl} g/dL within "
                       f"{th.albumin_pairing_days} days of the calcium.")
    if lab.reference_range:
        finding.append(f"Laboratory reference range (shown, not used to decide): {lab.reference_range}.")
    if drafts:
        names = "; ".join(cut(d.label) for d in drafts)
        finding.append(f"Denosumab order(s) concerned: {names}"
                       + (f" ({BY_TEXT_NOTE})" if any(d.drug.by_text for d in drafts) else "") + ".")
    else:
        doses = "; ".join(f"{d.date.isoformat()} ({d.event.source}"
                          + (", regimen unknown" if d.regimen is None else f", {d.regimen.replace('mg', ' mg')}")
                          + ")" for d in pv_doses)
        finding.append(f"Recent denosumab dose(s): {doses}"
                       + (f" ({BY_TEXT_NOTE})" if any(d.by_text for d in pv_doses) else "")
                       + (" — dated from a completed order only (low confidence)"
                          if any(d.low_confidence for d in pv_doses) else "") + ".")

    risks = _risk_factors(inp)
    others = [lab_summary(chart.newest_any(c), label) for c, label in
              (("magnesium", "magnesium"), ("phosphate", "phosphate"),
               ("vitamin-d-25oh", "25-OH vitamin D"), ("pth-intact", "intact PTH"))]
    on_supplement = supplement_on_list(inp)
    todo = ("Correct hypocalcemia before dosing (hypocalcemia is a contraindication): repeat calcium "
            "with albumin, check magnesium, phosphate, 25-OH vitamin D and PTH, and replace calcium "
            "and vitamin D." if drafts else
            "Calcium is low after a recent denosumab dose: repeat calcium with albumin, check "
            "magnesium, phosphate, 25-OH vitamin D and PTH, replace calcium and vitamin D, and do "
            "not give the next dose until calcium is corrected.")
    detail = sections(
        ("Finding.", finding),
        ("Why it matters.", "Denosumab lowers calcium further; severe hypocalcemia (tingling, "
                            "cramps, tetany, seizures, arrhythmia) has caused hospitalisation and "
                            "death. Risk is highest in advanced CKD/dialysis and with calcimimetics."),
        ("What to do.", todo),
        ("Risk factors found:", risks or ["none of advanced CKD, dialysis or calcimimetic on record"]),
        ("Other minerals (newest result, any date):", others),
        ("Supplements.", "A calcium or vitamin D product is on the medication list." if on_supplement
         else "No calcium or vitamin D supplement found on the medication list (active orders or "
              f"statements, dispenses in the last {th.supplement_dispense_lookback_days} days)."),
        ("Evidence.", EVIDENCE),
    )
    ctx = inp.orders
    reason = "Low calcium with denosumab"
    suggestions = [lab_suggestion(ctx, "Repeat calcium + albumin", ("calcium", "albumin"), reason),
                   lab_suggestion(ctx, "Check magnesium, 25-OH vitamin D and PTH",
                                  ("magnesium", "vitamin-d", "pth"), reason)]
    if not on_supplement:
        suggestions.append(calcium_vitamin_d_order(ctx))
    return Card(rule_id=RULE_ID, rule_title=TITLE, summary=summary, indicator=indicator,
                source_label=SOURCE, detail=detail, suggestions=suggestions,
                selection_behavior="any",
                override_reasons=override_reasons("repeat-result-normal", "treating-hypocalcemia",
                                                  "specialist-supervised"),
                links=[LINKS["prolia-label"]])


def _risk_factors(inp: RuleInput) -> list[str]:
    """Advanced CKD (D9) and an active calcimimetic (as DMAB-CALCIMIMETIC reads it), in words."""
    chart, th = inp.chart, inp.thresholds
    out = []
    ckd = advanced_ckd(chart, th)
    if ckd.egfr is not None:
        out.append(f"advanced CKD: {lab_summary(ckd.egfr, 'eGFR')}")
    out += [f"severe kidney disease: {s}" for s in severe_kidney_records(chart, th)]
    for r in calcimimetic_records(inp):
        out.append(f"calcimimetic: {cut(r.drug.name)} ({r.ref})")
    return out


__all__ = ["dmab_hypocalcemia", "recent_doses", "supplement_on_list"]
