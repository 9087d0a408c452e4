"""BP-DRUG-HOLIDAY-REVIEW — long bisphosphonate exposure.

RULES.md §4 (with D4 "Oral bisphosphonate exposure" and "IV zoledronic acid 5 mg exposure",
D10 ``bp_oral_holiday_years`` / ``bp_iv_holiday_infusions``, §7 draft-independent rules, §8 item 17).
Evidence: seed 000_01a4571caa474e4a.txt (indications: postmenopausal, male and
glucocorticoid-induced osteoporosis, Paget's disease; oral and IV forms); ASBMR task force on
long-term bisphosphonate therapy (Adler et al., J Bone Miner Res 2016: reassess after 5 years
oral / 3 years IV; continue up to 10 / 6 years if high risk, else consider a drug holiday);
alendronate and ibandronate labels (consider stopping after 3–5 years in low-risk patients).

patient-view only. Fires when the current oral course has lasted ``bp_oral_holiday_years`` or
more, or the current zoledronic acid 5 mg course holds ``bp_iv_holiday_infusions`` or more
infusions. Oral courses pool every oral agent (a switch from alendronate to risedronate continues
the course; a gap of more than 365 days starts a new one, §8 item 17). Zoledronic acid 4 mg and
pamidronate (oncology dosing) are never counted; Paget's disease courses are left alone.
"""

from __future__ import annotations

from datetime import date

from cds_service.chart import add_months, months_since

from ..builders import LINKS, OrderContext, override_reasons
from ..model import Action, Card, Suggestion
from ..registry import MEDS, PATIENT_VIEW, RuleInput, rule
from . import _bp_common as bp
from . import _text as tx

RULE_ID = "BP-DRUG-HOLIDAY-REVIEW"
TITLE = "Long bisphosphonate exposure"


def dxa_request(ctx: OrderContext) -> Suggestion:
    """ServiceRequest: DXA scan (text only: no code for it in the value sets, RULES.md §4)."""
    body = ctx.base("ServiceRequest")
    body["category"] = [{"text": "Imaging"}]
    body["code"] = {"text": "DXA scan (bone mineral density) of hip and lumbar spine"}
    body["reasonCode"] = [{"text": "Drug holiday review after long bisphosphonate therapy"}]
    return Suggestion("Order a DXA scan for the drug holiday review",
                      [Action("Create a draft order: DXA scan of hip and spine", body)])


def _years(start: date, end: date) -> int:
    return months_since(start, end) // 12


def _agents_text(agents: list[str]) -> str:
    return ", then ".join(bp.agent_word(a) for a in agents)


def _course_line(c: bp.Course) -> str:
    agents = _agents_text(c.agents())
    return f"{c.start.isoformat()} to {c.end.isoformat()} ({agents}, {len(c.records)} records)"


