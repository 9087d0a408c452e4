"""DMAB-CALCIMIMETIC — calcimimetic with denosumab.

RULES.md §3 (with D2, D3 text fallbacks, D4).
Evidence: seed 001_282e696d69a84463.txt §Common and Serious Adverse Effects › Hypocalcemia
("concomitant calcimimetic drugs further worsen this risk"); Prolia label §5.1 and §7 (other
calcium-lowering drugs; severe hypocalcemia in CKD-MBD).

Fires (``warning``) on an order hook for any denosumab draft when a calcimimetic (cinacalcet,
etelcalcetide, evocalcet; ``calcimimetic`` codes, then the D3 text pattern) is on the list: an
``active`` MedicationRequest or MedicationStatement, or a completed MedicationDispense within
``supplement_dispense_lookback_days`` (120). Etelcalcetide is an IV drug given at dialysis and is
usually documented as administrations: an administration within
``calcimimetic_admin_lookback_days`` (30) counts too (A26). A calcimimetic drafted in
the same session counts as well. Cancelled / entered-in-error / not-done records never reach the
chart (D2); stopped or completed orders are not active.
"""

from __future__ import annotations

from datetime import timedelta

from ..builders import lab_request, override_reasons
from ..model import Action, Card, Suggestion
from ..registry import MEDS, ORDER_HOOKS, RuleInput, rule
from . import _dmab_common as dm
from . import _definitions as defs
from . import _text as tx

RULE_ID = "DMAB-CALCIMIMETIC"
TITLE = "Calcimimetic with denosumab"
MONITORING_START_DAYS = 7
MONITORING_WEEKS = 4
#: A shorter name for the summary when the 40-character name does not fit.
SUMMARY_NAME_SHORT = 30


@rule(RULE_ID, TITLE, hooks=ORDER_HOOKS, needs=MEDS)
def dmab_calcimimetic(inp: RuleInput) -> Card | None:
    drafts = dm.dmab_drafts(inp)
    if not drafts:
        return None
    records = defs.calcimimetic_records(inp)
    session = dm.session_drafts(inp, dm.CALCIMIMETIC)
    if not records and not session:
        return None
    names: list[str] = []
    for name in [dm.drug_name(x.drug.name, x.drug.agent) for x in [*records, *session]]:
        if name not in names:
            names.append(name)
    given = [r for r in records if r.resource_type == "MedicationAdministration" and r.date]
    if given and len(given) == len(records) and not session:
        # administrations only (etelcalcetide at dialysis, A26): the administration wording
        last = max(r.date for r in given).isoformat()   # type: ignore[type-var]
        tail = (f" (last given {last}): with denosumab the risk of severe hypocalcemia rises; "
                "monitor calcium")
        summary = tx.fit(f"Patient receives {tx.cut(names[0])}{tail}",
                         f"Patient receives {tx.cut(names[0], SUMMARY_NAME_SHORT)}{tail}",
                         f"Patient receives a calcimimetic{tail}")
    else:
        tail = ": with denosumab the risk of severe hypocalcemia rises; monitor calcium closely"
        summary = tx.fit(f"Patient takes {tx.cut(names[0])}{tail}",
                         f"Patient takes {tx.cut(names[0], SUMMARY_NAME_SHORT)}{tail}",
                         f"Patient takes a calcimimetic{tail}")
    t, chart = inp.thresholds, inp.chart
    lines = [f"**Finding.** {tx.draft_list(drafts)} ordered while a calcimimetic is on the list:"]
    lines += [f"- {dm.record_text(r)}" for r in records]
    lines += [f"- {d.label} (ordered in this session)" for d in session]
    judged = chart.calcium(t.calcium_lookback_days, t.calcium_limits)
    lines.append("Latest calcium: " + (f"{judged.describe()} on {judged.date.isoformat()}." if judged
                                       else f"none in the last {t.calcium_lookback_days} days."))
    ckd = defs.advanced_ckd(inp.chart, inp.thresholds)
    if ckd.present:
        lines.append("Advanced CKD: " + "; ".join(ckd.words()) + ".")
    lines += [
        "",
        "**Why it matters.** Calcimimetics and denosumab both lower serum calcium; together the "
        "risk of severe hypocalcemia rises, mostly in dialysis patients with CKD-mineral bone "
        "disorder.",
        "",
        "**What to do.** Check calcium before the dose and weekly for the first month after it; "
        "consider pausing or adjusting the calcimimetic together with nephrology; make sure "
        "calcium and (active) vitamin D are adequate.",
        "",
        f"**Evidence.** {tx.SEED_001} §Hypocalcemia (concomitant calcimimetics worsen the risk); "
        "Prolia label §5.1 and §7. RULES.md §3 DMAB-CALCIMIMETIC.",
    ]
    start = inp.today + timedelta(days=MONITORING_START_DAYS)
    weekly = lab_request(inp.orders, "calcium", "Weekly calcium after denosumab with a calcimimetic",
                         weekly_count=MONITORING_WEEKS, start=start)
    suggestion = Suggestion(f"Order calcium weekly × {MONITORING_WEEKS} from {start.isoformat()}",
                            [Action(f"Order serum calcium weekly × {MONITORING_WEEKS}, starting "
                                    f"{start.isoformat()}", weekly)])
    return Card(rule_id=RULE_ID, rule_title=TITLE, summary=summary, indicator="warning",
                source_label="FDA label: Prolia §5.1/§7 (calcium-lowering drugs)",
                detail="\n".join(lines), suggestions=[suggestion], selection_behavior="any",
                override_reasons=override_reasons("nephrology-supervised", "monitoring-arranged"),
                links=[tx.label_link(drafts)])
