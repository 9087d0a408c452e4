"""DMAB-PREGNANCY — possible pregnancy with a denosumab order.

RULES.md §3 (with D1, D2, D5, D6, §7 exclusive pairs, §8 item 13).
Evidence: seed 001_282e696d69a84463.txt §Special Populations › Pregnancy and Lactation (fetal
harm in animal studies; verify pregnancy status; contraception for at least 5 months after the
last dose); seed 002_b4619149f75727a9.txt (not suitable if pregnant or breast feeding); Prolia
label (contraindicated in pregnancy; contraception ≥ 5 months); Xgeva label (contraception
≥ 5 months).

Fires on an order hook for any denosumab draft when (a) the latest pregnancy test with a
readable result within ``pregnancy_test_lookback_days`` is positive (coded result in
``result-positive``, interpretation POS, or quantitative hCG above ``hcg_positive_miu_ml``
mIU/mL = [IU]/L) — a later negative test cancels it; (b) the latest pregnancy status (82810-3)
in that window is "pregnant"; or (c) an active pregnancy condition has its onset within the last
42 weeks or no onset. Not restricted by age or sex: a documented pregnancy is always shown.
Entered-in-error / cancelled results and refuted conditions never reach the chart (D2).
"""

from __future__ import annotations

from cds_service.chart.labs import within

from ..builders import LAB_CODES, lab_request, override_reasons
from ..model import Action, Card, Suggestion
from ..registry import ORDER_HOOKS, RuleInput, rule
from . import _dmab_common as dm
from . import _text as tx

RULE_ID = "DMAB-PREGNANCY"
TITLE = "Possible pregnancy"


def serum_hcg_suggestion(inp: RuleInput, reason: str) -> Suggestion:
    """ServiceRequest serum hCG (LOINC 2118-8, §6.1)."""
    body = lab_request(inp.orders, "hcg-serum", reason)
    return Suggestion("Order serum hCG", [Action(f"Order {LAB_CODES['hcg-serum'][1]}", body)])


@rule(RULE_ID, TITLE, hooks=ORDER_HOOKS, needs={"Observation", "Condition"})
def dmab_pregnancy(inp: RuleInput) -> Card | None:
    drafts = dm.dmab_drafts(inp)
    if not drafts:
        return None
    evidence = dm.pregnancy_evidence(inp)
    if not evidence:
        return None
    main = evidence[0]
    summary = tx.fit(f"Possible pregnancy ({main.short} on {tx.iso(main.date)}): denosumab is "
                     "contraindicated in pregnancy",
                     f"Possible pregnancy ({tx.iso(main.date)}): denosumab is contraindicated in "
                     "pregnancy")
    p = inp.chart.patient
    who = ", ".join(x for x in (p.sex, f"age {p.age}" if p.age is not None else "age unknown") if x)
    details = [f"Ordered: {tx.draft_list(drafts)}; patient {who}"]
    details += [e.text for e in evidence]
    negatives = [lab for lab in within(inp.chart.labs("pregnancy-test"), inp.today,
                                       inp.thresholds.pregnancy_test_lookback_days)
                 if dm.test_result(inp, lab) == "negative"]
    if negatives and not any(e.kind == "test" for e in evidence):
        details.append(f"A negative pregnancy test on {negatives[0].date.isoformat()} is on record; "
                       "it does not cancel the status or problem-list entry: confirm and update the record")
    detail = tx.layout(
        f"Possible pregnancy: {tx.escape_record(main.short, 60)} on {tx.iso(main.date)}",
        "Denosumab is contraindicated in pregnancy: it caused fetal harm in animal studies.",
        ["Do not give denosumab while pregnancy is possible", "confirm with a serum hCG",
         "if not pregnant, document it (negative test or updated status)",
         "effective contraception during therapy and for at least 5 months after the last dose"],
        [tx.EVIDENCE["prolia-pregnancy"]], details, t=inp.thresholds)
    return Card(rule_id=RULE_ID, rule_title=TITLE, summary=summary, indicator="critical",
                **tx.source(tx.label_link(drafts)), detail=detail,
                suggestions=[serum_hcg_suggestion(inp, "Confirm or exclude pregnancy before denosumab"),
                             *tx.remove_drafts(drafts)],
                selection_behavior="any",
                override_reasons=override_reasons("pregnancy-excluded", "result-error"))
