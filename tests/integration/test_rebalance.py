"""Rebalances on the real broker: what a worker does with the partitions an assignment gives it.

- Partitions a rebalance revokes and hands straight back keep their rows in the worker and in
  Redis: nothing is restored or copied to Redis again (every rebalance used to copy all of
  a worker's rows to Redis).
- A restore that fails (here: the first attempt is made to raise, as a broker going away mid-
  restore does) leaves the partitions paused and is retried; their events are then counted,
  each once. aiokafka only logs an exception raised by the assignment callback, so before
  this the partitions stayed assigned and unhandled until the next rebalance.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import httpx
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError

from salespulse.processor.app import Worker
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
