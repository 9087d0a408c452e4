"""BP-HYPOCALCEMIA — low calcium before a bisphosphonate.

RULES.md §4 (with D5 "Calcium to judge", D10 calcium limits, §7 exclusive with
AR-CALCIUM-NOT-CHECKED, §8 items 1, 2, 16, 18).
Evidence: seed 000_01a4571caa474e4a.txt (rare side effects: hypocalcemia; bisphosphonates lower
blood calcium); Fosamax, Actonel, Boniva and Reclast labels (contraindication: hypocalcemia —
correct before starting); Zometa label (correct hypocalcemia, supplement calcium and vitamin D).

Fires for a bisphosphonate draft when the calcium judged per D5 within the agent's window (IV
``calcium_lookback_days`` 30 days, oral 90 days, §8 item 16) is low (strictly below 8.5 mg/dL
after rounding, or ionized < 1.15 mmol/L). An order whose indication is hypercalcemia of
malignancy (D6, A4) is excluded. No usable calcium in the window is not this rule: AR-CALCIUM-NOT-CHECKED
reports it for IV agents, and oral agents get no "not checked" card (§8 item 16).

A6: also on patient-view, ``warning`` (also when severe), for a current bisphosphonate course
(D4: a current oral course, or an IV agent within its dosing interval), same windows (IV 30 days,
oral 90 days), not with an active hypercalcemia of malignancy. The deceased-patient silence and
the exclusivity with DMAB-HYPOCALCEMIA (E3) are applied by the engine.
"""

from __future__ import annotations

from dataclasses import dataclass

from cds_service.chart import SUPPLEMENT, CalciumJudgement, DraftOrder, Drug

from ..builders import calcium_vitamin_d_order, lab_suggestion, override_reasons
from ..model import Card
from ..registry import ALL_HOOKS, RuleInput, rule
from . import _bp_common as bp
from . import _definitions as defs
from . import _text as tx

RULE_ID = "BP-HYPOCALCEMIA"
TITLE = "Low calcium before a bisphosphonate"


def _summary(j: CalciumJudgement, agent: str, patient_view: bool = False) -> str:
    if j.kind == "ionized":
        head = f"Ionized calcium {tx.fmt(j.value)} mmol/L on {j.date.isoformat()}"
    else:
        corrected = " (albumin-corrected)" if j.kind == "albumin-corrected" else \
            " (corrected)" if j.kind == "lab-corrected" else ""
        head = f"Calcium {tx.fmt(j.value)} mg/dL{corrected} on {j.date.isoformat()}"
    text = (f"{head} while on {agent}: correct hypocalcemia before the next dose" if patient_view
            else f"{head}: correct hypocalcemia before giving {agent}")
    return text if len(text) < 140 else tx.cut(text, 139)


def _draft_hcm(inp: RuleInput, d: DraftOrder) -> str | None:
    """The draft's indication is hypercalcemia of malignancy (D6, A4): its evidence, else None."""
    if not defs.draft_reason_is_hcm(inp.chart, d):
        return None
    texts = [t for t in d.reason_texts if t]
    if texts:
        return "order reason: " + tx.cut(texts[0])
    refs = defs.reason_conditions(inp.chart, d)
    return "order reason: " + (tx.cut(refs[0].display) if refs and refs[0].display
                               else "hypercalcemia with a malignancy on record")


@dataclass(frozen=True)
class CurrentCourse:
    """A6 / D4 "current bisphosphonate course" on patient-view: the agent and its evidence."""

    drug: Drug
    evidence: str


def current_courses(inp: RuleInput) -> list[CurrentCourse]:
    """D4 "Current bisphosphonate course": an IV agent within its dosing interval (active IV
    therapy), then the current oral course (the D4 course helper)."""
    t = inp.thresholds
    out = [CurrentCourse(e.drug, f"IV dose {e.date.isoformat()}, within its dosing interval until "
                                 f"{end.isoformat()}")
           for e, end in defs.active_iv_bisphosphonate_doses(inp.chart, t)]
    courses = bp.oral_courses(inp, t.oral_course_gap_days, t.oral_course_current_days)
    if courses and courses[-1].current and courses[-1].records:
        last = courses[-1]
        out.append(CurrentCourse(last.records[-1].drug,
                                 f"oral course since {last.start.isoformat()}, covered to "
                                 f"{last.end.isoformat()}"))
    return out


def _pv_hit(inp: RuleInput) -> tuple[CurrentCourse, CalciumJudgement, int] | None:
    """A6: the first current course whose window holds a low judged calcium."""
    if defs.hcm_conditions(inp.chart):
        return None  # an active hypercalcemia of malignancy: calcium is not judged here
    t = inp.thresholds
    for course in current_courses(inp):
        window = (t.calcium_lookback_days if course.drug.is_iv_bisphosphonate
                  else t.calcium_lookback_days_oral_bp)
        j = inp.chart.calcium(window, t.calcium_limits)
        if j is not None and j.low:
            return course, j, window
    return None


