"""Scaling out. Several processor workers on the same topics: partitions spread across them,
and workers joining and leaving mid-stream (a clean stop, a SIGKILL, a restart under the same
group instance id) lose nothing and count nothing twice, checked against the independent
recomputation of the messy log (messy.py), on servers of the test's own. Several API
replicas: each pushes every change to the live streams it serves.
"""

from __future__ import annotations

import asyncio
import random
from datetime import datetime, timezone

import re

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from salespulse.contracts.topics import state_changelog
from tests.integration.conftest import cloudevent, eventually, send, start_api, unique
from tests.integration.test_faults import Processor, messy_log_through


async def test_workers_joining_and_leaving_mid_stream_lose_nothing_and_count_nothing_twice(own):
    async def churn(workers: list[Processor], sending: asyncio.Task, rng: random.Random) -> None:
        first, second, third = workers
        steps = [
            second.start,  # joins: the group rebalances, partitions move with their rows
            third.start,  # three workers share the six partitions
            second.stop,  # leaves cleanly (SIGTERM): its batch in hand is committed first
            third.kill,  # crashes: its partitions wait out its session, then move
            third.start,  # comes back under the same instance id
            second.start,
        ]
        for step in steps:
            await asyncio.wait([sending], timeout=rng.uniform(2.0, 4.0))
            await step() if asyncio.iscoroutinefunction(step) else await asyncio.to_thread(step)
        for worker in workers:
            log = (worker.settings.data_dir / "processor.log").read_text()
            assert "took partitions" in log, f"{worker.settings.processor_instance_id} never owned a partition"
        assert not sending.done(), "the log should still be flowing after every join and leave"

    own.settings = own.settings.model_copy(update={"processor_session_timeout": 8.0})
    await messy_log_through(own, 20240305, churn, workers=3, pause=0.3)  # about a minute of sending


async def changelog_records(bootstrap: str, topic: str, partitions: list[int]) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        return sum((await consumer.end_offsets(tps)).values())
    finally:
        await consumer.stop()


async def test_a_worker_taking_over_starts_from_its_standby_copy_not_the_whole_changelog(own):
    """Two workers, one standby copy per partition: each keeps the other's rows warm. The second
    is killed mid-stream; the first takes its partitions over from its copies, reading only the
    changelog records written since, and every KPI still matches the recomputation."""
    async def kill_the_second(workers: list[Processor], sending: asyncio.Task, rng: random.Random) -> None:
        first, second = workers
        await second.start()
        await asyncio.wait([sending], timeout=rng.uniform(15.0, 20.0))  # rows pile up on both
        second.kill()
        log = first.settings.data_dir / "processor.log"

        async def took_over() -> None:
            assert "standby copies" in log.read_text()

        await eventually(took_over, timeout=60, interval=0.5)
        taken = re.findall(r"took partitions \[([\d, ]+)\]: (\d+) changelog records restored .*standby copies",
                           log.read_text())
        [(partitions, read)] = taken
        partitions = [int(p) for p in partitions.split(",")]
        total = await changelog_records(own.settings.kafka_bootstrap_servers,
                                        state_changelog(own.settings.processor_app_id), partitions)
        assert total > 1000 and int(read) < total / 10, (read, total)

    own.settings = own.settings.model_copy(update={"processor_session_timeout": 6.0,
                                                   "processor_standby_replicas": 1})
    await messy_log_through(own, 20240611, kill_the_second, workers=2, pause=0.2)


@pytest.mark.usefixtures("processor")
async def test_every_api_replica_pushes_every_change_to_its_live_streams(settings, producer, tmp_path):
    """Two API processes behind no shared state but Kafka and Redis: a screen on either gets
    the change, whichever replica the event came through (here: straight to Kafka)."""
    replicas = [start_api(settings, tmp_path / f"api-{i}.log") for i in range(2)]
    rep, customer = unique("rep"), unique("cust")
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            async def first_reading_with_the_order(url: str) -> float:
                async with client.stream("GET", f"{url}/api/v1/stream", params={"watch": "orders:rep:day"},
                                         timeout=None) as response:
                    assert response.status_code == 200
                    async for line in response.aiter_lines():
                        if line.startswith("data: "):
                            reading = orjson.loads(line[6:]).get("reading", {})
                            counts = {v["key"]: v["value"] for v in reading.get("values", [])}
                            if counts.get(rep) == 1:
                                return asyncio.get_running_loop().time()
                raise AssertionError("the stream ended")

            streams = [asyncio.create_task(first_reading_with_the_order(url)) for _, url in replicas]
            await asyncio.sleep(2)  # both streams connected and past their first reading
            assert not any(s.done() for s in streams)
            await send(producer, "sales.orders", customer, cloudevent("order.placed", {
                "order_id": unique("ord"), "customer_id": customer, "rep_id": rep, "currency": "EUR",
                "placed_at": datetime.now(timezone.utc).isoformat(),
                "lines": [{"product": "p1", "quantity": 1, "unit_price": "100.00", "unit_cost": "60.00"}]}))
            await asyncio.wait_for(asyncio.gather(*streams), timeout=30)
    finally:
        for proc, _ in replicas:
            proc.terminate()
            proc.wait(30)
