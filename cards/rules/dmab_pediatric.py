"""DMAB-PEDIATRIC — denosumab in a patient under 18.

RULES.md §3 (with D1 "Age", D6, D8 "Pediatric", §8 item 12).
Evidence: seed 001_282e696d69a84463.txt §Hypercalcemia in Pediatric Patients (hypercalcemia with
acute renal injury in children with osteogenesis imperfecta; pediatric trials stopped early;
not established as safe or effective in children); Prolia label §8.4 (pediatric use); Xgeva
label §1.2 (giant cell tumour of bone in skeletally mature adolescents).

Fires on an order hook for a denosumab draft when the patient's age (whole years on today's date,
a birthday today counts) is below 18. Unknown age (no birth date) → never (D1). Suppressed for a
120 mg draft when an active giant cell tumour of bone is recorded and the patient is at least 12
(Xgeva is indicated for skeletally mature adolescents; maturity is not coded, §8 item 12). GCTB is
recognised by the D3 text pattern — on the problem list, or as the draft's reason — since its
only code (ICD-10-CM D48.0) is an unspecific proxy. ``critical`` with osteogenesis imperfecta on
record (any status), else ``warning``.
"""

from __future__ import annotations

from cds_service.chart import DraftOrder

from ..builders import override_reasons
from ..model import Card
from ..registry import ORDER_HOOKS, RuleInput, rule
from . import _definitions as defs
from . import _dmab_common as dm
from . import _text as tx

RULE_ID = "DMAB-PEDIATRIC"
TITLE = "Denosumab in a patient under 18"
GCTB = "giant-cell-tumor-of-bone"


def _gctb_conditions(inp: RuleInput) -> list[str]:
    """Active GCTB diagnoses (E1: the tumour named; a D48.0 code alone is a proxy), in words."""
    return [tx.condition_text(c) for c in inp.chart.conditions_in(GCTB, active=True)]


def _gctb_reason(inp: RuleInput, d: DraftOrder) -> bool:
    """The draft's own reason names a giant cell tumour of bone (D6: reasons count; E1)."""
    return bool(defs.gctb_diagnosis(inp.chart, d)) and GCTB in defs.draft_reason_sets(d)


@rule(RULE_ID, TITLE, hooks=ORDER_HOOKS, needs={"Patient", "Condition"})
def dmab_pediatric(inp: RuleInput) -> Card | None:
    drafts = dm.dmab_drafts(inp)
    age = inp.chart.patient.age
    pediatric_below = inp.thresholds.pediatric_age_below    # D8, D10
    gctb_min_age = inp.thresholds.gctb_exemption_min_age    # D10, §8 item 12
    if not drafts or age is None or age >= pediatric_below:
        return None
    gctb = _gctb_conditions(inp)
    exempt = [d for d in drafts if d.drug.regimen == "120mg" and age >= gctb_min_age
              and (gctb or _gctb_reason(inp, d))]
    concerned = [d for d in drafts if d not in exempt]
    if not concerned:
        return None
    oi = inp.chart.conditions_in("osteogenesis-imperfecta")
    indicator = "critical" if oi else "warning"
    summary = tx.fit(f"Patient is {age} years old: denosumab is not established as safe in children "
                     "(severe hypercalcemia reported)")

    lines = [f"**Finding.** {tx.draft_list(concerned)} ordered for a patient aged **{age}** "
             f"(born {tx.iso(inp.chart.patient.birth_date)})."]
    if oi:
        lines.append("Osteogenesis imperfecta on record: " + "; ".join(tx.condition_text(c) for c in oi)
                     + " — the population in which life-threatening hypercalcemia was reported.")
    if exempt:
        lines.append(f"Not concerned: {tx.draft_list(exempt)} (120 mg for giant cell tumour of "
                     f"bone, age ≥ {gctb_min_age}: the Xgeva indication for skeletally mature adolescents).")
    elif gctb:
        lines.append("Giant cell tumour of bone on record (" + "; ".join(gctb) + "), but the order "
                     "is not the 120 mg regimen" + ("" if age >= gctb_min_age else
                                                    f" or the patient is under {gctb_min_age}") + ".")
    lines += [
        "",
        "**Why it matters.** Denosumab is not approved for children outside giant cell tumour of "
        "bone in skeletally mature adolescents. Hypercalcemia requiring hospitalisation and "
        "complicated by acute kidney injury has been reported in children, above all with "
        "osteogenesis imperfecta, and pediatric trials were stopped early; hypercalcemia can "
        "also occur after stopping. In growing children RANKL inhibition may impair bone growth "
        "and tooth eruption.",
        "",
        "**What to do.** Only on the decision of a pediatric bone specialist (or within a research "
        "protocol); monitor calcium closely during treatment and after stopping.",
        "",
        f"**Evidence.** {tx.SEED_001} §Hypercalcemia in Pediatric Patients; Prolia label §8.4; "
        "Xgeva label §1.2. RULES.md §3 DMAB-PEDIATRIC, §8 item 12.",
    ]
    return Card(rule_id=RULE_ID, rule_title=TITLE, summary=summary, indicator=indicator,
                source_label="FDA label: Prolia §8.4 (pediatric use)", detail="\n".join(lines),
                override_reasons=override_reasons("specialist-decision", "skeletally-mature-gctb",
                                                  "research-protocol"),
                links=[tx.label_link(concerned)])