@rule(RULE_ID, TITLE, hooks=ALL_HOOKS, needs={"Observation"})
def bp_hypocalcemia(inp: RuleInput) -> Card | None:
    t = inp.thresholds
    limits = t.calcium_limits
    hits: list[tuple[DraftOrder, CalciumJudgement, int]] = []
    excluded: list[tuple[DraftOrder, str]] = []
    pv = inp.hook == "patient-view"
    course: CurrentCourse | None = None
    if pv:
        found = _pv_hit(inp)
        if found is None:
            return None
        course, judged, window = found
        drug = course.drug
        agent = bp.agent_phrase(drug)
        regimen = drug.regimen
    else:
        for d in bp.bp_drafts(inp):
            hcm = _draft_hcm(inp, d)
            if hcm:
                excluded.append((d, hcm))
                continue
            window = bp.calcium_window(t, d.drug)
            j = inp.chart.calcium(window, limits)
            if j is not None and j.low:
                hits.append((d, j, window))
        if not hits:
            return None
        draft, judged, window = hits[0]
        drug = draft.drug
        regimen = bp.zoledronic_regimen(inp, draft)[0]
        agent = bp.agent_phrase(drug, regimen)
    summary = _summary(judged, agent, pv)
    severe = " — **severe**" if judged.severe else ""
    lab = judged.lab
    what = (f"Current {agent} ({course.evidence})" if course is not None
            else f"{bp.draft_names(d for d, _, _ in hits)} ordered")
    lines = [f"**Finding.** {what}; the calcium judged "
             f"(RULES.md D5) is low{severe}: {judged.describe()} on {judged.date.isoformat()}"
             + (f", laboratory reference range {lab.reference_range}" if lab.reference_range else "")
             + "."]
    if judged.kind == "albumin-corrected" and judged.albumin is not None:
        lines.append(f"Corrected with albumin {judged.albumin.describe()} on "
                     f"{judged.albumin.date.isoformat()}: Ca + 0.8 × (4.0 − albumin g/dL).")
    elif judged.kind == "measured" and judged.albumin_unusable is not None:
        lines.append(judged.albumin_note(tx.escape_record) + " (the measured value is judged).")  # A39
    elif judged.kind == "measured":
        lines.append("Measured total calcium, not corrected (no albumin below 4.0 g/dL within "
                     f"{t.albumin_pairing_days} days of it).")
    lines.append(f"Limits: total/corrected < {tx.fmt(t.calcium_total_low_mg_dl)} mg/dL (severe < "
                 f"{tx.fmt(t.calcium_total_severe_mg_dl)}), ionized < {tx.fmt(t.calcium_ionized_low_mmol_l)} "
                 f"mmol/L, after rounding to 0.1 mg/dL; look-back {window} days for "
                 f"{'IV' if drug.route == 'iv' or (pv and drug.is_iv_bisphosphonate) else 'oral'} agents (RULES.md §8 item 16).")
    for d, why in excluded:
        lines.append(f"Not judged for {bp.draft_title(d)}: its indication is hypercalcemia of "
                     f"malignancy ({why}).")
    lines.append("")
    lines.append("**Why it matters.** Bisphosphonates lower serum calcium; hypocalcemia is a "
                 "contraindication in the labels of alendronate, risedronate, ibandronate and "
                 "zoledronic acid 5 mg, and IV agents can turn a low calcium into symptomatic "
                 "hypocalcemia (tingling, cramps, tetany, seizures, arrhythmia).")
    lines.append("")
    supplement = inp.chart.active_records(SUPPLEMENT)
    lines.append("**What to do.** Correct hypocalcemia before the dose: repeat calcium with albumin, "
                 "check magnesium, 25-OH vitamin D and PTH, and supplement calcium and vitamin D"
                 + (" (a supplement is already on the list: " + tx.cut(supplement[0].drug.name) + ")"
                    if supplement else " (none is on the medication list)") + ". Give the "
                 "bisphosphonate once calcium is normal.")
    lines.append("")
    lines.append(f"**Evidence.** {tx.SEED_000} (side effects: hypocalcemia); Fosamax, Actonel, "
                 "Boniva and Reclast labels (contraindication: hypocalcemia); Zometa label. "
                 "RULES.md §4 BP-HYPOCALCEMIA, D5.")
    suggestions = [lab_suggestion(inp.orders, "Repeat calcium + albumin, magnesium, vitamin D, PTH",
                                  ["calcium", "albumin", "magnesium", "vitamin-d", "pth"],
                                  "Low calcium before a bisphosphonate")]
    if not supplement:
        suggestions.append(calcium_vitamin_d_order(inp.orders))
    source, link = bp.label_for(drug, regimen)
    return Card(rule_id=RULE_ID, rule_title=TITLE, summary=summary, indicator="warning" if pv else "critical",
                source_label=f"{source}: hypocalcemia contraindication", detail="\n".join(lines),
                suggestions=suggestions, selection_behavior="any",
                override_reasons=override_reasons("repeat-result-normal", "treating-hypocalcemia"),
                links=[link])
