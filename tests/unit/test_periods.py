from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from salespulse.domain.periods import (
    FIRST_DAY,
    LAST_DAY,
    PERIODS,
    bucket_starts,
    next_period_start,
    parse_period,
    period_label,
    period_start,
    progress,
)
from salespulse.domain.windows import ORIGIN, PERIOD_END, PERIOD_START, TOMORROW, Window, bounds, cover

PARIS = ZoneInfo("Europe/Paris")


@given(st.sampled_from(PERIODS), st.dates(min_value=date(1971, 1, 1), max_value=date(2999, 12, 1)))
def test_every_day_lies_in_exactly_the_bucket_that_starts_at_its_period_start(kind, day):
    start = period_start(kind, day)
    assert start <= day < next_period_start(kind, start)
    assert period_start(kind, start) == start
    assert parse_period(period_label(kind, start)) == (kind, start)


@pytest.mark.parametrize("kind, day, start", [
    ("week", date(2026, 1, 1), date(2025, 12, 29)),  # ISO week 1 of 2026 starts in 2025
    ("week", date(2026, 11, 22), date(2026, 11, 16)),  # a Sunday belongs to the week before
    ("month", date(2026, 2, 28), date(2026, 2, 1)),
    ("quarter", date(2026, 11, 22), date(2026, 10, 1)),
    ("quarter", date(2026, 3, 31), date(2026, 1, 1)),
    ("year", date(2026, 12, 31), date(2026, 1, 1)),
])
def test_bucket_starts(kind, day, start):
    assert period_start(kind, day) == start


def test_an_event_near_midnight_lands_in_the_business_day_not_the_utc_day():
    just_after_midnight_in_paris = datetime(2026, 10, 31, 23, 30, tzinfo=timezone.utc)  # 00:30 CET
    starts = bucket_starts(just_after_midnight_in_paris, PARIS)
    assert starts["day"] == date(2026, 11, 1)
    assert starts["month"] == date(2026, 11, 1)
    assert starts["quarter"] == date(2026, 10, 1)
    assert bucket_starts(just_after_midnight_in_paris, ZoneInfo("UTC"))["month"] == date(2026, 10, 1)


def test_naive_times_are_refused():
    with pytest.raises(ValueError, match="naive"):
        bucket_starts(datetime(2026, 1, 1), PARIS)


def test_progress_counts_real_time_across_a_dst_change():
    # 2026-03-29 has 23 hours in Paris: at 12:00 local, 11 of 23 hours have passed.
    noon = datetime(2026, 3, 29, 12, tzinfo=PARIS)
    assert progress("day", date(2026, 3, 29), noon, PARIS) == pytest.approx(11 / 23)
    assert progress("day", date(2026, 3, 29), noon - timedelta(days=2), PARIS) == 0.0
    assert progress("day", date(2026, 3, 29), noon + timedelta(days=2), PARIS) == 1.0


@pytest.mark.parametrize("label, expected", [
    ("month", ("month", None)),
    ("2026-11", ("month", date(2026, 11, 1))),
    ("2026-W47", ("week", date(2026, 11, 16))),
    ("2026-Q4", ("quarter", date(2026, 10, 1))),
    ("2026", ("year", date(2026, 1, 1))),
    ("2026-11-22", ("day", date(2026, 11, 22))),
])
def test_period_labels(label, expected):
    assert parse_period(label) == expected


@pytest.mark.parametrize("label", ["decade", "2026-13", "2026-W60", "2026-02-30", "26-11", "", "9999", "0001-Q1",
                                   "3000-01-01", "1899-W52"])
def test_bad_period_labels_are_refused_with_a_reason(label):
    with pytest.raises(ValueError, match="period|not a real|outside the years"):
        parse_period(label)


@given(st.sampled_from(PERIODS), st.dates(FIRST_DAY, LAST_DAY), st.sampled_from(["Pacific/Kiritimati", "Pacific/Niue"]))
def test_every_day_the_api_can_be_asked_about_has_a_bucket_an_end_and_a_progress(kind, day, zone):
    # GET /kpis?at= takes FIRST_DAY..LAST_DAY: each day's bucket, its end and the share elapsed
    # of it are computable (9999-12-31's week ended past date.max: a 500), and so are its windows.
    start = period_start(kind, day)
    end = next_period_start(kind, start)
    assert start <= day < end
    assert 0.0 <= progress(kind, start, datetime.now(timezone.utc), ZoneInfo(zone)) <= 1.0
    for window in (Window("w", "m", ORIGIN, PERIOD_END), Window("w", "m", PERIOD_START, TOMORROW)):
        a, b = bounds(window, kind, start, today=day, origin=FIRST_DAY)
        assert sum((next_period_start(k, s) - s).days for k, s in cover(a, b)) == (b - a).days
