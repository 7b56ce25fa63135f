"""KPI readings and leaderboards: read-model rows valued by the domain's KPI math."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Iterable
from datetime import date, datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

from redis.exceptions import RedisError

from salespulse.api.errors import RETRY_SECONDS, ApiError
from salespulse.domain.kpis import CATALOG, Kpi, KpiValue
from salespulse.domain.periods import PERIODS, SNAPSHOT, period_start
from salespulse.domain.valuation import kpi_row_for, value_row, window_rows, window_sums
from salespulse.readmodel import MergedRow, ReadModel


def find_kpi(kpi_id: str) -> Kpi:
    kpi = CATALOG.get(kpi_id)
    if kpi is None:
        raise ApiError(404, "unknown_kpi", f"no KPI {kpi_id!r}; GET /api/v1/kpis lists them")
    return kpi


def check_dimension(kpi: Kpi, by: str) -> None:
    if by not in kpi.dimensions:
        raise ApiError(422, "unsupported_dimension",
                       f"{kpi.id} is kept by {', '.join(kpi.dimensions)}, not by {by!r}")


def _num(x) -> float | None:
    return None if x is None else float(x)


def _value_out(key: str, v: KpiValue, as_of: float | None) -> dict[str, Any]:
    return {"key": key, "value": _num(v.value), "target": _num(v.target), "attainment": _num(v.attainment),
            "pace": _num(v.pace), "level": v.level,
            "as_of": None if not as_of else datetime.fromtimestamp(as_of, timezone.utc)}


class LastGood:
    """The last answer to each question, served marked `stale` while Redis does not answer:
    a wallboard keeps its figures through a Redis restart instead of going blank."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self.answers: OrderedDict[Hashable, dict[str, Any]] = OrderedDict()

    async def serve(self, question: Hashable, read: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
        try:
            answer = await read()
        except (RedisError, OSError):
            kept = self.answers.get(question)
            if kept is None:
                raise ApiError(503, "read_model_unavailable", "Redis does not answer and this reading was not "
                               "served before; retry shortly", headers={"Retry-After": str(RETRY_SECONDS)}) from None
            return {**kept, "stale": True}
        self.answers[question] = answer
        self.answers.move_to_end(question)
        if len(self.answers) > self.size:
            self.answers.popitem(last=False)
        return {**answer, "stale": False}


class Readings:
    def __init__(self, readmodel: ReadModel, tz: ZoneInfo) -> None:
        self.readmodel = readmodel
        self.tz = tz
        self.last_good = LastGood()

    def today(self) -> date:
        return datetime.now(self.tz).date()

    async def reading(self, kpi_id: str, by: str, period: str, at: date | None,
                      keys: Iterable[str] = ()) -> dict[str, Any]:
        """The KPI's values for every value of `by` with a row in the bucket, and for `keys`
        whether they have one or not (nothing happened yet: counts are 0, ratios undefined)."""
        kpi = find_kpi(kpi_id)
        check_dimension(kpi, by)
        if period not in PERIODS:
            raise ApiError(422, "invalid_period", f"period must be one of {', '.join(PERIODS)}")
        start = period_start(period, at or self.today())
        row = kpi_row_for(kpi, period, start, by, "all")
        if kpi.windows:
            rows = await self.windowed(kpi, period, start, by)
        else:
            rows = await self.readmodel.read_dimension(row.period, row.start, by)
        if by == "all":
            rows.setdefault("all", {})
        elif not kpi.windows:  # a windowed KPI lists every key with a row in any year already
            for key in keys:
                rows.setdefault(key, {})
        total = None
        if kpi.share:
            company = row._replace(dim="all")
            total = (await self.readmodel.read_rows([company]))[company]
        book = await self.readmodel.target_book()
        now = datetime.now(timezone.utc)
        values = [
            _value_out(key, value_row(kpi, row._replace(key=key), measures, book, now, self.tz, total),
                       getattr(measures, "as_of", None))
            for key, measures in sorted(rows.items())
        ]
        if kpi.top is not None:  # the best of those with a value above zero
            values = [v for v in best_first(kpi, values) if v["value"] > 0][:kpi.top]
        stamps = [m.as_of for m in rows.values() if getattr(m, "as_of", None)]
        return {
            "kpi": kpi.id, "by": by,
            "period": SNAPSHOT if kpi.snapshot else period,
            "period_start": None if kpi.snapshot else start,
            "unit": kpi.unit,
            "as_of": datetime.fromtimestamp(max(stamps), timezone.utc) if stamps else None,
            "values": values,
        }

    async def windowed(self, kpi: Kpi, period: str, start: date, by: str) -> dict[str, MergedRow]:
        """Each value of `by`: its row of the bucket plus the KPI's window sums.

        The values are those with a row in any year: a sector may have customers active at the
        start of a month without any event in it.
        """
        today = self.today()
        years = await self.readmodel.years()
        origin = date.fromisoformat(years[0]) if years else today
        keys = ["all"] if by == "all" else await self.readmodel.dimension_keys(
            [("year", y) for y in years], by)
        base = {key: kpi_row_for(kpi, period, start, by, key) for key in keys}
        windows = {key: window_rows(kpi, period, None if kpi.snapshot else start, by, key, today, origin)
                   for key in keys}
        wanted = set(base.values()) | {r for w in windows.values() for rs in w.values() for r in rs}
        read = await self.readmodel.read_listed_rows(wanted)
        out = {}
        for key in keys:
            merged = MergedRow(read[base[key]])
            merged.as_of = read[base[key]].as_of
            merged.update(window_sums(kpi, windows[key], read))
            out[key] = merged
        return out

    async def leaderboard(self, kpi_id: str, by: str, period: str, at: date | None, limit: int) -> dict[str, Any]:
        reading = await self.reading(kpi_id, by, period, at)
        kpi = CATALOG[kpi_id]
        ranked = best_first(kpi, reading["values"])
        entries, rank = [], 0
        for i, v in enumerate(ranked[:limit]):
            if i == 0 or v["value"] != ranked[i - 1]["value"]:
                rank = i + 1  # ties share a rank: 1, 2, 2, 4
            entries.append({"rank": rank, **v})
        return {k: reading[k] for k in ("kpi", "by", "period", "period_start", "unit", "as_of")} | {"entries": entries}


def best_first(kpi: Kpi, values: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Values that exist, best first (ties by key)."""
    ranked = [v for v in values if v["value"] is not None]
    ranked.sort(key=lambda v: (-v["value"] if kpi.direction == "up" else v["value"], v["key"]))
    return ranked
