"""Sums of a measure over a range of days, read from as few period rows as possible.

Some KPIs are not a function of one period bucket: the customers active at the start of a
month are every activation minus every loss before that day; the receivables overdue today
are what is owed on every due date before today. Their measures are booked on day, month and
year rows (entities.WINDOW_PERIODS), and a window over [a, b) reads whole years, then whole
months, then days: at most a few dozen rows, whatever the range.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from salespulse.domain.periods import next_period_start

ORIGIN, PERIOD_START, PERIOD_END, TODAY, TOMORROW = "origin", "period_start", "period_end", "today", "tomorrow"


@dataclass(frozen=True)
class Window:
    """`name` = sum of `measure` over the days [start, end), bounds named as above.

    PERIOD_END is clipped to TOMORROW: a window never counts days that have not begun.
    """

    name: str
    measure: str
    start: str
    end: str


def bounds(window: Window, period: str | None, start: date | None, today: date,
           origin: date) -> tuple[date, date]:
    tomorrow = today + timedelta(days=1)

    def resolve(which: str) -> date:
        if which == ORIGIN:
            return origin
        if which == TODAY:
            return today
        if which == TOMORROW:
            return tomorrow
        if start is None or period is None:
            raise ValueError(f"window bound {which!r} needs a period bucket")
        if which == PERIOD_START:
            return start
        if which == PERIOD_END:
            return min(next_period_start(period, start), tomorrow)
        raise ValueError(f"unknown window bound {which!r}")

    return resolve(window.start), resolve(window.end)


def cover(a: date, b: date) -> list[tuple[str, date]]:
    """The (period kind, bucket start) rows that tile the days [a, b) exactly, fewest first."""
    out: list[tuple[str, date]] = []
    while a < b:
        if a.month == 1 and a.day == 1 and date(a.year + 1, 1, 1) <= b:
            kind = "year"
        elif a.day == 1 and next_period_start("month", a) <= b:
            kind = "month"
        else:
            kind = "day"
        out.append((kind, a))
        a = next_period_start(kind, a)
    return out
