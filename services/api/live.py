"""The live feed behind GET /api/v1/stream: a KPI change or an alert change, pushed.

One `LiveHub` per API process watches the end offsets of kpi.updates and kpi.alerts (no
consumer group: every API replica sees every change, so any replica can serve any screen). A
message on kpi.updates means some KPI rows changed; the hub bumps a version and wakes the
streams, which read again what their screen shows (through the same readings as GET /kpis, so
KPIs computed when read are pushed too) and send what differs. Readings are shared between the
streams of one version, so a hundred screens on the same board cost one reading per change.

The messages themselves are not read: only their arrival matters, and fetching them (every
live KPI of every changed row: 22 a live event at 1,000 events/s) took over a third of an API
process's busy time at 5,000 events/s. The end offsets are asked for every POLL_SECONDS instead.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from salespulse.api.reading import Readings
from salespulse.contracts.topics import KPI_ALERTS, KPI_UPDATES, partitions_of
from salespulse.settings import kafka_client

log = logging.getLogger(__name__)

POLL_SECONDS = 0.02  # between two looks at the topics' end offsets (one small request each)


class LiveHub:
    def __init__(self, bootstrap_servers: str, readings: Readings) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.readings = readings
        self.kpi_version = 0
        self.alert_version = 0
        self._changed = asyncio.Event()
        self._cache: dict[tuple[str, str, str], tuple[int, float, asyncio.Task]] = {}

    async def run(self) -> None:
        """Watch both topics for as long as the API runs; reconnect when Kafka goes away."""
        while True:
            consumer = AIOKafkaConsumer(**kafka_client(self.bootstrap_servers), enable_auto_commit=False)
            try:
                await consumer.start()
                partitions = [TopicPartition(topic, p) for topic in (KPI_UPDATES, KPI_ALERTS)
                              for p in await partitions_of(self.bootstrap_servers, topic)]
                if {tp.topic for tp in partitions} != {KPI_UPDATES, KPI_ALERTS}:
                    raise RuntimeError("kpi.updates or kpi.alerts does not exist yet")
                ends = await consumer.end_offsets(partitions)
                # Anything may have changed while away: every stream reads again (a new version,
                # or the readings cached for this one would be sent again, alerts not re-read).
                self.kpi_version += 1
                self.alert_version += 1
                self._notify()
                while True:
                    await asyncio.sleep(POLL_SECONDS)
                    now = await consumer.end_offsets(partitions)
                    moved = {tp.topic for tp in partitions if now[tp] != ends[tp]}
                    ends = now
                    if moved:
                        self.kpi_version += KPI_UPDATES in moved
                        self.alert_version += KPI_ALERTS in moved
                        self._notify()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - screens keep their values; retry
                log.warning("live feed interrupted (%s); retrying", exc)
                await asyncio.sleep(1)
            finally:
                await consumer.stop()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def changed(self, timeout: float) -> None:
        """Return at the next change, or after `timeout` seconds."""
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except asyncio.TimeoutError:
            pass

    async def reading(self, kpi: str, by: str, period: str, max_age: float = 10.0) -> dict[str, Any]:
        """GET /kpis/{kpi}?by=&period= for today, shared by every stream at this version (and
        read again after `max_age` seconds: a day ends, a window moves, without any event)."""
        key = (kpi, by, period)
        cached = self._cache.get(key)
        now = time.monotonic()
        if (cached is None or cached[0] != self.kpi_version or now - cached[1] > max_age
                or (cached[2].done() and cached[2].exception() is not None)):
            cached = (self.kpi_version, now, asyncio.ensure_future(self.readings.reading(kpi, by, period, None)))
            self._cache[key] = cached
        return await asyncio.shield(cached[2])
