"""The HTTP contract: catalog, errors, targets validation, OpenAPI, health and metrics."""

from __future__ import annotations

import pytest

ISSUE_KPIS = {
    "calls_outbound", "calls_inbound", "calls_missed", "answer_rate", "talk_time", "pipeline_value",
    "weighted_pipeline", "open_deals", "deals_won", "deals_lost", "win_rate", "average_won_deal_size",
    "revenue", "orders", "average_order_value", "gross_margin", "margin_rate", "revenue_attainment",
}


async def test_the_catalog_describes_every_kpi(api):
    catalog = {k["id"]: k for k in (await api.get("/api/v1/kpis")).json()}
    assert ISSUE_KPIS <= set(catalog)
    assert catalog["revenue"]["unit"] == "currency" and catalog["revenue"]["currency"] == "EUR"
    assert catalog["calls_missed"]["direction"] == "down"
    assert catalog["pipeline_value"]["periods"] == ["now"]
    known = {"all", "rep", "team", "region", "sector", "product", "category", "customer", "source", "channel", "reason"}
    assert all(k["description"] and k["dimensions"] and set(k["dimensions"]) <= known for k in catalog.values())
    assert catalog["top_customers"]["dimensions"] == ["customer"] and catalog["top_customers"]["top"] == 10
    assert catalog["revenue"]["live"] and not catalog["active_customers"]["live"]
    assert "product" in catalog["revenue"]["dimensions"] and "source" in catalog["win_rate"]["dimensions"]
    assert "product" not in catalog["talk_time"]["dimensions"]


async def test_an_empty_company_total_is_zero_not_missing(api):
    body = (await api.get("/api/v1/kpis/orders", params={"period": "year", "at": "1999-05-05"})).json()
    assert body["period_start"] == "1999-01-01" and body["as_of"] is None
    assert body["values"] == [{"key": "all", "value": 0.0, "target": None, "attainment": None, "pace": None, "level": None,
                               "as_of": None}]  # nothing written yet


@pytest.mark.parametrize("url, status, code", [
    ("/api/v1/kpis/nope", 404, "unknown_kpi"),
    ("/api/v1/kpis/revenue?by=galaxy", 422, "unsupported_dimension"),
    ("/api/v1/kpis/revenue?period=decade", 422, "invalid_request"),
    ("/api/v1/kpis/revenue?at=2026-02-30", 422, "invalid_request"),
    ("/api/v1/kpis/revenue?period=week&at=9999-12-31", 422, "invalid_request"),  # were 500s: the week's
    ("/api/v1/kpis/revenue?period=quarter&at=0001-01-01", 422, "invalid_request"),  # end past date.max
    ("/api/v1/leaderboards/churn_rate?period=year&at=3000-01-01", 422, "invalid_request"),
    # numbers, which lax dates take as seconds since 1970 (the first was 200 with 1970's figures)
    ("/api/v1/leaderboards/nps?at=-1.401298464324817e-45", 422, "invalid_request"),
    ("/api/v1/kpis/revenue?at=1700006400", 422, "invalid_request"),
    ("/api/v1/kpis/revenue?at=20261207", 422, "invalid_request"),
    ("/api/v1/kpis/revenue?at=2026-12-07T00:00:00", 422, "invalid_request"),
    ("/api/v1/leaderboards/revenue?limit=0", 422, "invalid_request"),
    ("/api/v1/nothing-here", 404, "not_found"),
])
async def test_errors_are_json_with_a_code_and_a_message(api, url, status, code):
    response = await api.get(url)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == code and error["message"]


async def test_every_path_that_takes_get_answers_head_as_get_without_the_body(api):
    """Uptime and link checkers probe with HEAD; FastAPI's routes answered it 405."""
    for url in ("/healthz", "/readyz", "/api/v1/healthz", "/api/v1/readyz", "/", "/api/v1/kpis",
                "/api/v1/kpis/revenue?by=rep&period=month", "/api/v1/targets", "/openapi.json", "/docs"):
        head, get = await api.head(url), await api.get(url)
        assert head.status_code == get.status_code == 200, url
        assert head.headers["content-type"] == get.headers["content-type"], url
        assert head.content == b"" and int(head.headers["content-length"]) == len(get.content), url
    missing = await api.head("/api/v1/kpis/no_such_kpi")
    assert missing.status_code == 404 and missing.content == b""
    endless = await api.head("/api/v1/stream")  # a GET of it never ends: no HEAD
    assert endless.status_code == 405 and endless.headers["allow"] == "GET"
    put_only = await api.head("/api/v1/targets/revenue/all/all/month")
    assert put_only.status_code == 405 and put_only.headers["allow"] == "DELETE, PUT"


