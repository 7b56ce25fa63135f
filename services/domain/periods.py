"""Calendar buckets (day, ISO week, month, quarter, year) in the business time zone."""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from types import MappingProxyType
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

PERIODS: tuple[str, ...] = ("day", "week", "month", "quarter", "year")
# The years a sale, a reading or a target can fall in: no sale happens outside them, and the
# periods, windows and spells computed from a moment near Python's date limits would overflow.
YEARS = (1900, 2999)
FIRST_DAY, LAST_DAY = date(YEARS[0], 1, 1), date(YEARS[1], 12, 31)
SNAPSHOT = "now"  # the pseudo-period of state KPIs (open pipeline): one current value


def period_start(kind: str, day: date) -> date:
    """First day of the `kind` bucket that contains `day`."""
    if kind == "day":
        return day
    if kind == "week":
        return day - timedelta(days=day.weekday())
    if kind == "month":
        return day.replace(day=1)
    if kind == "quarter":
        return date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
    if kind == "year":
        return date(day.year, 1, 1)
    raise ValueError(f"unknown period {kind!r}; expected one of {', '.join(PERIODS)}")


def next_period_start(kind: str, start: date) -> date:
    """First day after the bucket that begins on `start`."""
    if kind == "day":
        return start + timedelta(days=1)
    if kind == "week":
        return start + timedelta(days=7)
    months = {"month": 1, "quarter": 3, "year": 12}.get(kind)
    if months is None:
        raise ValueError(f"unknown period {kind!r}")
    month_index = start.year * 12 + start.month - 1 + months
    return date(month_index // 12, month_index % 12 + 1, 1)


def local_day(moment: datetime, tz: ZoneInfo) -> date:
    """The calendar day of an aware instant in the business time zone."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: event times must carry a UTC offset")
    return moment.astimezone(tz).date()


def bucket_starts(moment: datetime, tz: ZoneInfo) -> Mapping[str, date]:
    """The start of every period kind containing `moment`, bucketed in `tz` (read-only)."""
    return _starts_of_day(local_day(moment, tz))


@lru_cache(maxsize=8192)
def _starts_of_day(day: date) -> Mapping[str, date]:
    """Memoised: a customer's every order is bucketed again each time the customer changes."""
    return MappingProxyType({kind: period_start(kind, day) for kind in PERIODS})


def progress(kind: str, start: date, now: datetime, tz: ZoneInfo) -> float:
    """Share of the bucket elapsed at `now`: 0 before it, 1 after it, real elapsed time between.

    Computed on UTC instants, so a 23- or 25-hour DST day counts its real length.
    """
    begin = datetime.combine(start, time.min, tzinfo=tz)
    end = datetime.combine(next_period_start(kind, start), time.min, tzinfo=tz)
    total = (end.astimezone(ZoneInfo("UTC")) - begin.astimezone(ZoneInfo("UTC"))).total_seconds()
    elapsed = (now.astimezone(ZoneInfo("UTC")) - begin.astimezone(ZoneInfo("UTC"))).total_seconds()
    return min(1.0, max(0.0, elapsed / total))


def period_label(kind: str, start: date) -> str:
    """Human label of a bucket: 2026-11-22, 2026-W47, 2026-11, 2026-Q4, 2026."""
    if kind == "day":
        return start.isoformat()
    if kind == "week":
        year, week, _ = start.isocalendar()
        return f"{year}-W{week:02d}"
    if kind == "month":
        return f"{start.year}-{start.month:02d}"
    if kind == "quarter":
        return f"{start.year}-Q{(start.month - 1) // 3 + 1}"
    if kind == "year":
        return str(start.year)
    raise ValueError(f"unknown period {kind!r}")


_LABELS = [
    ("day", re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")),
    ("week", re.compile(r"^(\d{4})-W(\d{2})$")),
    ("month", re.compile(r"^(\d{4})-(\d{2})$")),
    ("quarter", re.compile(r"^(\d{4})-Q([1-4])$")),
    ("year", re.compile(r"^(\d{4})$")),
]


def parse_period(text: str) -> tuple[str, date | None]:
    """`month` -> ("month", None): every month; `2026-11` -> ("month", 2026-11-01): that one."""
    if text in PERIODS:
        return text, None
    for kind, pattern in _LABELS:
        match = pattern.match(text)
        if not match:
            continue
        parts = [int(p) for p in match.groups()]
        try:
            if kind == "day":
                start = date(*parts)
            elif kind == "week":
                start = date.fromisocalendar(parts[0], parts[1], 1)
            elif kind == "month":
                start = date(parts[0], parts[1], 1)
            elif kind == "quarter":
                start = date(parts[0], 3 * (parts[1] - 1) + 1, 1)
            else:
                start = date(parts[0], 1, 1)
        except ValueError as exc:
            raise ValueError(f"{text!r} is not a real {kind}: {exc}") from None
        if not YEARS[0] <= parts[0] <= YEARS[1]:
            raise ValueError(f"{text!r} is outside the years {YEARS[0]}-{YEARS[1]}")
        return kind, start
    raise ValueError(
        f"{text!r} is not a period: use day, week, month, quarter or year, or one bucket "
        f"such as 2026-11-22, 2026-W47, 2026-11, 2026-Q4 or 2026")
