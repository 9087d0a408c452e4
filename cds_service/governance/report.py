"""The governance report (issue 16): per rule, what clinicians did with its cards.

One read of the store (:meth:`FeedbackStore.window`), then everything in Python. Field names are
documented in README "Governance". Definitions:

* A card is *answered* when any feedback names it; its outcome is that of its latest feedback
  (a card accepted after an override counts as accepted), so accepted + overridden = answered.
* Rates are given over cards issued (``*_over_issued``) and over cards answered
  (``*_over_answered``); ``feedback_coverage`` = answered / issued. A rate with a zero
  denominator is ``null``.
* ``median_seconds_to_feedback``: from the card's issue to its first feedback received.
* ``accepted_by_member``: accepted suggestions of a merged card (AR-PRETREATMENT-WORKUP) counted
  by the member rule each stands for (its ``urn:bone-safety-cds:member`` extension, recorded
  with the suggestions offered); empty for other rules.
* ``unknown_card_feedback``: feedback received in the window for card uuids this service never
  issued (``feedback`` entries, distinct ``cards``, ``by_tenant``), counted apart from every rule.
* Weekly series: cards per rule in each of the :data:`SERIES_WEEKS` complete ISO weeks (Monday
  00:00 UTC) before the current week, whatever the window, with change points by
  :mod:`.changepoint`.
* Governance flag: override rate over answered > 90% with at least 20 cards answered; feedback
  coverage < 20% (any card issued); or a change point found in the last 4 complete weeks.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable

from ..feedback import NO_TENANT, FeedbackStore, unknown_summary
from . import changepoint

WINDOWS = (7, 30, 90)
DEFAULT_DAYS = 30
SERIES_WEEKS = 26
RECENT_WEEKS = 4
FLAG_OVERRIDE_RATE = 0.9
FLAG_MIN_ANSWERED = 20
FLAG_COVERAGE = 0.2
NO_REASON = "(no reason given)"
#: Upper bounds (ms) of the latency histogram's bins; the last bin is open.
LATENCY_BINS_MS = (10, 25, 50, 100, 250, 500, 1000, 2500)


def _parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts)


def _rate(n: int, d: int) -> float | None:
    return round(n / d, 4) if d else None


def override_reason_map(codes_path: Path | str) -> dict[str, dict[str, Any]]:
    """Override-reason code → ``{system, code, display, hl7: {system, code, display}}`` from
    codes.json ``override-reason`` (RULES.md v2 §6.3; the HL7 non-adherence category in ``map``)."""
    data = json.loads(Path(codes_path).read_text(encoding="utf-8"))
    out = {}
    for c in data.get("override-reason", []):
        m = c.get("map") or {}
        out[c["code"]] = {"system": c.get("system"), "display": c.get("display"),
                          "hl7": {"system": m.get("system"), "code": m.get("code"),
                                  "display": m.get("display")} if m else None}
    return out


def _summary(cards: list[dict[str, Any]], fb: dict[str, list[dict[str, Any]]],
             offered: dict[str, dict[str, Any]], reasons: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The figures of one group of cards (a rule, a rule's hook or tenant, or all); ``offered``:
    suggestion uuid → its issued record (``label``, ``member_rule``)."""
    issued = len(cards)
    answered = accepted = overridden = 0
    reason_counts: Counter[str] = Counter()
    accepted_labels: Counter[str] = Counter()
    accepted_members: Counter[str] = Counter()
    delays: list[float] = []
    for c in cards:
        entries = fb.get(c["card_uuid"])
        if not entries:
            continue
        answered += 1
        last = entries[-1]
        delays.append((_parse(entries[0]["received_at"]) - _parse(c["issued_at"])).total_seconds())
        if last["outcome"] == "accepted":
            accepted += 1
            for sid in json.loads(last["accepted_suggestions"] or "[]"):
                sug = offered.get(sid) or {}
                accepted_labels[sug.get("label", "(not a suggestion offered)")] += 1
                if sug.get("member_rule"):
                    accepted_members[sug["member_rule"]] += 1
        else:
            overridden += 1
            reason_counts[last["override_code"] or NO_REASON] += 1
    mix = []
    for code, n in sorted(reason_counts.items(), key=lambda kv: (-kv[1], kv[0])):
        known = reasons.get(code, {})
        mix.append({"code": code, "display": known.get("display"), "count": n,
                    "share": _rate(n, overridden), "hl7": known.get("hl7")})
    return {
        "cards_issued": issued,
        "unique_patients": len({c["patient_key"] for c in cards if c.get("patient_key")}),
        "cards_answered": answered,
        "feedback_coverage": _rate(answered, issued),
        "accepted": accepted,
        "overridden": overridden,
        "accept_rate_over_issued": _rate(accepted, issued),
        "accept_rate_over_answered": _rate(accepted, answered),
        "override_rate_over_issued": _rate(overridden, issued),
        "override_rate_over_answered": _rate(overridden, answered),
        "override_reasons": mix,
        "accepted_suggestions": [{"label": label, "count": n}
                                 for label, n in sorted(accepted_labels.items(), key=lambda kv: (-kv[1], kv[0]))],
        "accepted_by_member": dict(sorted(accepted_members.items(), key=lambda kv: (-kv[1], kv[0]))),
        "median_seconds_to_feedback": round(statistics.median(delays), 1) if delays else None,
    }


