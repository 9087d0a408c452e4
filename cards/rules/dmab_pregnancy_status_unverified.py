"""DMAB-PREGNANCY-STATUS-UNVERIFIED — pregnancy status not checked before starting denosumab.

RULES.md §3 (with D1 "Age", D4 "Initiation", D8 "Reproductive potential", §7 exclusive pairs,
§8 item 13).
Evidence: seed 001_282e696d69a84463.txt §Special Populations › Pregnancy and Lactation ("verify
pregnancy status before initiating treatment and advise effective contraception … for at least
5 months after the last dose"); Prolia label §8.3 (females of reproductive potential).

Fires on an order hook when a denosumab draft is an **initiation** (D4), the patient is of
reproductive potential (D8: female — or sex unknown with a pregnancy record — aged
``reproductive_age_min``–``reproductive_age_max`` inclusive on today's date, without a
``non-reproductive-status`` record), no pregnancy test and no pregnancy-status observation of
any result is dated within ``pregnancy_test_lookback_days``, and DMAB-PREGNANCY does not fire
(exclusive, §7). Unknown age → never (age-dependent rules do not assume, D1).
"""

from __future__ import annotations

from datetime import timedelta

from cds_service.chart.labs import within

from ..builders import LAB_CODES, lab_request, override_reasons
from ..model import Action, Card, Suggestion
from ..registry import MEDS, ORDER_HOOKS, RuleInput, rule
from . import _dmab_common as dm
from . import _definitions as defs
from . import _text as tx

RULE_ID = "DMAB-PREGNANCY-STATUS-UNVERIFIED"
TITLE = "Pregnancy status not checked before starting denosumab"


def _hcg(inp: RuleInput, lab: str, label: str) -> Suggestion:
    body = lab_request(inp.orders, lab, "Verify pregnancy status before starting denosumab")
    return Suggestion(label, [Action(f"Order {LAB_CODES[lab][1]}", body)])


def _words(lab) -> str:  # noqa: ANN001 - a Lab
    """A pregnancy test or status with a value that is no recognisable result (A39)."""
    name = "Pregnancy test" if lab.concept == "pregnancy-test" else "Pregnancy status"
    return f"{name} on {lab.date.isoformat()}: no recognisable result"


@rule(RULE_ID, TITLE, hooks=ORDER_HOOKS, needs=MEDS | {"Patient", "Observation", "Condition", "Procedure"})
def dmab_pregnancy_status_unverified(inp: RuleInput) -> Card | None:
    drafts = dm.dmab_drafts(inp)
    if not drafts or not defs.is_initiation(inp, dm.DENOSUMAB):
        return None
    repro = dm.reproductive_potential(inp)
    if not repro.potential:
        return None
    chart, window = inp.chart, inp.thresholds.pregnancy_test_lookback_days
    recent = [lab for concept in ("pregnancy-test", "pregnancy-status")
              for lab in within(chart.labs(concept), inp.today, window)]
    # A39: only a result verifies status; a test or status with no value or no recognisable
    # result does not, and the card names it
    readable = [lab for lab in recent
                if (dm.test_result(inp, lab) if lab.concept == "pregnancy-test" else dm.status_result(lab))]
    if readable:
        return None
    if dm.pregnancy_evidence(inp):
        return None  # DMAB-PREGNANCY speaks (§7)

    start = inp.today - timedelta(days=window)
    summary = ("Pregnancy status not verified in the last 30 days: test before starting denosumab"
               if window == 30 else
               tx.fit(f"Pregnancy status not verified in the last {window} days: test before "
                      "starting denosumab"))
    older = [lab for concept in ("pregnancy-test", "pregnancy-status") for lab in chart.labs(concept)]
    older.sort(key=lambda lab: lab.date, reverse=True)
    lines = [f"Ordered as a start of denosumab: {tx.draft_list(drafts)}; reproductive potential: "
             f"{repro.reason} (inferred from sex, age and no hysterectomy, oophorectomy or menopause "
             "record; override if it does not apply)",
             f"Looked for: a pregnancy test or pregnancy status observation between "
             f"{start.isoformat()} and {inp.today.isoformat()} ({window} days)"]
    finding = f"Pregnancy status not verified in the last {window} days"
    unreadable = sorted(recent, key=lambda lab: lab.date, reverse=True)
    if unreadable:
        finding += (". A result in the window does not verify it: "
                    + "; ".join(tx.unusable_finding(l) if not l.usable else
                                f"{l.unusable_text() or _words(l)}" for l in unreadable))
    else:
        lines.append("Last pregnancy test or status: " + (
            f"{tx.lab_text(older[0])} (outside the window)" if older else "none on record"))
    detail = tx.layout(
        finding,
        "Denosumab can cause fetal harm; pregnancy status is verified before starting.",
        ["Check a urine or serum hCG before the first dose (or document the status verified "
         "otherwise)", "advise effective contraception during therapy and for at least 5 months "
         "after the last dose"],
        [tx.EVIDENCE["prolia-pregnancy"]], lines, t=inp.thresholds)
    return Card(rule_id=RULE_ID, rule_title=TITLE, summary=summary, indicator="info",
                **tx.source(tx.label_link(drafts)), detail=detail,
                suggestions=[_hcg(inp, "hcg-urine", "Order urine hCG"),
                             _hcg(inp, "hcg-serum", "Order serum hCG")],
                selection_behavior="at-most-one",
                override_reasons=override_reasons("not-of-reproductive-potential",
                                                  "verified-verbally", "recent-test-elsewhere"))
