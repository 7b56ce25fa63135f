"""Access control on the real API (Kafka and Redis behind it): keys, scopes, tokens, limits."""

from __future__ import annotations

import subprocess
import sys

import pytest

from salespulse.settings import Settings
from tests.integration.conftest import cloudevent, in_process_api, unique

READER, WRITER, INGESTER, WALL = ("r" * 20, "w" * 20 + "-1", "i" * 20 + "-2", "t" * 20 + "-3")


def secured(settings: Settings, **values) -> Settings:
    return Settings(**{**settings.model_dump(), "salespulse_env": "production", "api_keys": {
        "reader": {"key": READER, "scopes": ["read"]},
        "admin": {"key": WRITER, "scopes": ["read", "write"]},
        "crm-relay": {"key": INGESTER, "scopes": ["ingest"]}}, "wallboard_tokens": [WALL], **values})


@pytest.fixture(scope="module")
async def secure_api(settings):
    async with in_process_api(secured(settings, ingest_rate_limit=5, ingest_burst=10)) as client:
        yield client


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


async def test_no_key_or_a_wrong_one_is_401_and_probes_and_the_page_stay_open(secure_api):
    for headers in ({}, bearer("not-a-key-at-all"), {"X-API-Key": READER[:-1]}):
        response = await secure_api.get("/api/v1/kpis/revenue", headers=headers)
        assert response.status_code == 401, response.text
        assert response.json()["error"]["code"] == "unauthorized"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    for open_path in ("/healthz", "/api/v1/readyz", "/", "/openapi.json"):
        assert (await secure_api.get(open_path)).status_code == 200, open_path


async def test_scopes_decide_reads_writes_and_ingest(secure_api):
    rep = unique("rep")
    target = f"/api/v1/targets/revenue/rep/{rep}/month"
    assert (await secure_api.get("/api/v1/kpis/revenue", headers=bearer(READER))).status_code == 200
    assert (await secure_api.get("/api/v1/kpis/revenue", headers={"X-API-Key": READER})).status_code == 200
    refused = await secure_api.put(target, json={"target": 1000}, headers=bearer(READER))
    assert refused.status_code == 403 and "needs write" in refused.json()["error"]["message"]
    assert (await secure_api.put(target, json={"target": 1000}, headers=bearer(WRITER))).status_code == 200
    event = cloudevent("call.started", {"call_id": unique("c"), "rep_id": rep, "direction": "outbound",
                                        "started_at": "2026-11-20T10:00:00+01:00"})
    assert (await secure_api.post("/api/v1/events", json=event, headers=bearer(WRITER))).status_code == 403
    assert (await secure_api.post("/api/v1/events", json=event, headers=bearer(INGESTER))).status_code == 202
    assert (await secure_api.get("/api/v1/kpis/revenue", headers=bearer(INGESTER))).status_code == 403


async def test_a_wallboard_token_reads_by_query_string_and_writes_nothing(secure_api):
    ok = await secure_api.get("/api/v1/directory/reps", params={"token": WALL})
    assert ok.status_code == 200
    put = await secure_api.put("/api/v1/targets/revenue/all/all/month", json={"target": 1}, params={"token": WALL})
    assert put.status_code == 403
    # The SSE stream is checked like any read (an in-process client cannot hold it open).
    stream = await secure_api.get("/api/v1/stream", params={"watch": "revenue:all:day", "token": WALL[:-1]})
    assert stream.status_code == 401


async def test_an_api_key_in_the_url_is_refused_where_logs_would_keep_it(secure_api):
    for key in (READER, WRITER):
        response = await secure_api.get("/api/v1/kpis/revenue", params={"token": key})
        assert response.status_code == 401, key
        assert "header" in response.json()["error"]["message"]
    put = await secure_api.put(f"/api/v1/targets/revenue/rep/{unique('rep')}/month", json={"target": 1},
                               params={"token": WRITER})
    assert put.status_code == 401


async def test_ingest_over_the_rate_limit_is_429_with_retry_after(secure_api):
    def event():
        return cloudevent("call.started", {"call_id": unique("c"), "rep_id": "rep-limit", "direction": "inbound",
                                           "started_at": "2026-11-20T10:00:00+01:00"})
    statuses = []
    for _ in range(4):  # 4 x 4 events against a burst of 10 at 5 events/s
        response = await secure_api.post("/api/v1/events", json=[event() for _ in range(4)], headers=bearer(INGESTER))
        statuses.append(response.status_code)
    assert statuses[:2] == [202, 202] and 429 in statuses[2:]
    limited = await secure_api.post("/api/v1/events", json=[event() for _ in range(4)], headers=bearer(INGESTER))
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    assert "events/s" in limited.json()["error"]["message"]


def test_the_api_refuses_to_start_outside_development_without_keys_or_with_placeholders(settings):
    env = {"SALESPULSE_ENV": "production", "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
           "REDIS_URL": settings.redis_url, "PATH": "/usr/bin:/bin"}
    no_keys = subprocess.run([sys.executable, "-m", "salespulse.api"], env=env, capture_output=True, text=True,
                             timeout=60)
    assert no_keys.returncode != 0 and "API_KEYS is empty" in no_keys.stderr
    placeholder = subprocess.run([sys.executable, "-m", "salespulse.api"], capture_output=True, text=True, timeout=60,
                                 env={**env, "API_KEYS": '{"ops": {"key": "changeme", "scopes": ["read"]}}'})
    assert placeholder.returncode != 0 and "API_KEYS[ops]" in placeholder.stderr