def week_start(moment: datetime) -> datetime:
    """Monday 00:00 UTC of the ISO week holding ``moment``."""
    day = moment.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(days=day.weekday())


def _flags(s: dict[str, Any], cps: list[dict[str, Any]], recent_from: str) -> list[str]:
    out = []
    rate = s["override_rate_over_answered"]
    if rate is not None and rate > FLAG_OVERRIDE_RATE and s["cards_answered"] >= FLAG_MIN_ANSWERED:
        out.append(f"override rate {rate:.0%} of {s['cards_answered']} cards answered (> 90%, at least 20)")
    if s["cards_issued"] and (s["feedback_coverage"] or 0) < FLAG_COVERAGE:
        out.append(f"feedback coverage {s['feedback_coverage']:.0%} of {s['cards_issued']} cards (< 20%)")
    for cp in cps:
        if cp["alarm_week"] >= recent_from:
            out.append(f"weekly cards changed {cp['direction']} from week {cp['onset_week']} "
                       f"({cp['before']:g} → {cp['after']:g} a week)")
    return out


def _latency(cards: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Per hook: calls (with cards) and a histogram of their latency (one value per call)."""
    calls: dict[str, dict[str, float]] = defaultdict(dict)
    for c in cards:
        if c.get("latency_ms") is not None and c.get("hook"):
            calls[c["hook"]][c.get("call_id") or c["card_uuid"]] = float(c["latency_ms"])
    out = {}
    for hook, by_call in sorted(calls.items()):
        values = sorted(by_call.values())
        counts = [0] * (len(LATENCY_BINS_MS) + 1)
        for v in values:
            counts[next((i for i, b in enumerate(LATENCY_BINS_MS) if v <= b), len(LATENCY_BINS_MS))] += 1
        bins = [{"le_ms": b, "calls": n} for b, n in zip(LATENCY_BINS_MS, counts)]
        bins.append({"le_ms": None, "calls": counts[-1]})
        out[hook] = {"calls": len(values), "median_ms": round(statistics.median(values), 1),
                     "p95_ms": round(values[min(len(values) - 1, int(0.95 * len(values)))], 1),
                     "histogram": bins}
    return out


def build_report(store: FeedbackStore, *, now: datetime, days: int = DEFAULT_DAYS,
                 codes_path: Path | str | None = None) -> dict[str, Any]:
    """The report for the ``days`` before ``now`` (see the module docstring for definitions)."""
    if days not in WINDOWS:
        raise ValueError(f"days must be one of {', '.join(map(str, WINDOWS))}, got {days}")
    if codes_path is None:
        from ..chart.valuesets import DEFAULT_PATH as codes_path
    reasons = override_reason_map(codes_path)
    start = now - timedelta(days=days)
    data = store.window(start, now + timedelta(microseconds=1))
    fb: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for f in data["feedback"]:
        fb[f["card_uuid"]].append(f)
    offered = {s["suggestion_uuid"]: s for s in data["suggestions"] if s["suggestion_uuid"]}

    this_week = week_start(now)
    first_week = this_week - timedelta(weeks=SERIES_WEEKS)
    weeks = [first_week + timedelta(weeks=i) for i in range(SERIES_WEEKS)]
    week_keys = [w.date().isoformat() for w in weeks]
    weekly: dict[str, list[int]] = defaultdict(lambda: [0] * SERIES_WEEKS)
    first_day = first_week.date()
    for rule, day, n in store.daily_counts(first_week, this_week):
        weekly[rule][(date.fromisoformat(day) - first_day).days // 7] += n
    recent_from = week_keys[-RECENT_WEEKS]

    by_rule: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for c in data["cards"]:
        by_rule[c["rule_id"]].append(c)
    rules = {}
    for rule in sorted(set(by_rule) | set(weekly)):
        cards = by_rule.get(rule, [])
        summary = _summary(cards, fb, offered, reasons)
        series = weekly.get(rule, [0] * SERIES_WEEKS)
        cps = [{"onset_week": week_keys[cp.onset], "alarm_week": week_keys[cp.alarm], "direction": cp.direction,
                "before": round(cp.before, 1), "after": round(cp.after, 1)}
               for cp in changepoint.change_points(series)]
        groups: dict[str, dict[str, list[dict[str, Any]]]] = {"hook": defaultdict(list), "tenant": defaultdict(list)}
        for c in cards:
            groups["hook"][c.get("hook") or "(unknown hook)"].append(c)
            groups["tenant"][c.get("tenant") or NO_TENANT].append(c)
        flags = _flags(summary, cps, recent_from)
        rules[rule] = {
            "rule": rule,
            **summary,
            "indicators": dict(sorted(Counter(c["indicator"] for c in cards).items())),
            "by_hook": {k: _summary(v, fb, offered, reasons) for k, v in sorted(groups["hook"].items())},
            "by_tenant": {k: _summary(v, fb, offered, reasons) for k, v in sorted(groups["tenant"].items())},
            "weekly": [{"week": w, "cards": n} for w, n in zip(week_keys, series)],
            "change_points": cps,
            "governance_flag": bool(flags),
            "flag_reasons": flags,
        }
    return {
        "generated_at": now.astimezone(timezone.utc).isoformat(timespec="seconds"),
        "window": {"days": days, "start": start.astimezone(timezone.utc).isoformat(timespec="seconds"),
                   "end": now.astimezone(timezone.utc).isoformat(timespec="seconds")},
        "totals": _summary(data["cards"], fb, offered, reasons),
        "rules": rules,
        "unknown_card_feedback": unknown_summary(data["unknown_feedback"]),
        "latency": _latency(data["cards"]),
        "method": {
            "change_points": {"test": "two-sided CUSUM on Anscombe-transformed weekly Poisson counts",
                              "k": changepoint.K, "h": changepoint.H,
                              "baseline_weeks": changepoint.BASELINE_WEEKS, "series_weeks": SERIES_WEEKS,
                              "recent_weeks": RECENT_WEEKS},
            "flag": {"override_rate_above": FLAG_OVERRIDE_RATE, "min_cards_answered": FLAG_MIN_ANSWERED,
                     "coverage_below": FLAG_COVERAGE},
            "outcome": "latest feedback of each card",
        },
    }
