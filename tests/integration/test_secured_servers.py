"""SalesPulse on Kafka brokers that require SASL authentication or TLS with client certificates,
and on a Redis that requires a password, or a password and TLS with client certificates.

Each server is a local one of the test's own: a broker with a SASL_PLAINTEXT client listener
(PLAIN mechanism, users in its JAAS config) or an SSL listener with a throwaway CA that requires
a client certificate; a redis-server with `requirepass`, or listening on TLS only with the same
kind of CA. The processor and the API get nothing but the KAFKA_SECURITY_PROTOCOL /
KAFKA_SASL_* / KAFKA_SSL_* settings or the REDIS_URL, and an event ingested through the API
must come out of it as a KPI. Clients without the right credentials are turned away, so the
settings are what lets the product in.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.helpers import create_ssl_context
from redis.exceptions import RedisError

from salespulse.contracts.topics import ensure_topics
from salespulse.devstack import LocalKafka, LocalRedis, free_port
from salespulse.devstack.tls import Pki, make_pki
from salespulse.readmodel import ReadModel
from salespulse.settings import Settings
from tests.integration.conftest import an_ingested_order_is_counted, unavailable, unique

USER = "salespulse"


def secured_stack(home: Path, kafka: LocalKafka, redis: LocalRedis | None = None,
                  **security) -> Iterator[tuple[LocalKafka, Settings]]:
    redis = redis or LocalRedis(home / "redis", port=free_port())
    try:
        kafka.start()
        redis.start()
    except Exception as exc:  # noqa: BLE001
        kafka.stop()
        redis.stop()
        unavailable(f"could not start a local Kafka and a Redis, one of them secured: {exc}")
    settings = Settings(
        kafka_bootstrap_servers=kafka.bootstrap_servers, redis_url=redis.url, data_dir=home / "data",
        processor_app_id=unique("salespulse-secured"), processor_metrics_port=free_port(), **security)
    settings.data_dir.mkdir()
    try:
        asyncio.run(ensure_topics(settings))
        yield kafka, settings
    finally:
        redis.stop()
        kafka.stop()


@pytest.fixture
def sasl_broker(tmp_path) -> Iterator[tuple[LocalKafka, Settings]]:
    password = secrets.token_urlsafe(16)
    kafka = LocalKafka(tmp_path / "kafka", port=free_port(), controller_port=free_port(), heap="512m",
                       sasl_users={USER: password})
    yield from secured_stack(tmp_path, kafka, kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_mechanism="PLAIN",
                             kafka_sasl_username=USER, kafka_sasl_password=password)


@pytest.fixture
def tls_broker(tmp_path) -> Iterator[tuple[LocalKafka, Settings, Pki]]:
    pki = make_pki(tmp_path / "pki")
    kafka = LocalKafka(tmp_path / "kafka", port=free_port(), controller_port=free_port(), heap="512m", tls=pki)
    for kafka, settings in secured_stack(tmp_path, kafka, kafka_security_protocol="SSL", kafka_ssl_cafile=pki.ca_cert,
                                         kafka_ssl_certfile=pki.client_cert, kafka_ssl_keyfile=pki.client_key):
        yield kafka, settings, pki


async def refused(**options) -> str:
    """The error a producer with these options gets from the secured broker."""
    producer = AIOKafkaProducer(request_timeout_ms=5000, **options)
    try:
        await asyncio.wait_for(producer.start(), 15)
    except (KafkaError, asyncio.TimeoutError, OSError) as exc:
        return type(exc).__name__
    finally:
        await producer.stop()
    pytest.fail(f"the broker let a producer in with {options}")


async def test_events_flow_through_a_broker_that_requires_sasl_and_strangers_are_refused(sasl_broker):
    kafka, settings = sasl_broker
    assert await refused(bootstrap_servers=kafka.bootstrap_servers, security_protocol="SASL_PLAINTEXT",
                         sasl_mechanism="PLAIN", sasl_plain_username=USER, sasl_plain_password="wrong")
    assert await refused(bootstrap_servers=kafka.bootstrap_servers)  # no SASL at all
    await an_ingested_order_is_counted(settings, {
        "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_MECHANISM": "PLAIN",
        "KAFKA_SASL_USERNAME": USER, "KAFKA_SASL_PASSWORD": settings.kafka_sasl_password})


async def test_events_flow_over_tls_with_client_certificates_and_strangers_are_refused(tls_broker):
    kafka, settings, pki = tls_broker
    server = kafka.bootstrap_servers
    assert await refused(bootstrap_servers=server)  # plaintext on a TLS port
    assert await refused(bootstrap_servers=server, security_protocol="SSL",  # no client certificate
                         ssl_context=create_ssl_context(cafile=str(pki.ca_cert)))
    assert await refused(bootstrap_servers=server, security_protocol="SSL",  # the broker's CA not trusted
                         ssl_context=create_ssl_context(certfile=str(pki.client_cert), keyfile=str(pki.client_key)))
    await an_ingested_order_is_counted(settings, {
        "KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CAFILE": str(pki.ca_cert),
        "KAFKA_SSL_CERTFILE": str(pki.client_cert), "KAFKA_SSL_KEYFILE": str(pki.client_key)})


def plain_kafka(home: Path) -> LocalKafka:
    return LocalKafka(home / "kafka", port=free_port(), controller_port=free_port(), heap="512m")


@pytest.fixture
def auth_redis(tmp_path) -> Iterator[tuple[LocalRedis, Settings]]:
    # With characters a URL must encode and a redis.conf line must escape.
    redis = LocalRedis(tmp_path / "redis", port=free_port(), password=secrets.token_urlsafe(16) + ' :@/"%\\')
    for _, settings in secured_stack(tmp_path, plain_kafka(tmp_path), redis):
        yield redis, settings


@pytest.fixture
def tls_redis(tmp_path) -> Iterator[tuple[LocalRedis, Settings]]:
    redis = LocalRedis(tmp_path / "redis", port=free_port(), password=secrets.token_urlsafe(16),
                       tls=make_pki(tmp_path / "pki"))
    for _, settings in secured_stack(tmp_path, plain_kafka(tmp_path), redis):
        yield redis, settings


async def redis_refuses(url: str) -> str:
    """The error the read model's client gets from the secured Redis with `url`."""
    model = ReadModel.from_url(url)
    try:
        await model.ping()
    except (RedisError, OSError) as exc:
        return type(exc).__name__
    finally:
        await model.close()
    pytest.fail(f"Redis let a client in with {url}")


