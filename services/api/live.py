"""The live feed behind GET /api/v1/stream: a KPI change or an alert change, pushed.

One `LiveHub` per API process follows the read model's version (readmodel.VERSION, bumped in
the same round trip as every row, directory record or target written), every POLL_SECONDS,
for the KPIs, and the records of kpi.alerts for the alerts (a fetch the broker answers as one
arrives). When one moves, the hub bumps its own version of that kind and wakes the streams,
which read again what their screen shows (through the same readings as GET /kpis, so KPIs
computed when read are pushed too) and send what differs. Readings are shared between the
streams of one version, so a hundred screens on the same board cost one reading per change,
and KPI readings are redone at most every MIN_WAKE_SECONDS.

Every replica sees every change (nothing is consumed, no offset committed); one reconnecting
to Redis reads everything again, and the alert changes made while its Kafka connection was
down are fetched once it is back. Until 2026-11-24 the KPI side followed kpi.updates' end
offsets: a screen then waited for the processor's next push (under load, pushes were paced to
a quarter of a worker's time: every 0.3 s at 5,000 events/s) where the rows were in Redis
already.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from salespulse.api.reading import Readings
from salespulse.contracts.topics import KPI_ALERTS, partitions_of
from salespulse.readmodel import ReadModel
from salespulse.settings import kafka_client

log = logging.getLogger(__name__)

POLL_SECONDS = 0.02  # between two looks at each counter (one small request each)
MIN_WAKE_SECONDS = 0.1  # KPI readings redone at most this often: each batch of each worker moves the version


class LiveHub:
    def __init__(self, bootstrap_servers: str, readings: Readings | None, readmodel: ReadModel) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.readings = readings
        self.readmodel = readmodel
        self.kpi_version = 0
        self.alert_version = 0
        self._kpis_woken = 0.0  # monotonic time of the last KPI version bump
        self._changed = asyncio.Event()
        self._cache: dict[tuple[str, str, str], tuple[int, float, asyncio.Task]] = {}

    async def run(self) -> None:
        """Follow both counters for as long as the API runs."""
        await asyncio.gather(self.follow_rows(), self.follow_alerts())

    async def follow_rows(self) -> None:
        """Wake the streams when the read model's version moves; after Redis was away too."""
        seen: int | None = None
        while True:
            try:
                version = await self.readmodel.version()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - screens keep their values; retry
                if seen is not None:
                    log.warning("live feed lost Redis (%s); retrying", exc)
                seen = None  # anything may change meanwhile: read everything again once back
                await asyncio.sleep(1)
                continue
            if version != seen and time.monotonic() - self._kpis_woken >= MIN_WAKE_SECONDS:
                seen = version
                self._kpis_woken = time.monotonic()
                self.kpi_version += 1
                self._notify()
            await asyncio.sleep(POLL_SECONDS)

    async def follow_alerts(self) -> None:
        """Wake the streams when kpi.alerts grows; reconnect when Kafka goes away.

        The hub fetches the topic's new records (and drops them): the broker holds the fetch
        until one arrives, then answers at once. Until 2026-12-07 it asked for the end offsets
        every POLL_SECONDS: 50 requests a second, the largest part of an idle API's CPU."""
        while True:
            consumer = AIOKafkaConsumer(**kafka_client(self.bootstrap_servers), enable_auto_commit=False)
            try:
                await consumer.start()
                numbers = await partitions_of(self.bootstrap_servers, KPI_ALERTS)
                partitions = [TopicPartition(KPI_ALERTS, p) for p in numbers]
                if not partitions:
                    raise RuntimeError("kpi.alerts does not exist yet")
                consumer.assign(partitions)
                await consumer.seek_to_end(*partitions)
                for tp in partitions:  # the ends as of now, before the streams read: anything later is fetched
                    await consumer.position(tp)
                # Alerts may have changed while away: every stream reads them again.
                self.alert_version += 1
                self._notify()
                while True:
                    if any((await consumer.getmany(timeout_ms=1000)).values()):
                        self.alert_version += 1
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

    def versions(self) -> tuple[int, int]:
        """(KPI version, alert version): what a stream has read, for `changed`."""
        return self.kpi_version, self.alert_version

    async def changed(self, timeout: float, since: tuple[int, int] | None = None) -> None:
        """Return at the next change, at once if there was one after `since` (versions()
        taken before the caller's last read), or after `timeout` seconds. Without `since`, a
        change that came while the caller was reading or sending would be missed until the
        next one: a screen showed a value one event old until its heartbeat (15 s) when no
        other event followed (seen in the wallboard test)."""
        if since is not None and since != self.versions():
            return
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
