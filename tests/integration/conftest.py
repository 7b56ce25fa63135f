"""Real Kafka and Redis for the integration tests, and the real processor and API on them.

Where the servers come from, in order: KAFKA_BOOTSTRAP_SERVERS / REDIS_URL; testcontainers
when a Docker engine answers; otherwise the project's local launcher (Kafka from the Maven
Central jars, redis-server). With CI=true a test that cannot get its servers fails.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime, timezone
from pathlib import Path

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from salespulse.contracts.events import SOURCE_TOPICS
from salespulse.contracts.topics import ensure_topics, group_lag, partitions_of
from salespulse.devstack import LocalKafka, LocalRedis, free_port
from salespulse.settings import Settings

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


def unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"integration servers unavailable in CI: {reason}")
    pytest.skip(reason)


def docker_engine_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return True
    except Exception:  # noqa: BLE001 - no engine, no socket, no permission: all "no"
        return False


@contextmanager
def new_kafka_broker(tmp_path_factory) -> Iterator[str]:
    """A Kafka broker of its own: a container when a Docker engine answers, else the local launcher."""
    if docker_engine_answers():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer("apache/kafka:4.1.1").with_kraft() as kafka:
            yield kafka.get_bootstrap_server()
        return
    kafka = LocalKafka(tmp_path_factory.mktemp("kafka"), port=free_port(), controller_port=free_port())
    try:
        kafka.start()
    except Exception as exc:  # noqa: BLE001
        unavailable(f"could not start the local Kafka broker: {exc}")
    try:
        yield kafka.bootstrap_servers
    finally:
        kafka.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory) -> str:
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield os.environ["KAFKA_BOOTSTRAP_SERVERS"]
        return
    with new_kafka_broker(tmp_path_factory) as bootstrap:
        yield bootstrap


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory) -> str:
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    if docker_engine_answers():
        from testcontainers.redis import RedisContainer

        with RedisContainer("redis:7") as redis:
            yield f"redis://{redis.get_container_host_ip()}:{redis.get_exposed_port(6379)}/0"
        return
    redis = LocalRedis(tmp_path_factory.mktemp("redis"), port=free_port())
    try:
        redis.start()
    except Exception as exc:  # noqa: BLE001
        unavailable(f"could not start the local redis-server: {exc}")
    yield redis.url
    redis.stop()


@pytest.fixture(scope="session")
def settings(kafka_bootstrap, redis_url, tmp_path_factory) -> Settings:
    # Every bucket and entity kept, by the API as by the processor (processor_env): the tests
    # send history from 2021 on.
    return Settings(kafka_bootstrap_servers=kafka_bootstrap, redis_url=redis_url,
                    data_dir=tmp_path_factory.mktemp("data"), processor_metrics_port=free_port(),
                    processor_app_id=f"salespulse-test-{uuid.uuid4().hex[:8]}",
                    bucket_retention_days={}, entity_retention_days=0)


def processor_env(settings: Settings) -> dict[str, str]:
    return {**os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers, "REDIS_URL": settings.redis_url,
            "DATA_DIR": str(settings.data_dir), "PROCESSOR_APP_ID": settings.processor_app_id,
            "PROCESSOR_METRICS_PORT": str(settings.processor_metrics_port),
            # The tests replay history from 2021 on: keep every bucket and entity.
            "BUCKET_RETENTION_DAYS": "{}", "ENTITY_RETENTION_DAYS": "0", "RETENTION_CHECK_SECONDS": "5"}


def start_processor(settings: Settings, **env: str) -> subprocess.Popen:
    """The real stream processor, as a separate process (python -m salespulse.processor), once Ready."""
    log_path = Path(settings.data_dir) / "processor.log"
    start = log_path.stat().st_size if log_path.exists() else 0
    with log_path.open("ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "salespulse.processor"], env={**processor_env(settings), **env},
                                stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while b"processor ready" not in log_path.read_bytes()[start:]:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"processor did not start:\n{log_path.read_text()[-4000:]}")
        time.sleep(0.3)
    return proc


def wait_until_up(url: str, proc: subprocess.Popen, what: str, log: Path) -> None:
    """Wait until `url` answers 200 (fail with the end of `log` if the process dies or 60 s pass)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"{what} did not start: {log.read_text()[-3000:]}")
        time.sleep(0.3)


def start_api(settings: Settings, log: Path, port: int | None = None, **env: str) -> tuple[subprocess.Popen, str]:
    """The API as its own process on a real port (for Prometheus and browsers); (process, base URL)."""
    port = port or free_port()
    proc = subprocess.Popen([sys.executable, "-m", "salespulse.api"], stdout=log.open("ab"), stderr=subprocess.STDOUT,
                            env={**processor_env(settings), "API_HOST": "127.0.0.1", "API_PORT": str(port), **env})
    url = f"http://127.0.0.1:{port}"
    wait_until_up(f"{url}/readyz", proc, "the API", log)
    return proc, url


