"""A real Prometheus (Debian package) scrapes the running API and processor: the KPI gauges and
pipeline health arrive, and the project's alert rules load."""

from __future__ import annotations

import shutil
import subprocess
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from salespulse.devstack.servers import free_port
from salespulse.settings import REPO_ROOT
from tests.integration.conftest import cloudevent, eventually, start_api, unavailable, unique, wait_until_up

pytestmark = pytest.mark.usefixtures("processor")


@pytest.fixture(scope="module")
def api_server(settings, tmp_path_factory):
    """The API as its own process on a real port, exporting every rep's values."""
    proc, url = start_api(settings, tmp_path_factory.mktemp("api") / "api.log", METRICS_DIMENSIONS="all,team,rep",
                          METRICS_MAX_SERIES="10000", METRICS_CACHE_SECONDS="0")
    yield url.removeprefix("http://")
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="module")
def prometheus(settings, api_server, tmp_path_factory):
    binary = shutil.which("prometheus")
    if binary is None:
        unavailable("Prometheus is not installed (make deps installs the Debian package)")
    workdir = tmp_path_factory.mktemp("prometheus")
    config = workdir / "prometheus.yml"
    config.write_text(f"""
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
rule_files: ["{REPO_ROOT / 'deploy/prometheus/rules.yml'}"]
scrape_configs:
  - job_name: salespulse-api
    static_configs: [{{targets: ["{api_server}"]}}]
  - job_name: salespulse-processor
    static_configs: [{{targets: ["127.0.0.1:{settings.processor_metrics_port}"]}}]
""")
    port = free_port()
    log = workdir / "log"
    proc = subprocess.Popen([binary, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}"], stdout=subprocess.DEVNULL,
                            stderr=log.open("wb"))
    url = f"http://127.0.0.1:{port}"
    wait_until_up(f"{url}/-/ready", proc, "Prometheus", log)
    yield url
    proc.terminate()
    proc.wait(10)


def query(prometheus: str, promql: str) -> list[dict]:
    body = httpx.get(f"{prometheus}/api/v1/query", params={"query": promql}).json()
    assert body["status"] == "success", body
    return body["data"]["result"]


async def test_prometheus_scrapes_kpis_and_pipeline_health(api, prometheus):
    rep = unique("rep")
    now = datetime.now(timezone.utc)
    events = [cloudevent("call.ended", {"call_id": unique("call"), "rep_id": rep, "direction": "inbound",
                                        "status": "missed", "started_at": (now - timedelta(seconds=i)).isoformat(),
                                        "ended_at": (now + timedelta(seconds=20 - i)).isoformat()})
              for i in range(3)]
    assert (await api.post("/api/v1/events", json=events)).status_code == 202

    async def scraped():
        missed = query(prometheus, f'salespulse_kpi_value{{kpi="calls_missed", by="rep", key="{rep}"}}')
        assert sorted((r["metric"]["period"], r["value"][1]) for r in missed) == [("day", "3"), ("month", "3")]
        assert query(prometheus, 'up{job="salespulse-processor"} == 1')
        assert query(prometheus, 'up{job="salespulse-api"} == 1')
        assert query(prometheus, "salespulse_processor_event_latency_seconds_count > 0")
        assert query(prometheus, "salespulse_processor_lag_events")
    await eventually(scraped, timeout=60, interval=1)

    groups = httpx.get(f"{prometheus}/api/v1/rules").json()["data"]["groups"]
    assert {g["name"] for g in groups} == {"salespulse-kpis", "salespulse-pipeline"}
    assert all(rule["health"] != "err" for g in groups for rule in g["rules"])
