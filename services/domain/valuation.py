"""A KPI's value for one row of the measure cube, with the target that applies to it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from zoneinfo import ZoneInfo

from salespulse.domain.aggregation import RowKey
from salespulse.domain.kpis import Kpi, KpiValue, evaluate
from salespulse.domain.periods import SNAPSHOT, progress
from salespulse.domain.targets import TargetBook


def value_row(kpi: Kpi, row: RowKey, measures: Mapping[str, int], book: TargetBook,
              now: datetime, tz: ZoneInfo) -> KpiValue:
    start = date.fromisoformat(row.start) if row.period != SNAPSHOT else None
    elapsed = progress(row.period, start, now, tz) if start is not None else 1.0
    target = book.find(kpi.id, row.dim, row.key, row.period, start)
    basis = book.find(kpi.attainment_of, row.dim, row.key, row.period, start) if kpi.attainment_of else None
    return evaluate(kpi, measures, target, elapsed, basis)


def kpi_row_for(kpi: Kpi, period: str, start: date, dim: str, key: str) -> RowKey:
    """The row a KPI reads: state KPIs read the `now` row whatever period is asked."""
    if kpi.snapshot:
        return RowKey(SNAPSHOT, "", dim, key)
    return RowKey(period, start.isoformat(), dim, key)