class AlertingService:
    """`python -m salespulse.alerting` as a subprocess that can be restarted."""

    def __init__(self, env: dict[str, str], log_path) -> None:
        self.env, self.log_path, self.proc = env, log_path, None

    def start(self) -> None:
        start = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "salespulse.alerting"], env=self.env, stdout=log,
                                         stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while b"alerting ready" not in self.log_path.read_bytes()[start:]:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                pytest.fail(f"alerting did not start:\n{self.log_path.read_text()[-4000:]}")
            time.sleep(0.2)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def stop_processor(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="session")
def processor(settings):
    proc = start_processor(settings)
    yield proc
    stop_processor(proc)


@pytest.fixture(scope="session")
async def api(settings) -> AsyncIterator[httpx.AsyncClient]:
    """The real FastAPI app (lifespan included) behind an in-process HTTP client."""
    from salespulse.api.app import create_app

    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
            await eventually(lambda: _ready(client), timeout=60)
            yield client


@asynccontextmanager
async def in_process_api(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An API of its own settings (lifespan included) behind an in-process client, once ready."""
    from salespulse.api.app import create_app

    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
            await eventually(lambda: _ready(client), timeout=60)
            yield client


async def _ready(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200, response.text


@pytest.fixture(scope="session")
async def producer(kafka_bootstrap, api) -> AsyncIterator[AIOKafkaProducer]:
    """A plain Kafka producer: events reach the processor without the project's ingest."""
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    yield producer
    await producer.stop()


async def eventually(check: Callable[[], Awaitable[None]], timeout: float = 30.0, interval: float = 0.2):
    """Retry an async assertion until it passes or `timeout` runs out (then raise its error)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            return await check()
        except AssertionError:
            if asyncio.get_running_loop().time() > deadline:
                raise
        await asyncio.sleep(interval)


async def consume(bootstrap: str, topic: str, predicate, timeout: float = 30.0, count: int | None = None) -> list:
    """Records of `topic` (from the beginning) for which predicate(record) holds: once `count`
    of them have come, or (no count) once any has and a poll brings nothing more."""
    partitions = [TopicPartition(topic, p) for p in await partitions_of(bootstrap, topic)]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        found, deadline = [], asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            found += [r for records in batches.values() for r in records if predicate(r)]
            if (count is not None and len(found) >= count) or (count is None and found and not batches):
                return found
        return found
    finally:
        await consumer.stop()


async def caught_up(bootstrap: str, group: str) -> None:
    """Assert that `group` has committed every source record there is."""
    behind = {tp: n for tp, n in (await group_lag(bootstrap, group, SOURCE_TOPICS)).items() if n}
    assert not behind, f"{group} has records left to read: {behind}"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def new_topic(client: dict, prefix: str, partitions: int, **configs: str) -> str:
    """A topic of its own for one test (a unique name starting with `prefix`)."""
    topic = unique(prefix)
    admin = AIOKafkaAdminClient(**client)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1,
                                            topic_configs=configs)])
    finally:
        await admin.close()
    return topic


def cloudevent(event_type: str, data: dict, event_id: str | None = None) -> dict:
    return {"specversion": "1.0", "id": event_id or unique("evt"), "source": "tests", "type": event_type,
            "datacontenttype": "application/json", "data": data}


async def send(producer: AIOKafkaProducer, topic: str, key: str, event: dict | bytes) -> None:
    value = event if isinstance(event, bytes) else orjson.dumps(event)
    await producer.send_and_wait(topic, value, key=key.encode())


class OwnServers:
    def __init__(self, home: Path) -> None:
        self.kafka = LocalKafka(home / "kafka", port=free_port(), controller_port=free_port(), heap="512m")
        self.redis = LocalRedis(home / "redis", port=free_port())
        self.settings = Settings(
            kafka_bootstrap_servers=self.kafka.bootstrap_servers, redis_url=self.redis.url, data_dir=home / "data",
            processor_app_id=unique("salespulse-faults"), processor_metrics_port=free_port(),
            processor_instance_id="faults-worker-1")


@contextmanager
def own_servers(home: Path) -> Iterator[OwnServers]:
    """A Kafka broker and a redis-server of the caller's own, with the topics created."""
    servers = OwnServers(home)
    try:
        servers.kafka.start()
        servers.redis.start()
    except Exception as exc:  # noqa: BLE001
        servers.kafka.stop()
        unavailable(f"could not start a local Kafka and Redis of the test's own: {exc}")
    servers.settings.data_dir.mkdir()
    asyncio.run(ensure_topics(servers.settings))
    try:
        yield servers
    finally:
        servers.redis.stop()
        servers.kafka.stop()


@pytest.fixture
def own(tmp_path) -> Iterator[OwnServers]:
    with own_servers(tmp_path) as servers:
        yield servers


async def an_ingested_order_is_counted(settings: Settings, env: dict[str, str]) -> None:
    """The processor and the API, given `env` over `settings`, carry an order ingested through the
    API to its reading of the KPI (the rep's revenue today)."""
    processor = start_processor(settings, **env)
    api_proc, url = start_api(settings, settings.data_dir / "api.log", **env)  # ingest and live feed log in too
    rep = unique("rep")
    try:
        async with httpx.AsyncClient(base_url=url) as api:
            response = await api.post("/api/v1/events", json=[{
                "specversion": "1.0", "id": unique("evt"), "source": "test/ingested", "type": "order.placed",
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
