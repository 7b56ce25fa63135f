"""Access control without servers: scopes of routes, keys, rate limits, refused secrets."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from salespulse.api.auth import Keyring, RateLimiter, needed_scope
from salespulse.settings import Settings

STRONG = "k" * 12 + "-7f3a9c2e"


def production(**values) -> Settings:
    return Settings(salespulse_env="production", **values)


@pytest.mark.parametrize(("method", "path", "scope"), [
    ("GET", "/api/v1/kpis/revenue", "read"), ("GET", "/api/v1/stream", "read"), ("GET", "/api/v1/targets", "read"),
    ("PUT", "/api/v1/targets/revenue/rep/r1/month", "write"), ("DELETE", "/api/v1/rules/r", "write"),
    ("PUT", "/api/v1/directory/reps/r1", "write"), ("POST", "/api/v1/events", "ingest"),
    ("GET", "/api/v1/healthz", None), ("GET", "/readyz", None), ("GET", "/", None), ("GET", "/metrics", None),
    ("GET", "/openapi.json", None), ("POST", "/api/v1/webhooks/twilio", None),
])
def test_each_route_needs_the_scope_of_what_it_does(method, path, scope):
    assert needed_scope(method, path) == scope


def test_keys_find_their_principal_and_tokens_only_read():
    ring = Keyring(production(api_keys={"ops": {"key": STRONG, "scopes": ["read", "write"]}},
                              wallboard_tokens=[STRONG + "-wall"]))
    assert ring.find(STRONG).name == "ops" and ring.find(STRONG).scopes == {"read", "write"}
    assert ring.find(STRONG + "-wall").scopes == {"read"}
    assert ring.find(STRONG[:-1]) is None and ring.find("") is None and not ring.open
    assert Keyring(Settings(salespulse_env="development")).open


def test_the_rate_limiter_refills_at_its_rate_up_to_its_burst():
    now = [0.0]
    limiter = RateLimiter(rate=100, burst=200, clock=lambda: now[0])
    assert limiter.take("a", 150) == 0 and limiter.take("b", 200) == 0  # one bucket per key
    assert limiter.take("a", 100) == pytest.approx(0.5)  # 50 left: 50 more at 100/s
    now[0] = 0.5
    assert limiter.take("a", 100) == 0
    now[0] = 100.0
    assert limiter.take("a", 200) == 0 and limiter.take("a", 1) > 0  # refilled to the burst, no more
    assert limiter.take("a", 201) == float("inf")


@settings(max_examples=300)
@given(st.lists(st.tuples(st.integers(0, 40), st.integers(1, 250), st.floats(0, 3)), max_size=300))
def test_forgetting_refilled_buckets_changes_no_answer(takes):
    """Buckets full again are forgotten (a client address each when no key is set: no end to
    them); a limiter that forgets them answers every take as one that keeps every bucket."""
    now = [0.0]
    pruning = RateLimiter(rate=100, burst=200, clock=lambda: now[0], prune_above=4)
    keeping = RateLimiter(rate=100, burst=200, clock=lambda: now[0], prune_above=10**9)
    for who, count, wait in takes:
        now[0] += wait
        assert pruning.take(f"10.0.0.{who}", count) == pytest.approx(keeping.take(f"10.0.0.{who}", count))
        assert len(pruning.buckets) <= max(4, 2 * len(keeping.buckets))


def test_a_crowd_of_one_time_clients_leaves_no_buckets_behind():
    now = [0.0]
    limiter = RateLimiter(rate=100, burst=200, clock=lambda: now[0])
    for n in range(100_000):  # a new address every millisecond, each sending 10 events once
        now[0] += 0.001
        assert limiter.take(f"client-{n}", 10) == 0
    assert len(limiter.buckets) <= 1024  # before: 100,000, and growing with every address


@pytest.mark.parametrize("values", [
    {"api_keys": {"ops": {"key": "changeme", "scopes": ["read"]}}},
    {"api_keys": {"ops": {"key": "short-key", "scopes": ["read"]}}},
    {"wallboard_tokens": ["<wallboard token>"]},
    {"twilio_auth_token": "CHANGE-ME"},
    {"alert_webhook_secret": "${ALERT_SECRET}"},
    {"redis_url": "redis://:password@redis:6379/0"},
    {"kafka_security_protocol": "SASL_SSL", "kafka_sasl_username": "sp", "kafka_sasl_password": "xxxxxxxx"},
    {"kafka_security_protocol": "SASL_PLAINTEXT"},
])
def test_placeholder_or_missing_secrets_are_refused_outside_development(values):
    with pytest.raises(ValidationError) as refused:
        production(**values)
    assert "SALESPULSE_ENV=development" in str(refused.value) or "KAFKA_SASL" in str(refused.value)
    Settings(salespulse_env="development", **values)  # a laptop may keep them


def test_api_keys_come_from_json_and_tokens_from_a_comma_list(monkeypatch):
    monkeypatch.setenv("SALESPULSE_ENV", "production")
    monkeypatch.setenv("API_KEYS", '{"crm-relay": {"key": "%s", "scopes": ["ingest"]}}' % STRONG)
    monkeypatch.setenv("WALLBOARD_TOKENS", f"{STRONG}-a, {STRONG}-b")
    settings = Settings()
    assert settings.api_keys["crm-relay"].scopes == ["ingest"]
    assert settings.wallboard_tokens == [f"{STRONG}-a", f"{STRONG}-b"]
    monkeypatch.setenv("API_KEYS", '{"x": {"key": "%s", "scopes": ["admin"]}}' % STRONG)
    with pytest.raises(ValidationError, match="read"):
        Settings()


def test_kafka_security_becomes_client_arguments():
    assert production().kafka_options() == {"bootstrap_servers": "127.0.0.1:9092", "security_protocol": "PLAINTEXT"}
    sasl = production(kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_mechanism="SCRAM-SHA-512",
                      kafka_sasl_username="salespulse", kafka_sasl_password=STRONG).kafka_options()
    assert sasl["sasl_mechanism"] == "SCRAM-SHA-512" and sasl["sasl_plain_password"] == STRONG
    assert "ssl_context" not in sasl
    tls = production(kafka_security_protocol="SSL").kafka_options()
    assert tls["ssl_context"].verify_mode.name == "CERT_REQUIRED"
