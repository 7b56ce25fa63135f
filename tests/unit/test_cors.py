"""Web pages of other origins calling the API from a browser (CORS_ORIGINS): without servers, as
preflights and /healthz need neither Kafka nor Redis."""

from __future__ import annotations

import httpx
import pytest
from pydantic import ValidationError

from salespulse.api.app import create_app
from salespulse.settings import Settings

INTRANET = "https://intranet.example.com"
PREFLIGHT = {"Origin": INTRANET, "Access-Control-Request-Method": "PUT",
             "Access-Control-Request-Headers": "authorization, content-type"}


def client(**settings) -> httpx.AsyncClient:
    app = create_app(Settings(salespulse_env="development", **settings))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")


async def test_an_allowed_origin_gets_its_preflight_answered_without_a_key_and_may_send_one():
    async with client(cors_origins=f"{INTRANET}, https://crm.example.com",
                      api_keys='{"ops": {"key": "k3y-for-the-intranet-page", "scopes": ["read", "write"]}}') as api:
        preflight = await api.options("/api/v1/targets/revenue/rep/r1/month", headers=PREFLIGHT)
        assert preflight.status_code == 200  # answered before the key check: a preflight carries none
        assert preflight.headers["access-control-allow-origin"] == INTRANET
        assert "PUT" in preflight.headers["access-control-allow-methods"]
        assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
        simple = await api.get("/healthz", headers={"Origin": INTRANET})
        assert simple.headers["access-control-allow-origin"] == INTRANET
        refused = await api.options("/api/v1/kpis", headers={**PREFLIGHT, "Origin": "https://evil.example.com"})
        assert refused.status_code == 400 and "access-control-allow-origin" not in refused.headers


async def test_without_cors_origins_no_page_of_another_origin_is_let_in():
    async with client() as api:
        simple = await api.get("/healthz", headers={"Origin": INTRANET})
        assert simple.status_code == 200 and "access-control-allow-origin" not in simple.headers


@pytest.mark.parametrize("origins", ["intranet.example.com", "https://intranet.example.com/", "https://x.com/path"])
def test_an_origin_that_is_no_origin_is_refused_at_start(origins):
    with pytest.raises(ValidationError, match="is not an origin"):
        Settings(salespulse_env="development", cors_origins=origins)
