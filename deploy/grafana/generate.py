"""Writes the Grafana dashboards of deploy/grafana/dashboards/ from the short descriptions below.

    python deploy/grafana/generate.py

A unit test fails when the JSON files differ from what this writes, and checks every query
against the metrics SalesPulse exports.
"""

from __future__ import annotations

import json
from pathlib import Path

DATASOURCE = {"type": "prometheus", "uid": "salespulse-prometheus"}
HERE = Path(__file__).parent


def kpi(name: str, by: str = "all", period: str = "day", series: str = "value") -> str:
    return f'salespulse_kpi_{series}{{kpi="{name}", by="{by}", period="{period}"}}'


def panel(title: str, kind: str, exprs: list[tuple[str, str]], unit: str = "short", width: int = 6,
          height: int = 6, **options) -> dict:
    return {"title": title, "type": kind, "datasource": DATASOURCE, "unit": unit, "width": width, "height": height,
            "targets": [{"expr": expr, "legendFormat": legend} for expr, legend in exprs], **options}


DASHBOARDS = {
    "sales-overview": ("Sales overview", [
        panel("Revenue this month", "stat", [(kpi("revenue", period="month"), "revenue")], "currencyEUR"),
        panel("Attainment this month", "gauge", [(kpi("revenue", period="month", series="attainment"), "attainment")],
              "percentunit"),
        panel("Revenue vs pace", "timeseries", [(kpi("revenue", period="month"), "revenue"),
                                                 (kpi("revenue", period="month", series="pace"), "pace"),
                                                 (kpi("revenue", period="month", series="target"), "target")],
              "currencyEUR", width=12),
        panel("Gross margin this month", "stat", [(kpi("gross_margin", period="month"), "margin")], "currencyEUR"),
        panel("Orders today", "stat", [(kpi("orders"), "orders")]),
        panel("New customers this month", "stat", [(kpi("new_customers", period="month"), "new")]),
        panel("Overdue receivables", "stat", [(kpi("overdue_receivables", period="now"), "overdue")], "currencyEUR"),
        panel("Revenue by team this month", "bargauge", [(kpi("revenue", "team", "month"), "{{key}}")],
              "currencyEUR", width=12),
        panel("Revenue by region this month", "piechart", [(kpi("revenue", "region", "month"), "{{key}}")],
              "currencyEUR", width=12),
    ]),
    "rep-leaderboard": ("Rep leaderboard", [
        panel("Revenue this month, best reps", "bargauge", [(kpi("revenue", "rep", "month"), "{{key}}")],
              "currencyEUR", width=12, height=12),
        panel("Calls placed today, by rep", "bargauge", [(kpi("calls_outbound", "rep"), "{{key}}")],
              width=12, height=12),
        panel("Deals won this month, by rep", "bargauge", [(kpi("deals_won", "rep", "month"), "{{key}}")],
              width=12, height=10),
        panel("Attainment this month, by rep", "bargauge",
              [(kpi("revenue", "rep", "month", series="attainment"), "{{key}}")], "percentunit", width=12, height=10),
        panel("Reps left out of the lists", "stat",
              [('salespulse_kpi_series_omitted{by="rep"}', "{{kpi}} {{period}}")], width=24, height=4),
    ]),
    "pipeline": ("Pipeline", [
        panel("Pipeline value", "stat", [(kpi("pipeline_value", period="now"), "open deals")], "currencyEUR"),
        panel("Win rate this month", "gauge", [(kpi("win_rate", period="month"), "win rate")], "percentunit"),
        panel("Deals won this month", "stat", [(kpi("deals_won", period="month"), "won")]),
        panel("Pipeline by team", "bargauge", [(kpi("pipeline_value", "team", "now"), "{{key}}")], "currencyEUR"),
        panel("Win rate by team this month", "timeseries", [(kpi("win_rate", "team", "month"), "{{key}}")],
              "percentunit", width=24),
    ]),
    "telephony": ("Telephony", [
        panel("Calls placed today", "stat", [(kpi("calls_outbound"), "placed")]),
        panel("Calls answered today", "stat", [(kpi("calls_inbound"), "answered")]),
        panel("Calls missed today", "stat", [(kpi("calls_missed"), "missed")]),
        panel("Answer rate today", "gauge", [(kpi("answer_rate"), "answer rate")], "percentunit"),
        panel("Missed calls by team today", "timeseries", [(kpi("calls_missed", "team"), "{{key}}")], width=12),
        panel("Answer rate by team today", "timeseries", [(kpi("answer_rate", "team"), "{{key}}")], "percentunit",
              width=12),
    ]),
    "pipeline-health": ("Pipeline health", [
        panel("Events processed /s", "timeseries",
              [("sum by (outcome) (rate(salespulse_processor_events_total[1m]))", "{{outcome}}")], width=12),
        panel("Lag (events)", "timeseries", [("sum by (topic) (salespulse_processor_lag_events)", "{{topic}}")],
              width=12),
        panel("Event to KPI latency", "timeseries", [
            (f"histogram_quantile({q}, sum by (le) (rate(salespulse_processor_event_latency_seconds_bucket[5m])))",
             f"p{int(q * 100)}") for q in (0.5, 0.95, 0.99)], "s", width=12),
        panel("Dead-lettered /min", "timeseries", [
            ('sum by (topic) (rate(salespulse_processor_events_total{outcome="deadlettered"}[5m])) * 60', "{{topic}}"),
            ("sum by (topic) (rate(salespulse_processor_failed_events_total[5m])) * 60",
             "{{topic}}: the processor failed on (a bug)")],
              width=12),
        panel("Batch time by phase (share of a worker)", "timeseries", [
            ("sum by (phase) (rate(salespulse_processor_batch_phase_seconds_sum[5m]))", "{{phase}}")],
              "percentunit", width=12),
        panel("Measure rows written per event", "timeseries", [
            ("sum(rate(salespulse_processor_batch_rows_sum[5m])) / sum(rate(salespulse_processor_batch_events_sum[5m]))",
             "rows/event")], width=12),
        panel("Batches dropped unwritten by a stalled worker, per hour", "timeseries", [
            ("sum by (instance) (increase(salespulse_processor_fenced_batches_total[1h]))", "{{instance}}")],
              width=12),
        panel("Ingest /s", "timeseries", [("sum by (outcome) (rate(salespulse_ingest_events_total[1m]))",
                                           "{{outcome}}")], width=8),
        panel("Active alerts", "stat", [("sum by (level) (salespulse_alerts_active)", "{{level}}")], width=8),
        panel("Notifications waiting", "stat", [("salespulse_notification_backlog", "{{receiver}}")], width=8),
        panel("Services up", "stat", [('up{job=~"salespulse-.*"}', "{{job}}")], width=24, height=4),
    ]),
}


