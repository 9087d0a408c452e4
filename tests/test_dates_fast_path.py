"""``fhir_instant``'s fast path (``datetime.fromisoformat``) reads every value as the pattern-based
reader of catalog v2 did (RULES.md §1.3 Clock, A3): same instant, same zone, same None.

The reference below is the v2 reader, kept verbatim; the corpus crosses every shape the pattern
accepts (separator, seconds, 0–9 fraction digits, offsets with and without colon, out-of-range
fields, whitespace) with three zones, plus seeded random strings near those shapes.
"""

from __future__ import annotations

import itertools
import random
import re
from datetime import datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

import pytest

from cds_service.chart.dates import fhir_date, fhir_instant, is_future

_REF = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?"
                  r"\s*(Z|[+-]\d{2}:?\d{2})?$")


def reference_instant(value: object, zone: tzinfo) -> datetime | None:
    """The catalog v2 reader (before the fast path)."""
    if not isinstance(value, str):
        return None
    m = _REF.match(value.strip())
    if not m:
        return None
    y, mo, d, h, mi, s, frac, off = m.groups()
    try:
        micro = int(round(float(frac) * 1_000_000)) if frac else 0
        local = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s or 0), min(micro, 999_999))
    except ValueError:
        return None
    if off is None:
        return local.replace(tzinfo=zone)
    if off == "Z":
        tz: tzinfo = timezone.utc
    else:
        sign = -1 if off[0] == "-" else 1
        digits = off[1:].replace(":", "")
        try:
            tz = timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
        except ValueError:
            return None
    return local.replace(tzinfo=tz).astimezone(zone)


ZONES = (timezone.utc, ZoneInfo("Europe/Berlin"), ZoneInfo("Asia/Tokyo"))
DATES = ("2026-04-30", "2026-02-29", "2024-02-29", "2026-03-29", "2026-13-01", "0001-01-01", "9999-12-31")
TIMES = ("23:30", "02:30", "00:00:00", "23:59:59", "12:00:60", "24:00:00", "12:60:00", "02:30:00")
FRACTIONS = ("", ".5", ".12", ".123", ".1234", ".123456", ".999999", ".1234567", ".9999995", ".000000001")
OFFSETS = ("", "Z", "+00:00", "-00:00", "+01:00", "-06:00", "+0530", "-1200", "+14:00", "+23:59",
           "+24:00", "+01:75", " Z", " +02:00", "  -03:00")


def _corpus() -> list[str]:
    out = []
    for d, t, f, o in itertools.product(DATES, TIMES, FRACTIONS, OFFSETS):
        if f and t.count(":") == 1:
            continue                                   # a fraction needs seconds (pattern)
        out.append(f"{d}T{t}{f}{o}")
    out += [f" {d} {t}Z " for d in DATES for t in TIMES]
    return out


def _outcome(reader, value: str, zone: tzinfo) -> object:
    """The reader's answer, or the type of what it raised (both raise alike at the year's ends)."""
    try:
        return reader(value, zone)
    except ArithmeticError as exc:
        return type(exc)


def _same(value: str, zone: tzinfo) -> bool:
    a, b = _outcome(fhir_instant, value, zone), _outcome(reference_instant, value, zone)
    if isinstance(a, type) or isinstance(b, type):
        return a is b
    if a is None or b is None:
        return a is b
    return a == b and a.utcoffset() == b.utcoffset() and a.replace(tzinfo=None) == b.replace(tzinfo=None)


@pytest.mark.parametrize("zone", ZONES, ids=str)
def test_every_shape_reads_as_before(zone: tzinfo) -> None:
    corpus = _corpus()
    assert len(corpus) > 5000
    differ = [v for v in corpus if not _same(v, zone)]
    assert differ == []
    # and the shapes really exercise both answers
    answers = [_outcome(fhir_instant, v, zone) for v in corpus]
    assert sum(a is None for a in answers) > 500
    assert sum(isinstance(a, datetime) for a in answers) > 2000


def test_seeded_random_strings_read_as_before() -> None:
    rng = random.Random(11)
    alphabet = "0123456789-:T .Z+"
    base = "2026-04-30T23:30:15.123456+02:00"
    for _ in range(20_000):
        chars = list(base)
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(chars))
            op = rng.random()
            if op < 0.4:
                chars[i] = rng.choice(alphabet)
            elif op < 0.7:
                del chars[i]
            else:
                chars.insert(i, rng.choice(alphabet))
        value = "".join(chars)
        for zone in ZONES:
            assert _same(value, zone), (value, zone)


def test_dates_and_future_follow_the_reader() -> None:
    tokyo = ZoneInfo("Asia/Tokyo")
    assert fhir_date("2026-04-30T23:30:00-06:00", timezone.utc).isoformat() == "2026-05-01"
    assert fhir_date("2026-04-30T20:00:00Z", tokyo).isoformat() == "2026-05-01"
    assert fhir_date("2026-04-30T20:00:00.1234567Z", tokyo).isoformat() == "2026-05-01"
    now = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)
    today = now.date()
    assert not is_future("2026-05-01T12:05:00Z", now, today, 5)        # at the skew: not later
    assert is_future("2026-05-01T12:05:00.000001Z", now, today, 5)     # just after it
    assert is_future("2026-05-01T14:06:00+02:00", now, today, 5)
