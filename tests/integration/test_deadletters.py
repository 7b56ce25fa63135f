"""Dead letters sent back once their cause is fixed, on the real broker, Redis and processor:
`python -m salespulse.deadletters` as an operator runs it.

An order in a currency the processor has no rate for is dead-lettered; the rate is added and
the processor restarted; `resend` sends the order back to sales.orders and it counts, once,
however many times resend runs. A webhook letter (a provider's payload) is not sent.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import datetime, timezone

import orjson
from aiokafka import AIOKafkaProducer

from salespulse.contracts.topics import DEADLETTER
from tests.integration.conftest import (caught_up, cloudevent, consume, eventually, in_process_api, processor_env,
                                        send, start_processor, stop_processor, unique)


def deadletters(settings, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "salespulse.deadletters", *args], env=processor_env(settings),
                          capture_output=True, text=True, timeout=120)


def order(rep: str, currency: str, price: str) -> tuple[str, dict]:
    order_id, now = unique("ord"), datetime.now(timezone.utc).isoformat()
    return order_id, cloudevent("order.placed", {
        "order_id": order_id, "customer_id": unique("cust"), "rep_id": rep, "currency": currency, "placed_at": now,
        "lines": [{"product": "p1", "quantity": 1, "unit_price": price, "unit_cost": "0"}]})


async def revenue_of(api, rep: str) -> float | None:
    body = (await api.get("/api/v1/kpis/revenue", params={"by": "rep", "period": "day"})).json()
    return {v["key"]: v["value"] for v in body["values"]}.get(rep)


async def test_dead_lettered_events_sent_again_once_fixed_count_once(own):
    settings = own.settings
    bootstrap = settings.kafka_bootstrap_servers
    rep = unique("rep")
    (euro_id, in_euros), (yen_id, in_yen) = order(rep, "EUR", "100.00"), order(rep, "JPY", "1000")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    processor = start_processor(settings, FX_RATES="{}")
    try:
        await send(producer, "sales.orders", euro_id, in_euros)
        await send(producer, "sales.orders", yen_id, in_yen)
        # A webhook letter as the API writes it.
        await producer.send_and_wait(DEADLETTER, b'{"provider": "hubspot"}', key=b"hs-deal-2", headers=[
            ("salespulse.reason", b"no rep record for hubspot owner 7"),
            ("salespulse.source.topic", b"webhooks/hubspot")])
        async with in_process_api(settings) as api:
            async def euros_counted() -> None:
                assert await revenue_of(api, rep) == 100.0
            await eventually(euros_counted, timeout=60)
            letters = await consume(bootstrap, DEADLETTER, lambda r: r.key == yen_id.encode(), count=1)
            assert b"no exchange rate from JPY" in dict(letters[0].headers)["salespulse.reason"]

            summary = deadletters(settings, "summary", "--json")
            assert summary.returncode == 0, summary.stderr
            groups = orjson.loads(summary.stdout)["groups"]
            yen_group = [g for g in groups if "JPY" in g["reason"]]
            assert [(g["source"], g["count"]) for g in yen_group] == [("sales.orders", 1)]

            refused = deadletters(settings, "resend")
            assert refused.returncode == 2 and "--all" in refused.stderr  # no choice: nothing sent

            # The rate added, the processor restarted with it; the order sent back counts.
            stop_processor(processor)
            processor = start_processor(settings, FX_RATES='{"JPY": "0.0062"}')
            dry = deadletters(settings, "resend", "--reason", "jpy", "--dry-run")
            assert dry.returncode == 0 and "would send 1 events (1 to sales.orders)" in dry.stdout, dry.stdout
            for _ in range(2):  # twice: the second finds the order counted already
                sent = deadletters(settings, "resend", "--reason", "JPY")
                assert sent.returncode == 0, sent.stderr
                assert "sent 1 events (1 to sales.orders)" in sent.stdout, sent.stdout

            async def yen_counted() -> None:
                assert await revenue_of(api, rep) == 106.2
                await caught_up(bootstrap, settings.processor_app_id)
            await eventually(yen_counted, timeout=60)
            await asyncio.sleep(2)
            assert await revenue_of(api, rep) == 106.2
            assert len(await consume(bootstrap, DEADLETTER, lambda r: r.key == yen_id.encode(), timeout=5)) == 1

            everything = deadletters(settings, "resend", "--all", "--dry-run")
            assert "not sent: sales.deadletter" in everything.stderr and "webhooks/hubspot" in everything.stderr
            shown = deadletters(settings, "show", "--source", "sales.orders", "--limit", "0")
            [doc] = [orjson.loads(line) for line in shown.stdout.splitlines()]
            assert doc["event"]["data"]["order_id"] == yen_id and doc["source"] == "sales.orders"
    finally:
        stop_processor(processor)
        await producer.stop()
