"""A zombie worker, on the real broker and Redis: one whose event loop is held, in the middle of a
batch, past its session timeout, while the group gives its partitions to another worker that
counts on. When its loop turns again it must write nothing of that batch (membership.Lease):
its rows are older than the new owner's, and written after them to the changelog and Redis
they would take back what the new owner counted meanwhile, for good once restored.

The held worker runs in this process, so holding it holds the test's own event loop too: a
thread does what happens meanwhile (the other worker takes over, more events are sent and
counted), then lets it go.
"""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import datetime, timezone

import httpx
import redis as sync_redis
from prometheus_client import REGISTRY

from salespulse.processor.app import Worker
from tests.integration.conftest import eventually, in_process_api, unique
from tests.integration.test_faults import Processor
from tests.integration.test_rebalance import counted, ended_calls, send_all

SESSION_SECONDS = 6.0  # the least the settings allow: the takeover comes sooner


def applied_here() -> float:
    """sales.calls events this process's worker counted (its in-process metrics)."""
    return REGISTRY.get_sample_value("salespulse_processor_events_total",
                                     {"topic": "sales.calls", "outcome": "applied"}) or 0.0


def fenced_here() -> float:
    return REGISTRY.get_sample_value("salespulse_processor_fenced_batches_total") or 0.0


def applied_by(worker: Processor) -> float:
    """sales.calls events a worker process counted, from its /metrics."""
    text = httpx.get(f"http://127.0.0.1:{worker.settings.processor_metrics_port}/metrics").text
    return sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith("salespulse_processor_events_total{")
               and 'topic="sales.calls"' in line and 'outcome="applied"' in line)


def until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.2)


async def test_a_worker_held_past_its_session_writes_nothing_of_its_batch(own):
    settings = own.settings.model_copy(update={"processor_session_timeout": SESSION_SECONDS})
    day, rep = datetime.now(timezone.utc).date().isoformat(), unique("rep")
    calls = ended_calls(rep, 180, day)
    first, held_lot, later = calls[:60], calls[60:120], calls[120:]
    held_ids = {key for key, _ in held_lot}

    held = Worker(settings.model_copy(update={"processor_instance_id": "held"}))
    other = Processor(settings, "other")
    holding, gate, failures = threading.Event(), threading.Event(), []
    apply = held.processor.apply

    async def held_apply(events):
        if not holding.is_set() and any(getattr(e.envelope.data, "call_id", None) in held_ids for e in events):
            holding.set()
            gate.wait(120)  # the whole event loop stops: no heartbeat, no fetch, no timer
        return await apply(events)

    held.processor.apply = held_apply
    running = asyncio.create_task(held.run())
    try:
        await asyncio.wait_for(held.ready.wait(), 60)
        await other.start()  # the group splits the partitions between the two
        other_log = other.settings.data_dir / "processor.log"

        async def split() -> None:
            assert held.processor.owned and len(held.processor.owned) < settings.topic_partitions
        await eventually(split, timeout=60)
        counted_before = applied_here()
        async with in_process_api(settings) as api:
            await send_all(settings.kafka_bootstrap_servers, first)
            await eventually(lambda: counted(api, rep, day, 60), timeout=60)

            def meanwhile() -> None:
                """The held lot goes out, and while the held worker's loop stands still in it,
                the other takes everything over and counts every event the held one has not
                committed, the later ones too."""
                try:
                    asyncio.run(send_all(settings.kafka_bootstrap_servers, held_lot))
                    until(holding.is_set, 60, "the held worker takes a batch of the held lot")
                    takeovers = other_log.read_text().count("took partitions")
                    until(lambda: other_log.read_text().count("took partitions") > takeovers, 60,
                          "the other worker takes the held one's partitions over")
                    asyncio.run(send_all(settings.kafka_bootstrap_servers, later))
                    owed = len(calls) - (applied_here() - counted_before)  # all but what the held one committed
                    until(lambda: applied_by(other) >= owed, 60, f"the other worker counts {owed} events")
                except BaseException as exc:  # noqa: BLE001 - reported by the test below
                    failures.append(exc)
                finally:
                    gate.set()

            fenced_before = fenced_here()
            helper = threading.Thread(target=meanwhile, daemon=True)
            helper.start()  # (sends from this loop would stall with it)
            await asyncio.to_thread(helper.join, 240)
            assert not failures, failures

            # Let go, the held worker finds the group gone and drops the batch; it joins again
            # and gets half of the partitions back, from the changelog as the other wrote it.
            await eventually(lambda: counted(api, rep, day, len(calls)), timeout=60)
            await asyncio.sleep(3)  # anything written late would show by now
            await counted(api, rep, day, len(calls))
            assert fenced_here() > fenced_before
    finally:
        held.stop()
        await asyncio.wait_for(running, 60)
        other.stop()

    # The changelog as a worker starting from nothing restores it: Redis emptied, a new worker
    # copies back every row.
    sync_redis.Redis.from_url(settings.redis_url).flushdb()
    fresh = Processor(settings, "fresh")
    await fresh.start()
    try:
        async with in_process_api(settings) as api:
            await eventually(lambda: counted(api, rep, day, len(calls)), timeout=60)
    finally:
        fresh.stop()
