"""DMAB-NO-CA-VITD-SUPPLEMENT — no calcium or vitamin D supplement on the medication list.

RULES.md §3 (with D2, D3 text fallbacks, D5, D9 "Hypocalcemia-prone", §8 item 10).
Evidence: seed 001_282e696d69a84463.txt §Mandatory Pre-Treatment Requirements › Calcium and
Vitamin D Supplementation (1,200–1,500 mg calcium and 400–800 IU vitamin D3 daily for the whole
treatment; failure to supplement increases the risk of severe hypocalcemia); seed
002_b4619149f75727a9.txt §Getting your injection; Prolia label §Dosage (all patients should
receive calcium and vitamin D).

Fires on an order hook for any denosumab draft when **neither** a calcium nor a vitamin D
product is on the list: an ``active`` MedicationRequest or MedicationStatement, or a completed
MedicationDispense within 120 days, in ``calcium-vitamin-d-supplement`` (codes, then the D3 text
patterns) — active vitamin D (calcitriol, alfacalcidol, paricalcitol…) and calcium-based
phosphate binders (calcium acetate/carbonate) count. A supplement drafted in the same ordering
session also counts (it is being added now). One of the two is enough (§8 item 10).
Silent when the latest calcium is above 10.5 mg/dL or an active hypercalcemia(-of-malignancy)
condition exists (supplementation would be wrong). ``warning`` when hypocalcemia-prone (D9) or
the latest 25-OH vitamin D within ``vitd_lookback_days`` is below ``vitd_deficient_ng_ml``.
"""

from __future__ import annotations

from decimal import Decimal

from ..builders import calcium_vitamin_d_order, override_reasons
from ..model import Card
from ..registry import MEDS, ORDER_HOOKS, RuleInput, rule
from . import _dmab_common as dm
from . import _definitions as defs
from . import _text as tx

RULE_ID = "DMAB-NO-CA-VITD-SUPPLEMENT"
TITLE = "No calcium or vitamin D supplement on the medication list"
SUMMARY = "No calcium or vitamin D supplement on the medication list: add supplementation with denosumab"


def _high_calcium(inp: RuleInput) -> str | None:
    """The calcium result that makes supplementation wrong (> 10.5 mg/dL), in words, or None.

    The judged calcium of D5 within ``calcium_lookback_days`` is used (albumin-corrected when
    albumin < 4.0); when the judged value is an ionized calcium, the latest total calcium in the
    same window is read instead (the catalog's limit is a total calcium in mg/dL)."""
    t, chart = inp.thresholds, inp.chart
    limit = Decimal(str(defs.param(inp, "calcium_high_mg_dl")))
    judged = chart.calcium(t.calcium_lookback_days, t.calcium_limits)
    if judged is None:
        return None
    if judged.kind != "ionized":
        if judged.value > limit and judged.lab.comparator not in ("<", "<="):
            return f"{judged.describe()} on {judged.date.isoformat()}"
        return None
    total = chart.latest("calcium-serum", t.calcium_lookback_days)
    if total is not None and total.value is not None and total.value > limit \
            and total.comparator not in ("<", "<="):
        return (f"calcium {tx.fmt_rounded(total.value)} mg/dL (measured {total.describe()}) on "
                f"{total.date.isoformat()}")
    return None


@rule(RULE_ID, TITLE, hooks=ORDER_HOOKS, needs=MEDS | {"Observation", "Condition"})
def dmab_no_ca_vitd_supplement(inp: RuleInput) -> Card | None:
    drafts = dm.dmab_drafts(inp)
    if not drafts:
        return None
    days = inp.thresholds.supplement_dispense_lookback_days
    on_list = defs.supplement_records(inp)
    if on_list or dm.session_drafts(inp, dm.SUPPLEMENT):
        return None
    if _high_calcium(inp) is not None:
        return None
    if any(defs.hcm_conditions(inp.chart, d) for d in drafts):
        return None  # A4: E83.52 counts only with a malignancy (active, or the order's reason)

    t = inp.thresholds
    prone = defs.hypocalcemia_prone(inp.chart, inp.thresholds)
    vitd = inp.chart.latest("vitamin-d-25oh", t.vitd_lookback_days)
    deficient = vitd is not None and dm.below(vitd, t.vitd_deficient_ng_ml)
    indicator = "warning" if prone or deficient else "info"

    older = [r for r in inp.chart.medications if r.drug.drug_class == dm.SUPPLEMENT]
    lines = [f"**Finding.** {tx.draft_list(drafts)} ordered, and no calcium or vitamin D product "
             "is on the medication list: no active order or medication statement and no dispense "
             f"in the last {days} days of calcium, vitamin D (including active vitamin D such as "
             "calcitriol) or a calcium-based phosphate binder, and none among this session's "
             "orders (matched by code, then by name)."]
    if older:
        lines.append("Older or inactive records (not counted): "
                     + "; ".join(dm.record_text(r) for r in older[:5]) + ".")
    reasons: list[str] = []
    if prone:
        reasons.append("prone to hypocalcemia: " + "; ".join(prone))
    if deficient and vitd is not None:
        reasons.append(f"25-OH vitamin D {vitd.describe()} on {vitd.date.isoformat()} "
                       f"({tx.fmt_rounded(vitd.value)} ng/mL)")
    if reasons:
        level = "; ".join(reasons) + "."
    else:
        missing = f" (no 25-OH vitamin D in the last {t.vitd_lookback_days} days)" if vitd is None else ""
        level = f"No hypocalcemia risk factor (D9) and no low vitamin D found{missing}."
    lines.append(f"**Card level: {indicator}.** {level}")
    lines += [
        "",
        "**Why it matters.** Denosumab lowers serum calcium; without adequate calcium and vitamin "
        "D the risk of severe, potentially life-threatening hypocalcemia rises, especially with "
        "kidney disease. Dietary calcium can be enough, so one of the two on the list silences "
        "this reminder.",
        "",
        "**What to do.** Aim for a total calcium intake of 1,200–1,500 mg/day (diet + supplement) "
        "and vitamin D3 400–800 IU/day for the whole treatment; in dialysis follow nephrology "
        "(active vitamin D). If the patient takes an over-the-counter product, add it to the "
        "medication list.",
        "",
        f"**Evidence.** {tx.SEED_001} §Calcium and Vitamin D Supplementation; {tx.SEED_002} "
        "§Getting your injection; Prolia label §Dosage (all patients should take calcium and "
        "vitamin D). RULES.md §3 DMAB-NO-CA-VITD-SUPPLEMENT, §8 item 10.",
    ]
    return Card(rule_id=RULE_ID, rule_title=TITLE, summary=SUMMARY, indicator=indicator,
                source_label="FDA label: Prolia §Dosage (calcium and vitamin D for all patients)",
                detail="\n".join(lines), suggestions=[calcium_vitamin_d_order(inp.orders)],
                selection_behavior="any",
                override_reasons=override_reasons("dietary-intake-adequate", "taking-otc-supplement",
                                                  "hypercalcemia"),
                links=[tx.label_link(drafts)])
