"""BP-DUPLICATE — two bisphosphonates or an IV dose repeated too early.

RULES.md §4 (with D3 agent/strength, D4 "Active therapy" and dose events, D10
``zol5_min_interval_days``, §1 order-select reads every draft for duplicates, §7 one card naming
every draft).
Evidence: Reclast and Zometa labels (same active ingredient: patients treated with Zometa must not
receive Reclast, and vice versa); Reclast label §Dosage (one 5 mg infusion once a year for
osteoporosis); seed 000_01a4571caa474e4a.txt (oral and IV bisphosphonate forms).

Fires for a bisphosphonate draft when (a) a *different* bisphosphonate ingredient is active
therapy (D4: active order or statement, a dispense whose supply covers today, or an IV dose
within its dosing interval) — renewing the same oral ingredient is not a duplicate; (b) zoledronic
acid 5 mg and 4 mg are both active or drafted; (c) zoledronic acid 5 mg is drafted fewer than
``zol5_min_interval_days`` after the previous 5 mg dose; (d) two bisphosphonate drafts are in
the session (order-select: the other one need not be selected).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from cds_service.chart import BISPHOSPHONATE, DraftOrder, Drug

from ..builders import override_reasons
from ..model import Card
from ..registry import MEDS, ORDER_HOOKS, RuleInput, rule
from . import _bp_common as bp
from . import _text as tx

RULE_ID = "BP-DUPLICATE"
TITLE = "Two bisphosphonates or an IV dose repeated too early"
_ORDER = {"b": 0, "c": 1, "a": 2, "d": 3}


@dataclass
class Finding:
    kind: str            # a, b, c, d
    draft: DraftOrder
    new: str             # agent phrase of the draft
    existing: str        # agent phrase of what is already there
    when: date | None
    text: str            # one detail line


@dataclass(frozen=True)
class Active:
    drug: Drug
    regimen: str | None
    when: date | None
    how: str


def _active_bisphosphonates(inp: RuleInput) -> list[Active]:
    """D4 active bisphosphonate therapy: orders/statements/dispenses and IV doses in interval."""
    chart = inp.chart
    out = [Active(r.drug, r.drug.regimen, r.date,
                  f"{r.resource_type} {r.status} {tx.iso(r.date)}"
                  + (f", {r.days_supply} days' supply" if r.resource_type == "MedicationDispense"
                     and r.days_supply else ""))
           for r in chart.active_records(BISPHOSPHONATE,
                                         dispense_default_days=inp.thresholds.dispense_default_days_supply)]
    for e in chart.dose_events(BISPHOSPHONATE):
        until = bp.iv_active_until(e.drug, e.drug.regimen, e.date, inp.thresholds)
        if until is not None and 0 <= (chart.today - e.date).days and chart.today <= until:
            low = " (dose date from a completed order: lowest confidence)" if e.low_confidence else ""
            out.append(Active(e.drug, e.drug.regimen, e.date,
                              f"IV dose {e.date.isoformat()}, active until {until.isoformat()}{low}"))
    return out


def _name(drug: Drug, regimen: str | None) -> str:
    return bp.agent_phrase(drug, regimen)


@rule(RULE_ID, TITLE, hooks=ORDER_HOOKS, needs=MEDS)
def bp_duplicate(inp: RuleInput) -> Card | None:
    triggers = bp.bp_drafts(inp)
    if not triggers:
        return None
    t = inp.thresholds
    chart = inp.chart
    active = _active_bisphosphonates(inp)
    all_bp_drafts = [d for d in chart.drafts if d.drug.drug_class == BISPHOSPHONATE]
    findings: list[Finding] = []
    for d in triggers:
        regimen, _ = bp.zoledronic_regimen(inp, d)
        new = _name(d.drug, regimen)
        # (a) a different ingredient active
        for a in active:
            if a.drug.agent != d.drug.agent:
                existing = _name(a.drug, a.regimen)
                findings.append(Finding("a", d, new, existing, a.when,
                                        f"(a) {new} ordered while {existing}{bp.identified_by(a.drug)} "
                                        f"is active therapy ({a.how})."))
        if d.drug.agent == "zoledronic-acid" and regimen in ("5mg", "4mg"):
            other = "4mg" if regimen == "5mg" else "5mg"
            # (b) zoledronic acid 5 mg and 4 mg both
            for a in active:
                if a.drug.agent == "zoledronic-acid" and a.regimen == other:
                    existing = _name(a.drug, other)
                    findings.append(Finding("b", d, new, existing, a.when,
                                            f"(b) {new} ordered while {existing} is active ({a.how}): "
                                            "Reclast-type and Zometa-type products must not be combined."))
            for o in all_bp_drafts:
                if o.ref != d.ref and o.drug.agent == "zoledronic-acid" \
                        and bp.zoledronic_regimen(inp, o)[0] == other:
                    findings.append(Finding("b", d, new, _name(o.drug, other), None,
                                            f"(b) {new} and {_name(o.drug, other)} are both drafted "
                                            "in this session: Reclast-type and Zometa-type products "
                                            "must not be combined."))
            # (c) zoledronic acid 5 mg too early
            if regimen == "5mg":
                last = chart.last_dose(BISPHOSPHONATE, agent="zoledronic-acid", regimen="5mg")
                if last is not None:
                    n = (inp.today - last.date).days
                    if 0 <= n < t.zol5_min_interval_days:
                        low = (" (date of a completed order: lowest confidence, no administration "
                               "on record)") if last.low_confidence else ""
                        findings.append(Finding("c", d, new, "zoledronic acid 5 mg", last.date,
                                                f"(c) zoledronic acid 5 mg last given {last.date.isoformat()}"
                                                f"{low}, {n} days ago: the yearly regimen allows the next "
                                                f"dose from day {t.zol5_min_interval_days}."))
    # (d) two bisphosphonate drafts in the session
    if len(all_bp_drafts) >= 2:
        names = [tx.cut(bp.draft_title(o), 40) for o in all_bp_drafts]
        findings.append(Finding("d", triggers[0], names[0], names[1], None,
                                f"(d) {len(all_bp_drafts)} bisphosphonate orders in this session: "
                                + "; ".join(names) + "."))
    if not findings:
        return None

    findings.sort(key=lambda f: (_ORDER[f.kind], -(f.when.toordinal() if f.when else 0)))
    main = findings[0]
    if main.kind == "c" and main.when is not None:
        n = (inp.today - main.when).days
        summary = (f"Duplicate bisphosphonate: zoledronic acid 5 mg ordered {n} days after the last "
                   f"5 mg dose ({main.when.isoformat()}); given once a year")
    elif main.kind == "d":
        summary = f"Duplicate bisphosphonate: {main.new} and {main.existing} ordered in this session"
    else:
        last = f" (last {main.when.isoformat()})" if main.when else " (also drafted now)"
        summary = f"Duplicate bisphosphonate: {main.new} ordered while {main.existing} is active{last}"
    if len(summary) >= 140:
        summary = tx.cut(summary, 139)

    seen: set[str] = set()
    finding_lines = []
    for f in findings:
        if f.text not in seen:
            seen.add(f.text)
            finding_lines.append(f"- {f.text}")
    concerned = []
    for f in findings:
        if f.draft not in concerned:
            concerned.append(f.draft)
    lines = [f"**Finding.** Orders concerned: {bp.draft_names(concerned)}.", *finding_lines, ""]
    lines.append("**Why it matters.** Two bisphosphonates at once add risk (hypocalcemia, renal "
                 "toxicity, osteonecrosis of the jaw, atypical fractures) without added benefit; "
                 "Reclast and Zometa contain the same active ingredient; zoledronic acid 5 mg for "
                 "osteoporosis is given once a year.")
    lines.append("")
    lines.append("**What to do.** If this is a switch, stop the previous bisphosphonate order (or "
                 "document that the earlier dose was not given); otherwise cancel the duplicate "
                 "order. Renewing the same oral bisphosphonate is not a duplicate.")
    lines.append("")
    lines.append(f"**Evidence.** Reclast and Zometa labels (same active ingredient; do not combine); "
                 f"Reclast label §Dosage (once yearly); {tx.SEED_000} (oral and IV forms). "
                 "RULES.md §4 BP-DUPLICATE, D4.")
    kinds = {f.kind for f in findings}
    codes = ["switching-agent", "previous-order-to-stop"]
    if "c" in kinds:
        codes.append("previous-dose-not-given")
    if "d" in kinds:
        codes.append("cancel-other-order")
    zol = main.draft.drug.agent == "zoledronic-acid" or "b" in kinds
    source, link = bp.LABEL["zoledronic-5mg"] if zol else bp.label_for(main.draft.drug, None)
    return Card(rule_id=RULE_ID, rule_title=TITLE, summary=summary, indicator="warning",
                source_label=source + (" and Zometa: same active ingredient" if zol else ""),
                detail="\n".join(lines), override_reasons=override_reasons(*codes), links=[link])
