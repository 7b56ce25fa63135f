"""KPI values as Prometheus gauges on the API's /metrics, with bounded label cardinality.

Exported: the KPIs of METRICS_KPIS, by the dimensions of METRICS_DIMENSIONS that each KPI is
kept by, for the current bucket of each period of METRICS_PERIODS (state KPIs: `now`). Per
KPI, dimension and period at most METRICS_MAX_SERIES values are exported: the best half and
the worst half (leaderboards want the first, alerts the second); those in the middle are left
out and `salespulse_kpi_series_omitted` counts them, so a dashboard can say the list is cut. So
the series count is at most kpis x dimensions x periods x cap, whatever the number of reps.
Readings are cached METRICS_CACHE_SECONDS so several scrapers cost one reading.
"""

from __future__ import annotations

import logging
import time

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from salespulse.api.reading import Readings, best_first
from salespulse.domain.kpis import CATALOG
from salespulse.settings import Settings

log = logging.getLogger(__name__)
LABELS = ["kpi", "by", "key", "period", "unit"]


def ends(ranked: list, cap: int) -> tuple[list, int]:
    """The first ceil(cap/2) and the last floor(cap/2) of a ranked list, and how many are left out."""
    if len(ranked) <= cap:
        return ranked, 0
    best = (cap + 1) // 2
    return ranked[:best] + ranked[len(ranked) - (cap - best):], len(ranked) - cap


class KpiCollector(Collector):
    def __init__(self, settings: Settings, readings: Readings) -> None:
        self.settings = settings
        self.readings = readings
        self.snapshot: list[tuple[list[str], dict]] = []  # (labels, value doc)
        self.omitted: list[tuple[list[str], int]] = []
        self.read_at = 0.0

    async def refresh(self) -> None:
        """Read the exported KPIs again unless the last reading is recent enough."""
        if time.monotonic() - self.read_at < self.settings.metrics_cache_seconds:
            return
        snapshot, omitted = [], []
        for kpi_id in self.settings.metrics_kpis:
            kpi = CATALOG[kpi_id]
            periods = ["day"] if kpi.snapshot else self.settings.metrics_periods
            for by in (d for d in self.settings.metrics_dimensions if d in kpi.dimensions):
                for period in periods:
                    try:
                        reading = await self.readings.reading(kpi_id, by, period, None)
                    except Exception as exc:  # noqa: BLE001 - export what can be read
                        log.warning("could not read %s by %s per %s for /metrics: %s", kpi_id, by, period, exc)
                        continue
                    label_period = reading["period"]
                    kept, left_out = ends(best_first(kpi, reading["values"]), self.settings.metrics_max_series)
                    for value in kept:
                        snapshot.append(([kpi_id, by, value["key"], label_period, kpi.unit], value))
                    if left_out:
                        omitted.append(([kpi_id, by, label_period], left_out))
        self.snapshot, self.omitted, self.read_at = snapshot, omitted, time.monotonic()

    def collect(self):
        families = {
            name: GaugeMetricFamily(f"salespulse_kpi_{name}", help_text, labels=LABELS)
            for name, help_text in (
                ("value", "KPI value in the current bucket of the period (unit in the unit label; ratios as 0..1)."),
                ("target", "The target that applies to the KPI value."),
                ("attainment", "KPI value / target."),
                ("pace", "Where the KPI value should be by now, given the target and the elapsed period."),
            )
        }
        for labels, value in self.snapshot:
            for name, family in families.items():
                if value.get(name) is not None:
                    family.add_metric(labels, float(value[name]))
        yield from families.values()
        omitted = GaugeMetricFamily("salespulse_kpi_series_omitted",
                                    "KPI values not exported beyond METRICS_MAX_SERIES.", labels=["kpi", "by", "period"])
        for labels, n in self.omitted:
            omitted.add_metric(labels, n)
        yield omitted
