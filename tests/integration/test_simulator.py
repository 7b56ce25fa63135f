"""The simulator `make run` starts: it seeds the directory and its events become KPIs by team."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.integration.conftest import eventually, processor_env

pytestmark = pytest.mark.usefixtures("processor")


async def test_the_simulator_seeds_the_directory_and_feeds_the_kpis(api, settings):
    run = subprocess.run([sys.executable, "-m", "salespulse.simulator", "--rate", "200", "--duration", "4",
                          "--seed", "7"], env=processor_env(settings), capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "records to directory.reps" in run.stderr

    async def teams_have_calls():
        reps = (await api.get("/api/v1/directory/reps")).json()
        teams = {r["assignments"][0]["team"] for r in reps if r["rep_id"].startswith("rep-")}
        assert {"paris-hunters", "lyon"} <= teams
        body = (await api.get("/api/v1/kpis/calls_outbound", params={"by": "team", "period": "day"})).json()
        assert {v["key"] for v in body["values"] if v["value"]} & teams
    await eventually(teams_have_calls, timeout=60)
