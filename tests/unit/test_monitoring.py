"""Prometheus rules and configuration (promtool), Alertmanager's (amtool), Grafana's dashboards:
valid, up to date, and querying only metrics and KPI labels SalesPulse exports."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
import shutil
import subprocess

import pytest
import yaml
from prometheus_client import REGISTRY

import salespulse.alerting.metrics  # noqa: F401 - registers the alerting service's metrics
import salespulse.api.metrics  # noqa: F401
import salespulse.processor.metrics  # noqa: F401
from salespulse.api.kpimetrics import KpiCollector
from salespulse.domain.kpis import CATALOG
from salespulse.settings import REPO_ROOT, Settings

DEPLOY = REPO_ROOT / "deploy"
GRAFANA = DEPLOY / "grafana"


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(f"{name} is missing (make deps installs it)")
        pytest.skip(f"{name} is not installed (make deps installs it)")
    return path


def test_prometheus_rules_pass_their_unit_tests():
    result = subprocess.run([tool("promtool"), "test", "rules", "tests/rules_test.yml"], cwd=DEPLOY / "prometheus",
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_and_alertmanager_configurations_are_valid():
    result = subprocess.run([tool("promtool"), "check", "config", "prometheus.yml"], cwd=DEPLOY / "prometheus",
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    result = subprocess.run([tool("amtool"), "check-config", str(DEPLOY / "alertmanager" / "alertmanager.yml")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def exported_metric_names() -> set[str]:
    names = {"up"}
    for family in REGISTRY.collect():  # every metric the services define
        names |= {s.name for s in family.samples} | {family.name}
    settings = Settings()
    names |= {f.name for f in KpiCollector(settings, None).collect()}
    return names


def dashboards() -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted((GRAFANA / "dashboards").glob("*.json"))}


def test_the_dashboards_are_what_the_generator_writes():
    spec = importlib.util.spec_from_file_location("generate", GRAFANA / "generate.py")
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    rendered = generate.render()
    assert set(rendered) == {"sales-overview.json", "rep-leaderboard.json", "pipeline.json", "telephony.json",
                             "pipeline-health.json"}
    for name, text in rendered.items():
        assert (GRAFANA / "dashboards" / name).read_text() == text, f"run python deploy/grafana/generate.py ({name})"


def test_every_dashboard_query_uses_exported_metrics_and_labels():
    names = exported_metric_names()
    settings = Settings()
    datasource = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())["datasources"][0]
    uids = set()
    for name, board in dashboards().items():
        assert board["uid"] not in uids
        uids.add(board["uid"])
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), name
        for panel in board["panels"]:
            assert panel["datasource"]["uid"] == datasource["uid"]
            assert 0 <= panel["gridPos"]["x"] and panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
            for target in panel["targets"]:
                expr = target["expr"]
                metrics = set(re.findall(r"\b(salespulse_[a-z_]+|up)\b", expr))
                assert metrics and metrics <= names, f"{name} / {panel['title']}: {metrics - names}"
                for kpi_id, by, period in re.findall(r'kpi="([a-z_]+)", by="([a-z]+)", period="([a-z]+)"', expr):
                    kpi = CATALOG[kpi_id]
                    assert kpi_id in settings.metrics_kpis, f"{kpi_id} is not exported by default (METRICS_KPIS)"
                    assert by in settings.metrics_dimensions and by in kpi.dimensions, (kpi_id, by)
                    assert period == ("now" if kpi.snapshot else period) and (
                        kpi.snapshot or period in settings.metrics_periods), f"{name}: {kpi_id} period {period}"


def test_grafana_provisioning_points_at_the_dashboards():
    provider = yaml.safe_load((GRAFANA / "provisioning/dashboards/salespulse.yml").read_text())["providers"][0]
    assert provider["type"] == "file" and provider["options"]["path"] == "/var/lib/grafana/dashboards"


class FakeReadings:
    """Readings of 50 reps, rep-00 best (most revenue); `failing`: dimensions whose read fails."""

    def __init__(self, failing: tuple[str, ...] = ()) -> None:
        self.failing = failing

    async def reading(self, kpi, by, period, at):
        if by in self.failing:
            raise ConnectionError("Redis away")
        return {"period": period, "values": [{"key": "all", "value": 1275.0, "target": None, "attainment": None,
                                              "pace": None}] if by == "all" else [
            {"key": f"rep-{i:02d}", "value": float(50 - i), "target": 100.0, "attainment": (50 - i) / 100,
             "pace": 40.0} for i in range(50)]}


async def test_kpi_gauges_keep_the_best_and_the_worst_values_up_to_the_cap():
    settings = Settings(metrics_kpis=["revenue"], metrics_dimensions=["all", "rep"], metrics_periods=["month"],
                        metrics_max_series=5, metrics_cache_seconds=0)
    collector = KpiCollector(settings, FakeReadings())
    await collector.refresh()
    families = {f.name: f for f in collector.collect()}
    values = {s.labels["key"]: s.value for s in families["salespulse_kpi_value"].samples}
    assert values == {"all": 1275.0, "rep-00": 50, "rep-01": 49, "rep-02": 48, "rep-48": 2, "rep-49": 1}
    assert [(s.labels, s.value) for s in families["salespulse_kpi_series_omitted"].samples] == [
        ({"kpi": "revenue", "by": "rep", "period": "month"}, 45)]
    assert {s.labels["key"] for s in families["salespulse_kpi_pace"].samples} == set(values) - {"all"}


async def test_a_reading_that_fails_is_logged_by_name_and_the_rest_still_exported(caplog):
    settings = Settings(metrics_kpis=["revenue"], metrics_dimensions=["all", "rep"], metrics_periods=["month"],
                        metrics_cache_seconds=0)
    collector = KpiCollector(settings, FakeReadings(failing=("rep",)))
    with caplog.at_level(logging.WARNING, logger="salespulse.api.kpimetrics"):
        await collector.refresh()
    families = {f.name: f for f in collector.collect()}
    assert {s.labels["key"] for s in families["salespulse_kpi_value"].samples} == {"all"}
    assert [r.getMessage() for r in caplog.records] == [
        "could not read revenue by rep per month for /metrics: Redis away"]
