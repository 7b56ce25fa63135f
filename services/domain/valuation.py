"""A KPI's value for one row of the measure cube, with the target that applies to it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from zoneinfo import ZoneInfo

from salespulse.domain.aggregation import RowKey
from salespulse.domain.kpis import Kpi, KpiValue, evaluate
from salespulse.domain.periods import SNAPSHOT, progress
from salespulse.domain.targets import TargetBook
from salespulse.domain.windows import bounds, cover


def value_row(kpi: Kpi, row: RowKey, measures: Mapping[str, int], book: TargetBook, now: datetime,
              tz: ZoneInfo, total: Mapping[str, int] | None = None, elapsed: float | None = None) -> KpiValue:
    """`measures` holds the row's merged measures and, for window KPIs, the window sums
    (window_rows); `total` the `all` row of the bucket, for share KPIs; `elapsed` the share of
    the row's period elapsed at `now`, when the caller has it (the same for many rows)."""
    start = date.fromisoformat(row.start) if row.period != SNAPSHOT else None
    if elapsed is None:
        elapsed = progress(row.period, start, now, tz) if start is not None else 1.0
    target = book.find(kpi.id, row.dim, row.key, row.period, start)
    basis_of = kpi.attainment_of or kpi.gap_of
    basis = book.find(basis_of, row.dim, row.key, row.period, start) if basis_of else None
    return evaluate(kpi, measures, target, elapsed, basis, total)


def kpi_row_for(kpi: Kpi, period: str, start: date, dim: str, key: str) -> RowKey:
    """The row a KPI reads: state KPIs read the `now` row whatever period is asked."""
    if kpi.snapshot:
        return RowKey(SNAPSHOT, "", dim, key)
    return RowKey(period, start.isoformat(), dim, key)


def window_rows(kpi: Kpi, period: str, start: date | None, dim: str, key: str, today: date,
                origin: date) -> dict[str, list[RowKey]]:
    """For each window of the KPI, the rows whose measure sum it (empty when the range is)."""
    out = {}
    for window in kpi.windows:
        a, b = bounds(window, period, start, today, origin)
        out[window.name] = [RowKey(kind, first.isoformat(), dim, key) for kind, first in cover(a, b)]
    return out


def window_sums(kpi: Kpi, rows: Mapping[str, list[RowKey]], read: Mapping[RowKey, Mapping[str, int]]) -> dict[str, int]:
    """The window sums, given the merged measures of the rows window_rows named."""
    measure_of = {w.name: w.measure for w in kpi.windows}
    return {name: sum(read[r].get(measure_of[name], 0) for r in keys) for name, keys in rows.items()}