async def test_figures_go_through_a_redis_that_requires_a_password_and_strangers_are_refused(auth_redis):
    redis, settings = auth_redis
    assert settings.redis_url.startswith("redis://:")
    assert await redis_refuses(f"redis://127.0.0.1:{redis.port}/0") == "AuthenticationError"  # no password
    wrong = quote("wrong" + redis.password, safe="")
    assert await redis_refuses(f"redis://:{wrong}@127.0.0.1:{redis.port}/0") == "AuthenticationError"
    await an_ingested_order_is_counted(settings, {})


async def test_figures_go_through_redis_over_tls_with_client_certificates_and_strangers_are_refused(tls_redis):
    redis, settings = tls_redis
    pki, where = redis.tls, f"127.0.0.1:{redis.port}/0"
    password = redis.password
    assert settings.redis_url.startswith("rediss://:")
    assert await redis_refuses(f"redis://:{password}@{where}")  # plaintext on the TLS port
    assert await redis_refuses(f"rediss://:{password}@{where}?ssl_ca_certs={pki.ca_cert}")  # no client certificate
    assert await redis_refuses(  # Redis's CA not trusted
        f"rediss://:{password}@{where}?ssl_certfile={pki.client_cert}&ssl_keyfile={pki.client_key}")
    assert await redis_refuses(  # all but the password
        f"rediss://{where}?ssl_ca_certs={pki.ca_cert}&ssl_certfile={pki.client_cert}&ssl_keyfile={pki.client_key}")
    await an_ingested_order_is_counted(settings, {})