@pytest.mark.parametrize("method, url, allowed", [
    ("DELETE", "/api/v1/kpis", "GET, HEAD"),
    ("POST", "/api/v1/targets/revenue/all/all/month", "DELETE, PUT"),
    ("PATCH", "/api/v1/rules/r1", "DELETE, GET, HEAD, PUT"),
    ("PUT", "/api/v1/events", "POST"),
])
async def test_a_method_a_path_does_not_take_is_405_naming_those_it_takes(api, method, url, allowed):
    response = await api.request(method, url)
    assert response.status_code == 405
    assert response.headers["allow"] == allowed
    assert response.json()["error"]["code"] == "method_not_allowed"


@pytest.mark.parametrize("path, body, code", [
    ("/api/v1/targets/revenue/rep/rep-1/decade", {"target": 1}, "invalid_period"),
    ("/api/v1/targets/revenue/rep/rep-1/2026-13", {"target": 1}, "invalid_period"),
    ("/api/v1/targets/revenue/rep/rep-1/9999-W52", {"target": 1}, "invalid_period"),
    ("/api/v1/targets/pipeline_value/rep/rep-1/month", {"target": 1}, "invalid_period"),
    ("/api/v1/targets/revenue/all/rep-1/month", {"target": 1}, "invalid_key"),
    ("/api/v1/targets/revenue/rep/rep-1/month", {"target": -5}, "invalid_request"),
    ("/api/v1/targets/revenue/rep/rep-1/month", {"target": "lots"}, "invalid_request"),
    ("/api/v1/targets/revenue/rep/rep-1/month", {"target": True}, "invalid_request"),  # was a target of 1
    ("/api/v1/targets/revenue/rep/rep-1/month", {"target": "5000"}, "invalid_request"),  # was 5000
    ("/api/v1/targets/nope/rep/rep-1/month", {"target": 1}, "unknown_kpi"),
])
async def test_bad_targets_are_refused(api, path, body, code):
    response = await api.put(path, json=body)
    assert response.status_code in (404, 422)
    assert response.json()["error"]["code"] == code


async def test_a_target_can_be_set_listed_and_deleted(api):
    path = "/api/v1/targets/win_rate/rep/*/2031-Q2"
    response = await api.put(path, json={"target": 0.3, "alert_at": 0.5})
    assert response.status_code == 200
    listed = [t for t in (await api.get("/api/v1/targets")).json() if t["period"] == "2031-Q2"]
    assert [(t["kpi"], t["key"], t["target"], t["alert_at"]) for t in listed] == [("win_rate", "*", 0.3, 0.5)]
    assert (await api.delete(path)).status_code == 204
    assert (await api.delete(path)).status_code == 404


async def test_the_openapi_document_covers_every_route(api):
    spec = (await api.get("/openapi.json")).json()
    assert {"/api/v1/kpis", "/api/v1/kpis/{kpi}", "/api/v1/leaderboards/{kpi}", "/api/v1/targets",
            "/api/v1/targets/{kpi}/{by}/{key}/{period}", "/api/v1/events", "/healthz", "/readyz"} <= set(spec["paths"])
    assert "422" in spec["paths"]["/api/v1/events"]["post"]["responses"]


async def test_health_readiness_and_metrics(api):
    assert (await api.get("/healthz")).json() == {"status": "ok", "checks": {}}
    ready = (await api.get("/api/v1/readyz")).json()
    assert ready == {"status": "ok", "checks": {"kafka": "ok", "redis": "ok", "targets": "ok"}}
    response = await api.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    metrics = response.text
    assert "salespulse_ingest_events_total" in metrics and "salespulse_http_request_seconds" in metrics
