"""SalesPulse on a Kafka broker that requires SASL authentication.

The broker is a local one of the test's own with a SASL_PLAINTEXT client listener (PLAIN
mechanism, users in its JAAS config): the processor and the API get nothing but the
KAFKA_SECURITY_PROTOCOL / KAFKA_SASL_* settings, and an event ingested through the API must
come out of it as a KPI. Clients without the right credentials are turned away, so the
settings are what lets the product in.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from datetime import datetime, timezone

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from salespulse.contracts.topics import ensure_topics
from salespulse.devstack import LocalKafka, LocalRedis, free_port
from salespulse.settings import Settings
from tests.integration.conftest import eventually, start_api, start_processor, stop_processor, unavailable, unique

USER = "salespulse"


@pytest.fixture
def secured(tmp_path) -> Iterator[tuple[LocalKafka, Settings]]:
    password = secrets.token_urlsafe(16)
    kafka = LocalKafka(tmp_path / "kafka", port=free_port(), controller_port=free_port(), heap="512m",
                       sasl_users={USER: password})
    redis = LocalRedis(tmp_path / "redis", port=free_port())
    try:
        kafka.start()
        redis.start()
    except Exception as exc:  # noqa: BLE001
        kafka.stop()
        unavailable(f"could not start a local Kafka with SASL and a Redis: {exc}")
    settings = Settings(
        kafka_bootstrap_servers=kafka.bootstrap_servers, redis_url=redis.url, data_dir=tmp_path / "data",
        processor_app_id=unique("salespulse-sasl"), processor_metrics_port=free_port(),
        kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_mechanism="PLAIN",
        kafka_sasl_username=USER, kafka_sasl_password=password)
    settings.data_dir.mkdir()
    try:
        asyncio.run(ensure_topics(settings))
        yield kafka, settings
    finally:
        redis.stop()
        kafka.stop()


async def refused(**options) -> str:
    """The error a producer with these options gets from the secured broker."""
    producer = AIOKafkaProducer(request_timeout_ms=5000, **options)
    try:
        await asyncio.wait_for(producer.start(), 15)
    except (KafkaError, asyncio.TimeoutError) as exc:
        return type(exc).__name__
    finally:
        await producer.stop()
    pytest.fail(f"the broker let a producer in with {options}")


async def test_events_flow_through_a_broker_that_requires_sasl_and_strangers_are_refused(secured):
    kafka, settings = secured
    sasl = {"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_MECHANISM": "PLAIN",
            "KAFKA_SASL_USERNAME": USER, "KAFKA_SASL_PASSWORD": settings.kafka_sasl_password}
    assert await refused(bootstrap_servers=kafka.bootstrap_servers, security_protocol="SASL_PLAINTEXT",
                         sasl_mechanism="PLAIN", sasl_plain_username=USER, sasl_plain_password="wrong")
    assert await refused(bootstrap_servers=kafka.bootstrap_servers)  # no SASL at all

    processor = start_processor(settings, **sasl)
    api_proc, url = start_api(settings, settings.data_dir / "api.log", **sasl)  # ingest and live feed log in too
    rep = unique("rep")
    try:
        async with httpx.AsyncClient(base_url=url) as api:
            response = await api.post("/api/v1/events", json=[{
                "specversion": "1.0", "id": unique("evt"), "source": "test/sasl", "type": "order.placed",
                "time": datetime.now(timezone.utc).isoformat(),
                "data": {"order_id": unique("ord"), "customer_id": unique("cust"), "rep_id": rep, "currency": "EUR",
                         "placed_at": datetime.now(timezone.utc).isoformat(),
                         "lines": [{"product": "p1", "quantity": 2, "unit_price": "50.00", "unit_cost": "30.00"}]}}])
            assert response.status_code == 202, response.text

            async def counted() -> None:
                body = (await api.get("/api/v1/kpis/revenue", params={"by": "rep", "period": "day"})).json()
                assert {v["key"]: v["value"] for v in body["values"]}.get(rep) == 100.0

            await eventually(counted, timeout=60)
    finally:
        api_proc.terminate()
        api_proc.wait(30)
        stop_processor(processor)
