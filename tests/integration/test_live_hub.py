"""The API's live hub on a broker of its own: each topic's new messages wake the streams."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer

from salespulse.api.live import POLL_SECONDS, LiveHub
from salespulse.contracts.topics import KPI_ALERTS, KPI_UPDATES
from tests.integration.conftest import eventually


async def test_new_messages_on_each_topic_bump_that_topics_version(own):
    bootstrap = own.settings.kafka_bootstrap_servers
    hub = LiveHub(bootstrap, readings=None)  # no stream reads here
    watching = asyncio.create_task(hub.run())
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        async def connected() -> None:  # on connecting, every stream reads KPIs and alerts again
            assert (hub.kpi_version, hub.alert_version) == (1, 1)
        await eventually(connected, timeout=30)

        async def kpis_seen() -> None:
            await producer.send_and_wait(KPI_UPDATES, b"{}", key=b"revenue/rep/r1/day/2026-11-24")
            assert hub.kpi_version >= 2
        await eventually(kpis_seen, timeout=10, interval=0.5)
        await asyncio.sleep(POLL_SECONDS * 10)  # the last of them seen too
        kpis, alerts = hub.kpi_version, hub.alert_version
        assert alerts == 1  # a KPI change is not an alert

        woken = asyncio.create_task(hub.changed(30))
        await producer.send_and_wait(KPI_ALERTS, b"{}", key=b"rule-1/rep/r1/day")
        await asyncio.wait_for(woken, 10)  # the streams were woken, not timed out

        async def alert_seen() -> None:
            assert hub.alert_version == alerts + 1
        await eventually(alert_seen, timeout=10)
        assert hub.kpi_version == kpis  # an alert is not a KPI change
    finally:
        watching.cancel()
        await asyncio.gather(watching, return_exceptions=True)
        await producer.stop()
