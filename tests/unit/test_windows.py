"""Date windows: the rows that tile a range of days, and where the bounds fall."""

from datetime import date, timedelta

from hypothesis import given
from hypothesis import strategies as st

from salespulse.domain.periods import next_period_start
from salespulse.domain.windows import ORIGIN, PERIOD_END, PERIOD_START, TODAY, Window, bounds, cover

days = st.dates(min_value=date(2019, 1, 1), max_value=date(2031, 12, 31))


@given(days, st.integers(0, 3000))
def test_cover_tiles_the_range_exactly_with_few_rows(a, length):
    b = a + timedelta(days=length)
    rows = cover(a, b)
    covered = set()
    for kind, start in rows:
        end = next_period_start(kind, start)
        span = {start + timedelta(days=i) for i in range((end - start).days)}
        assert not covered & span  # no day twice
        covered |= span
    assert covered == {a + timedelta(days=i) for i in range(length)}
    assert len(rows) <= 31 + 11 + length // 365 + 11 + 31  # days, months, years, months, days


def test_period_end_never_reaches_past_today():
    w = Window("x", "m", PERIOD_START, PERIOD_END)
    today = date(2026, 11, 22)
    assert bounds(w, "month", date(2026, 11, 1), today, date(2020, 1, 1)) == (date(2026, 11, 1), date(2026, 11, 23))
    assert bounds(w, "month", date(2026, 10, 1), today, date(2020, 1, 1)) == (date(2026, 10, 1), date(2026, 11, 1))
    assert bounds(Window("y", "m", ORIGIN, TODAY), None, None, today, date(2020, 1, 1)) == (date(2020, 1, 1), today)
    assert cover(date(2026, 11, 1), date(2026, 11, 1)) == []
