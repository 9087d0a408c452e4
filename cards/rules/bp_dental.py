"""BP-DENTAL — no dental evaluation before starting an IV bisphosphonate.

RULES.md §4 (with D4 initiation "no dose of any antiresorptive in 365 days", D7 dental
procedures, D9 oncology bone indication, D10 ``dental_lookback_days`` / ``initiation_gap_days``,
§8 item 8 dental clearance scope).
Evidence: seed 000_01a4571caa474e4a.txt (rare side effects: numbness or a heavy feeling in the
jaw; IV use with cancer chemotherapy); AAOMS position paper on MRONJ, 2022 update (dental
evaluation and invasive work before starting; risk highest with oncology dosing); Zometa label
(dental examination with preventive dentistry before treatment); Reclast label (routine oral
examination before treatment).

Fires for an IV bisphosphonate draft that starts therapy (no denosumab or bisphosphonate exposure
in ``initiation_gap_days``) when no completed dental evaluation is dated within
``dental_lookback_days``. ``warning`` for oncology regimens (zoledronic acid 4 mg, pamidronate, or
an oncology bone indication); ``info`` for zoledronic acid 5 mg and ibandronate IV. Oral agents
and continuation doses never (§8 item 8). A referral or an extraction is not an evaluation.
"""

from __future__ import annotations

from datetime import timedelta

from cds_service.chart import DraftOrder

from ..builders import LINKS, dental_referral, override_reasons
from ..model import Card
from ..registry import MEDS, ORDER_HOOKS, RuleInput, rule
from . import _bp_common as bp
from . import _definitions as defs
from . import _text as tx

RULE_ID = "BP-DENTAL"
TITLE = "No dental evaluation before starting an IV bisphosphonate"


def _oncology_regimen(inp: RuleInput, d: DraftOrder) -> list[str]:
    regimen, _ = bp.zoledronic_regimen(inp, d)
    why: list[str] = []
    if d.drug.agent == "zoledronic-acid" and regimen == "4mg":
        why.append("zoledronic acid 4 mg oncology regimen")
    if d.drug.agent == "pamidronate":
        why.append("pamidronate (oncology dosing)")
    why += [e.text for e in defs.oncology_indication(inp.chart, d)]
    return why


@rule(RULE_ID, TITLE, hooks=ORDER_HOOKS, needs=MEDS | {"Procedure"})
def bp_dental(inp: RuleInput) -> Card | None:
    t = inp.thresholds
    drafts = [d for d in bp.bp_drafts(inp) if d.drug.route == "iv"]
    # continuation (or switch) of antiresorptive therapy is not an initiation (D4; zoledronic
    # acid 5 mg: 18 months without a dose, A27)
    drafts = [d for d in drafts if not bp.continuation_evidence(inp, d)]
    if not drafts:
        return None
    window = t.dental_lookback_days
    if inp.chart.procedures_in("dental-evaluation", within_days=window):
        return None

    oncology = {d.ref: _oncology_regimen(inp, d) for d in drafts}
    indicator = "warning" if any(oncology.values()) else "info"
    main = next((d for d in drafts if oncology[d.ref]), drafts[0])
    agent = bp.agent_phrase(main.drug, bp.zoledronic_regimen(inp, main)[0])
    agent = agent.replace(" IV", "")  # the template already says "IV {agent}"
    period = "12 months" if window == 365 else f"{window} days"
    summary = (f"No dental evaluation in the last {period} before starting IV {agent}: "
               "arrange a dental examination")
    if len(summary) >= 140:
        summary = tx.cut(summary, 139)

    older = inp.chart.procedures_in("dental-evaluation")
    since = (inp.today - timedelta(days=window)).isoformat()
    zol5 = any(defs.is_zol5_draft(inp, d) for d in drafts)
    gap = (f"no zoledronic acid in the last {t.zol5_reinitiation_months} months and no other "
           f"antiresorptive in the last {t.initiation_gap_days} days" if zol5 else
           f"no denosumab or bisphosphonate on record in the last {t.initiation_gap_days} days")
    lines = [f"**Finding.** {bp.draft_names(drafts)} starts IV bisphosphonate therapy ({gap}), and "
             f"no dental evaluation is on record from {since} to {inp.today.isoformat()}."]
    if older and older[0].date is not None:
        lines.append(f"Last dental evaluation found: {older[0].display or 'dental evaluation'} on "
                     f"{older[0].date.isoformat()} (older than {period}).")
    else:
        lines.append("No dental evaluation of any date is on record (referrals and extractions are "
                     "not evaluations; dental records often live outside the medical record).")
    if indicator == "warning":
        reasons = sorted({w for d in drafts for w in oncology[d.ref]})
        lines.append("Card level **warning**: oncology dosing — " + "; ".join(reasons) + ".")
    else:
        lines.append("Card level **info**: osteoporosis/Paget's dosing (zoledronic acid 5 mg or "
                     "ibandronate IV), where the ONJ risk is low (RULES.md §8 item 8).")
    lines.append("")
    lines.append("**Why it matters.** Osteonecrosis of the jaw (MRONJ) is linked to invasive dental "
                 "work during antiresorptive therapy; its risk is highest with monthly oncology "
                 "doses of zoledronic acid or pamidronate (around 1–2 %) and low with yearly "
                 "zoledronic acid 5 mg. Jaw numbness or heaviness is a listed side effect (seed 000).")
    lines.append("")
    lines.append("**What to do.** Arrange a dental examination before the first infusion; complete "
                 "extractions, implants and periodontal or endodontic surgery first and allow 2–4 "
                 "weeks of healing; keep good oral hygiene and dental check-ups every 6–12 months "
                 "during therapy.")
    lines.append("")
    lines.append(f"**Evidence.** {tx.SEED_000} (numbness/heaviness in the jaw); AAOMS MRONJ position "
                 "paper 2022; Zometa label (dental examination before treatment); Reclast label "
                 "(routine oral exam before treatment). RULES.md §4 BP-DENTAL, §8 item 8.")
    return Card(rule_id=RULE_ID, rule_title=TITLE, summary=summary, indicator=indicator,
                source_label="AAOMS MRONJ position paper 2022; Zometa/Reclast labels "
                             "(oral exam before treatment)",
                detail="\n".join(lines), suggestions=[dental_referral(inp.orders)],
                selection_behavior="any",
                override_reasons=override_reasons("dental-eval-done-elsewhere", "urgent-treatment-benefit",
                                                  "patient-declined", "edentulous"),
                links=[LINKS["aaoms-2022"]])
