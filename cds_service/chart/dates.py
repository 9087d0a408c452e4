"""Calendar arithmetic of the clinical catalog (RULES.md D1).

All interval logic is on calendar dates: months are calendar months with the day clamped to
the target month (Aug 31 + 6 months = Feb 28/29), never 30 or 30.44 days.
"""

from __future__ import annotations

import calendar
import re
from datetime import date, datetime, timezone

_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?")


def add_months(d: date, n: int) -> date:
    """``d`` moved by ``n`` calendar months, day clamped to the target month's length (D1)."""
    month_index = d.year * 12 + (d.month - 1) + n
    year, month = divmod(month_index, 12)
    month += 1
    return date(year, month, min(d.day, calendar.monthrange(year, month)[1]))


def days_between(a: date, b: date) -> int:
    """``(b - a).days``: a dose given yesterday is 1 day ago (D1)."""
    return (b - a).days


def fhir_date(value: object) -> date | None:
    """Calendar date of a FHIR date/dateTime/instant string, in the value's own offset (D1).

    A partial date (``2020`` or ``2020-05``) is read as the first day of that period.
    Returns None for anything unreadable.
    """
    if not isinstance(value, str):
        return None
    m = _DATE.match(value.strip())
    if not m:
        return None
    try:
        return date(int(m.group(1)), int(m.group(2) or 1), int(m.group(3) or 1))
    except ValueError:
        return None


def today_utc(now: datetime) -> date:
    """"Today" is the calendar date of ``now`` in UTC (RULES.md §1 Clock)."""
    if now.tzinfo is None:
        return now.date()
    return now.astimezone(timezone.utc).date()


def age_on(birth: date, today: date) -> int:
    """Whole years on ``today`` (a birthday today counts, D1)."""
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))
