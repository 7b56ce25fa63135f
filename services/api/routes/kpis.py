"""KPI catalog, KPI values and leaderboards."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BeforeValidator

from salespulse.api.dependencies import ReadingsDep, SettingsDep
from salespulse.api.models import DIMENSIONS, KPI_IDS, KpiInfo, KpiReading, Leaderboard, Period, errors
from salespulse.domain.kpis import CATALOG
from salespulse.domain.periods import FIRST_DAY, LAST_DAY

router = APIRouter(tags=["kpis"])
READ_ERRORS = errors(404, 422, 503, e404="No KPI of that id (`unknown_kpi`).")

KpiId = Annotated[str, Path(description="A KPI's id, as GET /api/v1/kpis lists them: `revenue`, `win_rate`, ...",
                            max_length=80, json_schema_extra=KPI_IDS)]
PeriodQuery = Annotated[Period, Query(description="The kind of period: the bucket read is the one holding `at`.")]
By = Annotated[str, Query(description="Dimension: `all` (company total), `rep`, `team`, `region`, `product`, ... "
                                      "(each KPI lists its own in GET /api/v1/kpis).",
                          max_length=40, json_schema_extra=DIMENSIONS)]
ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def iso_day(value: object) -> object:
    """A day is written YYYY-MM-DD. Pydantic's lax dates take a number as seconds since 1970:
    `at=20261207` read August 1970's figures, 200 and no word of it."""
    if isinstance(value, str) and not ISO_DAY.fullmatch(value):
        raise ValueError(f"a day as YYYY-MM-DD, not {value!r}")
    return value


At = Annotated[date | None, BeforeValidator(iso_day),
               Query(description="A day in the period (YYYY-MM-DD); today in the business time zone by default.",
                     ge=FIRST_DAY, le=LAST_DAY)]


@router.get("/kpis", response_model=list[KpiInfo], summary="List the KPIs")
async def read_kpis(settings: SettingsDep) -> list[dict]:
    """Every KPI of the catalog: its id, name, unit, which direction is good, definition, and the
    dimensions and periods it can be read by."""
    return [kpi.describe(settings.reporting_currency) for kpi in CATALOG.values()]


@router.get("/kpis/{kpi}", response_model=KpiReading, responses=READ_ERRORS, summary="Read a KPI")
async def read_kpi(kpi: KpiId, readings: ReadingsDep, by: By = "all", period: PeriodQuery = "day",
                   at: At = None) -> dict:
    """The KPI's value for each value of `by` (every rep, team, ...) in one period bucket, with
    its target, attainment, pace and alert level where a target is set.

    While Redis does not answer, the last answer to the same question comes back with
    `"stale": true`; a question never answered before is a 503."""
    return await readings.last_good.serve(("kpi", kpi, by, period, at or readings.today()),
                                          lambda: readings.reading(kpi, by, period, at))


@router.get("/leaderboards/{kpi}", response_model=Leaderboard, responses=READ_ERRORS, summary="Rank by a KPI")
async def read_leaderboard(
    kpi: KpiId, readings: ReadingsDep, by: By = "rep", period: PeriodQuery = "day", at: At = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="How many of the best to return.")] = 10,
) -> dict:
    """The values of `by` ranked by the KPI, best first (lowest first where down is good); ties
    share a rank. Stale and unavailable as GET /kpis/{kpi}."""
    return await readings.last_good.serve(("leaderboard", kpi, by, period, at or readings.today(), limit),
                                          lambda: readings.leaderboard(kpi, by, period, at, limit))
