"""The API's live hub on servers of its own: row writes and alerts wake the streams."""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaProducer

from salespulse.api.live import MIN_WAKE_SECONDS, POLL_SECONDS, LiveHub
from salespulse.contracts.topics import KPI_ALERTS
from salespulse.domain.aggregation import RowKey
from salespulse.readmodel import ReadModel
from tests.integration.conftest import eventually


async def test_row_writes_bump_the_kpi_version_alerts_the_alert_version(own):
    bootstrap = own.settings.kafka_bootstrap_servers
    readmodel = ReadModel.from_url(own.settings.redis_url)
    hub = LiveHub(bootstrap, readings=None, readmodel=readmodel)  # no stream reads here
    watching = asyncio.create_task(hub.run())
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    row = RowKey("day", "2026-11-24", "rep", "r1")

    async def write(orders: int) -> None:
        await readmodel.write_rows([(0, row, {"orders": orders})])

    try:
        async def connected() -> None:  # on connecting, every stream reads KPIs and alerts again
            assert (hub.kpi_version, hub.alert_version) == (1, 1)
        await eventually(connected, timeout=30)

        woken = asyncio.create_task(hub.changed(30))
        await write(1)
        await asyncio.wait_for(woken, 10)  # the streams were woken, not timed out
        assert (hub.kpi_version, hub.alert_version) == (2, 1)  # a KPI change is not an alert

        # A burst of writes (a batch of each worker every few ms) wakes the streams at most
        # every MIN_WAKE_SECONDS, and the last write is never left unseen.
        kpis, started = hub.kpi_version, time.monotonic()
        for n in range(40):
            await write(n)
            await asyncio.sleep(POLL_SECONDS / 2)
        burst = time.monotonic() - started
        await asyncio.sleep(MIN_WAKE_SECONDS * 3)
        wakes = hub.kpi_version - kpis
        assert 1 <= wakes <= burst / MIN_WAKE_SECONDS + 2, (wakes, burst)
        settled = hub.kpi_version
        await asyncio.sleep(MIN_WAKE_SECONDS * 3)
        assert hub.kpi_version == settled  # nothing written since: no wake

        woken = asyncio.create_task(hub.changed(30))
        await producer.send_and_wait(KPI_ALERTS, b"{}", key=b"rule-1/rep/r1/day")
        await asyncio.wait_for(woken, 10)

        async def alert_seen() -> None:
            assert hub.alert_version == 2
        await eventually(alert_seen, timeout=10)
        assert hub.kpi_version == settled  # an alert is not a KPI change

        # Redis away and back (empty: the processors copy their rows again): everything is read again.
        await asyncio.to_thread(own.redis.stop)
        await asyncio.sleep(1.5)
        await asyncio.to_thread(own.redis.start)

        async def read_again() -> None:
            assert hub.kpi_version > settled
        await eventually(read_again, timeout=30)
    finally:
        watching.cancel()
        await asyncio.gather(watching, return_exceptions=True)
        await producer.stop()
        await readmodel.close()
