"""Rebalances on the real broker: what a worker does with the partitions an assignment gives it.

- Partitions a rebalance revokes and hands straight back keep their rows in the worker and in
  Redis: nothing is restored or copied to Redis again (every rebalance used to copy all of
  a worker's rows to Redis).
- A worker joins its group in one JoinGroup round, and two workers started together settle:
  given two assignors, aiokafka 0.14 sends a JoinGroup for each, and two members joining at
  once could make each other rebalance for minutes (the processor now gives it one). A
  worker asked to stop while it waits for the group stops (it waited for the join before).
- A restore that fails (here: the first attempt is made to raise, as a broker going away mid-
  restore does) leaves the partitions paused and is retried; their events are then counted,
  each once. aiokafka only logs an exception raised by the assignment callback, so before
  this the partitions stayed assigned and unhandled until the next rebalance.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError
from aiokafka.protocol.group import JoinGroupRequest

from salespulse.contracts.events import SOURCE_TOPICS
from salespulse.contracts.topics import ensure_topics
from salespulse.processor.app import Worker, group_consumer
from salespulse.processor.assignment import StandbyAssignor
from tests.integration.conftest import cloudevent, eventually, in_process_api, send, unique
from tests.integration.test_faults import Processor


def ended_calls(rep: str, count: int, day: str) -> list[tuple[str, dict]]:
    """`count` answered inbound calls of `rep` (keys spread over the partitions)."""
    t = f"{day}T10:00:00+00:00"
    return [(f"{rep}-{n}", cloudevent("call.ended", {
        "call_id": f"{rep}-{n}", "rep_id": rep, "direction": "inbound", "status": "answered", "started_at": t,
        "answered_at": f"{day}T10:00:05+00:00", "ended_at": f"{day}T10:01:05+00:00"})) for n in range(count)]


async def send_all(bootstrap: str, events: list[tuple[str, dict]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for key, event in events:
            await send(producer, "sales.calls", key, event)
    finally:
        await producer.stop()


async def counted(api: httpx.AsyncClient, rep: str, day: str, want: int) -> None:
    response = await api.get("/api/v1/kpis/calls_inbound", params={"by": "rep", "period": "day", "at": day})
    assert response.status_code == 200, response.text
    values = {v["key"]: v["value"] for v in response.json()["values"]}
    assert values.get(rep) == want, f"{values.get(rep)} != {want}"


def metric(worker: Processor, name: str) -> float:
    text = httpx.get(f"http://127.0.0.1:{worker.settings.processor_metrics_port}/metrics").text
    [value] = [line.split()[-1] for line in text.splitlines() if line.startswith(name + " ")]
    return float(value)


@pytest.fixture
async def topics(settings) -> None:
    await ensure_topics(settings)


def member(settings, group: str, instance: str) -> AIOKafkaConsumer:
    """A consumer built as a worker builds its own, subscribed as a worker is."""
    consumer = group_consumer(settings.model_copy(update={"processor_app_id": group, "processor_instance_id": instance}),
                              StandbyAssignor(1, lambda partitions: None))
    consumer.subscribe(list(SOURCE_TOPICS))
    return consumer


@pytest.mark.usefixtures("topics")
async def test_a_worker_joins_its_group_in_one_round(settings):
    consumer = member(settings, unique("salespulse-join"), "w1")
    joined = []  # generation of each JoinGroup the broker answered without error
    send = consumer._client.send

    async def counting(node_id, request, *args, **kwargs):
        response = await send(node_id, request, *args, **kwargs)
        if isinstance(request, JoinGroupRequest) and response.error_code == 0:
            joined.append(response.generation_id)
        return response

    consumer._client.send = counting
    await asyncio.wait_for(consumer.start(), 60)
    try:
        assert joined == [1]  # was [1, 2]: one JoinGroup per assignor, the second a rebalance of its own
        assert {tp.partition for tp in consumer.assignment()} == set(range(settings.topic_partitions))
    finally:
        await consumer.stop()


@pytest.mark.usefixtures("topics")
async def test_two_workers_started_together_settle(settings):
    for _ in range(3):  # it took a few rounds to see them fail to settle
        group = unique("salespulse-pair")
        pair = [member(settings, group, "w1"), member(settings, group, "w2")]
        try:
            await asyncio.wait_for(asyncio.gather(*(c.start() for c in pair)), 60)

            async def split() -> None:
                first, second = ({tp.partition for tp in c.assignment()} for c in pair)
                assert first and second and not first & second
                assert first | second == set(range(settings.topic_partitions))

            await eventually(split, timeout=30)
        finally:
            await asyncio.gather(*(c.stop() for c in pair))


@pytest.mark.usefixtures("topics")
async def test_a_worker_asked_to_stop_while_joining_stops(settings):
    worker = Worker(settings.model_copy(update={"processor_app_id": unique("salespulse-stop")}))
    joining = asyncio.Event()

    async def never_settles() -> None:  # a group that keeps rebalancing, as above
        joining.set()
        await asyncio.Event().wait()

    worker.consumer.start = never_settles
    running = asyncio.create_task(worker.run())
    await asyncio.wait_for(joining.wait(), 30)
    worker.stop()
    await asyncio.wait_for(running, 10)
    assert not worker.ready.is_set()


async def test_partitions_handed_straight_back_are_not_copied_to_redis_again(own):
    day, rep = datetime.now(timezone.utc).date().isoformat(), unique("rep")
    first, second = Processor(own.settings, "worker-1"), Processor(own.settings, "worker-2")
    await first.start()
    try:
        async with in_process_api(own.settings) as api:
            await send_all(own.settings.kafka_bootstrap_servers, ended_calls(rep, 200, day))
            await eventually(lambda: counted(api, rep, day, 200), timeout=60)
            copied_before = metric(first, "salespulse_processor_resynced_rows_total")

            await second.start()  # the group rebalances: the first gets half of its partitions back
            first_log = first.settings.data_dir / "processor.log"

            async def handed_back() -> None:
                assert "rows kept of" in first_log.read_text()

            await eventually(handed_back, timeout=60)
            await send_all(own.settings.kafka_bootstrap_servers, ended_calls(rep, 300, day)[200:])
            await eventually(lambda: counted(api, rep, day, 300), timeout=60)
            await asyncio.sleep(3)  # a resync round (every 2 s) would have copied them by now

            assert metric(first, "salespulse_processor_resynced_rows_total") == copied_before
            assert metric(second, "salespulse_processor_resynced_rows_total") > 0  # it took rows over
    finally:
        second.stop()
        first.stop()


async def test_a_failed_restore_is_retried_and_its_events_are_counted_once(own):
    day, rep = datetime.now(timezone.utc).date().isoformat(), unique("rep")
    await send_all(own.settings.kafka_bootstrap_servers, ended_calls(rep, 120, day))
    worker = Worker(own.settings)
    restore, attempts = worker.state.restore, []

    async def failing_once(*args, **kwargs):
        attempts.append(args)
        if len(attempts) == 1:
            raise KafkaConnectionError("the broker went away mid-restore (injected)")
        return await restore(*args, **kwargs)

    worker.state.restore = failing_once
    running = asyncio.create_task(worker.run())
    try:
        async with in_process_api(own.settings) as api:
            await eventually(lambda: counted(api, rep, day, 120), timeout=60)
            assert len(attempts) == 2, attempts
            assert worker.unrestored == set() and worker.processor.owned == set(range(own.settings.topic_partitions))
            await send_all(own.settings.kafka_bootstrap_servers, ended_calls(rep + "-later", 10, day))
            await eventually(lambda: counted(api, rep + "-later", day, 10), timeout=30)
            await counted(api, rep, day, 120)  # still once each
    finally:
        worker.stop()
        await asyncio.wait_for(running, 60)
