"""Retention on the real path: a processor restarted with a retention drops the rows it no longer
needs from its table (so from its changelog) and from Redis, folds customers' old orders into
their history, refuses what it could no longer tell apart, and changes no figure it keeps.

It runs on a Kafka broker of its own (so a new processor has no other test's history to
replay first), with its own processor, API and Redis database."""

from __future__ import annotations

import os
import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

from urllib.parse import urlparse

import httpx
import pytest
import redis.asyncio as redis
from aiokafka import AIOKafkaProducer

from salespulse.api.app import create_app
from salespulse.devstack.servers import free_port
from tests.integration.conftest import (
    caught_up,
    cloudevent,
    consume,
    eventually,
    new_kafka_broker,
    send,
    start_processor,
    stop_processor,
    unique,
)
from tests.integration.test_pipeline import expect

PARIS = ZoneInfo("Europe/Paris")
LONG = 180  # seconds: on a shared broker a new processor replays all of its history first
RETENTION = {"ENTITY_RETENTION_DAYS": "30", "BUCKET_RETENTION_DAYS": '{"day": 20}', "RETENTION_CHECK_SECONDS": "1"}


def metric(settings, name: str) -> float:
    text = httpx.get(f"http://127.0.0.1:{settings.processor_metrics_port}/metrics").text
    return sum(float(v) for v in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))


def order(order_id: str, customer: str, rep: str, placed: datetime, price: str) -> dict:
    return cloudevent("order.placed", {
        "order_id": order_id, "customer_id": customer, "rep_id": rep, "placed_at": placed.isoformat(),
        "currency": "EUR", "lines": [{"product": "p", "quantity": 1, "unit_price": price, "unit_cost": "1"}]})


@pytest.fixture(scope="module")
def own_kafka(tmp_path_factory):
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):  # servers given: share them, and replay their history
        yield os.environ["KAFKA_BOOTSTRAP_SERVERS"]
        return
    with new_kafka_broker(tmp_path_factory) as bootstrap:
        yield bootstrap


async def test_retention_drops_old_rows_folds_old_orders_and_keeps_every_figure_it_keeps(settings, own_kafka, tmp_path):
    kafka_bootstrap = own_kafka
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    own = settings.model_copy(update={
        "kafka_bootstrap_servers": kafka_bootstrap,
        "redis_url": urlparse(settings.redis_url)._replace(path="/3").geturl(), "data_dir": tmp_path,
        "processor_app_id": unique("salespulse-retention"), "processor_metrics_port": free_port()})
    store = redis.from_url(own.redis_url)
    await store.flushdb()
    await store.aclose()

    now = datetime.now(timezone.utc)
    rep, customer = unique("rep"), unique("cust")
    o1, o2 = now - timedelta(days=50), now - timedelta(days=45)  # past the 30 days: folded, their days expired
    day1 = o1.astimezone(PARIS).date().isoformat()
    call = cloudevent("call.ended", {"call_id": unique("call"), "rep_id": rep, "direction": "outbound",
                                     "status": "answered", "started_at": (now - timedelta(days=40)).isoformat(),
                                     "answered_at": (now - timedelta(days=40)).isoformat(),
                                     "ended_at": (now - timedelta(days=40, seconds=-60)).isoformat()})

    def year(moment: datetime) -> str:
        return moment.astimezone(PARIS).date().replace(month=1, day=1).isoformat()

    app = create_app(own)
    processor = start_processor(own)  # keeps everything
    try:
        async with app.router.lifespan_context(app):
            api = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")
            await send(producer, "sales.orders", customer, order(unique("ord"), customer, rep, o1, "100"))
            first_again = order(unique("ord"), customer, rep, o2, "200")
            await send(producer, "sales.orders", customer, first_again)
            await send(producer, "sales.calls", call["data"]["call_id"], call)
            # A new application replays the whole history so far (other tests' too) first, so none
            # of it meets the retention later.
            await eventually(lambda: caught_up(kafka_bootstrap, own.processor_app_id), timeout=LONG)
            await expect(api, rep, day1, {"revenue": Decimal(100)})
            await expect(api, rep, day1, {"revenue": Decimal(300) if year(o1) == year(o2) else Decimal(100)},
                         period="year")
            stop_processor(processor)

            processor = start_processor(own, **RETENTION)

            async def retention_ran():
                assert metric(own, "salespulse_processor_frozen_customers_total") >= 1
                assert metric(own, "salespulse_processor_expired_rows_total") >= 3  # day rows, the orders, the call
            await eventually(retention_ran, timeout=LONG)  # after rebuilding the table from its changelog
            await expect(api, rep, day1, {"revenue": None})  # the day row left Redis too
            await expect(api, rep, day1, {"revenue": Decimal(300) if year(o1) == year(o2) else Decimal(100)},
                         period="year")

            # The frozen history still serves new orders: the next one follows o2 within the horizon.
            o3 = now - timedelta(minutes=5)
            await send(producer, "sales.orders", customer, order(unique("ord"), customer, rep, o3, "400"))
            recurring = {}
            for moment, cents in ((o2, 200), (o3, 400)):
                recurring[year(moment)] = recurring.get(year(moment), 0) + cents
            for start, total in recurring.items():
                await expect(api, customer, start, {"recurring_revenue": Decimal(total)}, by="customer", period="year")

            # An old order sent again is refused with its reason, not counted twice.
            await send(producer, "sales.orders", customer, first_again)
            records = await consume(kafka_bootstrap, "sales.deadletter",
                                    lambda r: r.key == customer.encode(), count=1)
            assert "ENTITY_RETENTION_DAYS" in dict(records[0].headers)["salespulse.reason"].decode()
            stop_processor(processor)

            # The drops and the folded customer are in the changelog: a restart has nothing left to do.
            processor = start_processor(own, **RETENTION)
            await send(producer, "sales.orders", customer, order(unique("ord"), customer, rep, o3, "800"))
            await expect(api, customer, year(o3), {"recurring_revenue": Decimal(recurring[year(o3)] + 800)},
                         by="customer", period="year", timeout=LONG)
            assert metric(own, "salespulse_processor_expired_rows_total") == 0
            assert metric(own, "salespulse_processor_frozen_customers_total") == 0
            await api.aclose()
    finally:
        stop_processor(processor)
        await producer.stop()
