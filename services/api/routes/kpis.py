"""KPI catalog, KPI values and leaderboards."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query

from salespulse.api.dependencies import ReadingsDep, SettingsDep
from salespulse.api.models import ERRORS, KpiInfo, KpiReading, Leaderboard, Period
from salespulse.domain.kpis import CATALOG

router = APIRouter(tags=["kpis"], responses=ERRORS)

By = Annotated[str, Query(description="Dimension: `all` (company total), `rep`, `team`, `region`, `product`, ... (each KPI lists its own in GET /api/v1/kpis).", max_length=40)]
At = Annotated[date | None, Query(description="A day in the period; today in the business time zone by default.")]


@router.get("/kpis", response_model=list[KpiInfo])
async def read_kpis(settings: SettingsDep) -> list[dict]:
    return [kpi.describe(settings.reporting_currency) for kpi in CATALOG.values()]


@router.get("/kpis/{kpi}", response_model=KpiReading)
async def read_kpi(kpi: str, readings: ReadingsDep, by: By = "all", period: Period = "day", at: At = None) -> dict:
    return await readings.last_good.serve(("kpi", kpi, by, period, at or readings.today()),
                                          lambda: readings.reading(kpi, by, period, at))


@router.get("/leaderboards/{kpi}", response_model=Leaderboard)
async def read_leaderboard(
    kpi: str, readings: ReadingsDep, by: By = "rep", period: Period = "day", at: At = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 10,
) -> dict:
    return await readings.last_good.serve(("leaderboard", kpi, by, period, at or readings.today(), limit),
                                          lambda: readings.leaderboard(kpi, by, period, at, limit))
