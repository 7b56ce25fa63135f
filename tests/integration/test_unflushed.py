"""Rows a worker copied to Redis before its changelog had them, and then died: the next owner
drops those its restored rows lack, on the real broker and Redis.

A worker writes its rows to the changelog once a PROCESSOR_FLUSH_SECONDS but to Redis at
every batch. Killed in between, it leaves Redis with rows its successor restores older, or
not at all. The successor handles the same events again from the last committed offset and
writes their rows anew, but a row they change and change back within one of its batches
nets to nothing and is not written: Redis would keep the dead worker's value for good.
(The SIGKILL test of test_faults.py found 25 such values of 63,500 before the fix.)
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from aiokafka import AIOKafkaProducer

from tests.integration.conftest import cloudevent, eventually, in_process_api, send, unique
from tests.integration.test_faults import Processor


async def value_of(api, kpi: str, rep: str, period: str) -> float | None:
    body = (await api.get(f"/api/v1/kpis/{kpi}", params={"by": "rep", "period": period})).json()
    return {v["key"]: v["value"] for v in body["values"]}.get(rep)


async def test_a_row_a_killed_worker_copied_to_redis_alone_is_dropped_by_the_next_owner(own):
    settings = own.settings
    rep, deal = unique("rep"), unique("deal")
    now = datetime.now(timezone.utc)
    created = (now - timedelta(days=10)).isoformat()
    deal_event = {"deal_id": deal, "rep_id": rep, "amount": "1000.00", "currency": "EUR", "created_at": created}
    lost = cloudevent("deal.changed", {**deal_event, "stage": "lost", "updated_at": (now - timedelta(seconds=2)).isoformat(),
                                       "closed_at": (now - timedelta(seconds=2)).isoformat()})
    reopened = cloudevent("deal.changed", {**deal_event, "stage": "negotiation",
                                           "updated_at": (now - timedelta(seconds=1)).isoformat()})

    first = Processor(settings.model_copy(update={"processor_flush_seconds": 60.0}), "worker")
    await first.start()
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        async with in_process_api(settings) as api:
            await send(producer, "sales.deals", deal, lost)

            async def lost_today() -> None:
                assert await value_of(api, "deals_lost", rep, "day") == 1.0
            await eventually(lost_today, timeout=60)
            first.kill()  # its changelog has nothing of the deal: it flushes every minute

            await send(producer, "sales.deals", deal, reopened)
            second = Processor(settings, "worker")  # the same member (static): its partitions at once
            await second.start()
            try:
                async def reopened_now() -> None:
                    assert await value_of(api, "open_deals", rep, "day") == 1.0  # it handled both again
                    assert not await value_of(api, "deals_lost", rep, "day")  # today's row: gone, or 0
                await eventually(reopened_now, timeout=60)
                assert await value_of(api, "deals_lost", rep, "month") in (None, 0.0)
            finally:
                second.stop()
    finally:
        await producer.stop()
        first.stop()