@rule(RULE_ID, TITLE, hooks=PATIENT_VIEW, needs=MEDS)
def bp_drug_holiday_review(inp: RuleInput) -> Card | None:
    t = inp.thresholds
    today = inp.today
    oral = bp.oral_courses(inp)
    zol = bp.zoledronic_5mg_courses(inp)
    skipped: list[str] = []

    oral_due = None
    if oral and oral[-1].current and add_months(oral[-1].start, 12 * t.bp_oral_holiday_years) <= today:
        paget = bp.paget_evidence(inp, oral[-1].records)
        if paget:
            skipped.append(f"oral course since {oral[-1].start.isoformat()}: Paget's disease "
                           f"course ({paget})")
        else:
            oral_due = oral[-1]
    iv_due = None
    if zol and zol[-1].current and len(zol[-1].records) >= t.bp_iv_holiday_infusions:
        paget = bp.paget_evidence(inp, zol[-1].records)
        if paget:
            skipped.append(f"zoledronic acid 5 mg since {zol[-1].start.isoformat()}: Paget's disease "
                           f"course ({paget})")
        else:
            iv_due = zol[-1]
    if oral_due is None and iv_due is None:
        return None

    if oral_due is not None:
        n = _years(oral_due.start, today)
        agent = bp.capital(tx.cut(_agents_text(oral_due.agents()), 40))
        summary = (f"{agent} for {n} years (oral, since {oral_due.start.isoformat()}): review whether "
                   "to continue or take a drug holiday")
    else:
        assert iv_due is not None
        summary = (f"Zoledronic acid 5 mg: {len(iv_due.records)} infusions since "
                   f"{iv_due.start.isoformat()} (IV): review whether to continue or take a drug holiday")
    summary = tx.summary(summary)

    details: list[str] = []
    if oral_due is not None:
        by_text = any(r.drug.by_text for r in oral_due.records)
        finding = (f"Oral bisphosphonate course since {oral_due.start.isoformat()}: "
                   f"{_years(oral_due.start, today)} years ({months_since(oral_due.start, today)} "
                   f"months; review at {t.bp_oral_holiday_years} years)")
        details.append(f"Oral course: {tx.escape_record(_agents_text(oral_due.agents()), 80)}"
                       + (" (identified by name, not code)" if by_text else "")
                       + f"; latest record {oral_due.last_record.isoformat()}; "
                         f"still current: {oral_due.why_current}")
    if iv_due is not None:
        dates = ", ".join(r.date.isoformat() for r in iv_due.records if r.date)
        iv_text = (f"Zoledronic acid 5 mg: {len(iv_due.records)} infusions in the current course "
                   f"(review at {t.bp_iv_holiday_infusions})")
        finding = iv_text if oral_due is None else f"{finding}; {iv_text}"
        details.append(f"Zoledronic acid 5 mg infusions: {dates}")
    details.append("How the course was counted: dispenses (their days' supply, "
                   f"{t.dispense_default_days_supply} days when not stated), orders over the supply "
                   f"they state ({t.oral_order_default_days} days when none) and statement periods, "
                   "pooled across oral agents (switching agent continues the course); a gap of more "
                   f"than {t.oral_course_gap_days} days starts a new course; current while a "
                   "statement is active or a supply ended within "
                   f"{t.oral_course_current_days} days; zoledronic acid 5 mg infusions per course "
                   f"(gap over {t.iv_course_gap_months} months starts a new one); oncology doses not counted")
    if len(oral) > 1:
        details.append("Earlier oral courses (not counted in the current one): "
                       + "; ".join(_course_line(c) for c in oral[:-1]))
    lifetime_days = sum((c.end - c.start).days for c in oral)
    total_zol = sum(len(c.records) for c in zol)
    details.append(f"Cumulative exposure on record: oral about {lifetime_days / 365.25:.1f} years over "
                   f"{len(oral)} course(s); zoledronic acid 5 mg {total_zol} infusion(s)")
    for s in skipped:
        details.append(f"Not counted: {s}")
    detail = tx.layout(
        finding,
        "After 5 years of oral or 3 years of IV therapy the benefit of continuing depends on "
        "fracture risk, while the risks of atypical femoral fracture and osteonecrosis of the jaw "
        "rise with duration.",
        [*tx.partial_history_todo(inp.chart), "Reassess fracture risk (recent fracture, hip T-score ≤ −2.5, high FRAX)",
         "high risk: continue (up to 10 years oral or 6 years IV)",
         "lower risk: consider a 2–3 year drug holiday", "ask about thigh or groin pain"],
        [tx.EVIDENCE["asbmr"], tx.EVIDENCE["bp-holiday"]], details, t=inp.thresholds)
    return Card(rule_id=RULE_ID, rule_title=TITLE, summary=summary, indicator="info",
                **tx.source("ASBMR-2016"),
                detail=detail, suggestions=[dxa_request(inp.orders)],
                selection_behavior="any",
                override_reasons=override_reasons("high-risk-continue", "reviewed-this-year",
                                                  "holiday-planned"))