def dashboard(uid: str, title: str, panels: list[dict]) -> dict:
    laid_out, x, y, row_height = [], 0, 0, 0
    for i, p in enumerate(panels, start=1):
        if x + p["width"] > 24:
            x, y, row_height = 0, y + row_height, 0
        laid_out.append({
            "id": i, "title": p["title"], "type": p["type"], "datasource": p["datasource"],
            "gridPos": {"x": x, "y": y, "w": p["width"], "h": p["height"]},
            "fieldConfig": {"defaults": {"unit": p["unit"]}, "overrides": []},
            "options": {"reduceOptions": {"calcs": ["lastNotNull"]}} if p["type"] != "timeseries" else {},
            "targets": [{"refId": chr(ord("A") + n), "datasource": p["datasource"], **t}
                        for n, t in enumerate(p["targets"])],
        })
        x, row_height = x + p["width"], max(row_height, p["height"])
    return {"uid": f"salespulse-{uid}", "title": f"SalesPulse: {title}", "tags": ["salespulse"],
            "timezone": "browser", "schemaVersion": 39, "version": 1, "editable": False, "refresh": "30s",
            "time": {"from": "now-24h", "to": "now"}, "panels": laid_out}


def render() -> dict[str, str]:
    return {f"{uid}.json": json.dumps(dashboard(uid, title, panels), indent=2) + "\n"
            for uid, (title, panels) in DASHBOARDS.items()}


if __name__ == "__main__":
    for name, text in render().items():
        (HERE / "dashboards" / name).write_text(text)
        print("wrote", HERE / "dashboards" / name)
