"""The Faust application: sales.* events -> partition-owned state -> Redis and kpi.updates.

One agent reads every source topic in batches (`take_events`) at concurrency 1, so Faust
never commits an offset past an event still in flight. The domain's Aggregator turns a batch
into row updates; the agent only decodes, routes, writes the table and publishes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

import faust
import orjson
from redis.exceptions import RedisError

from salespulse.contracts.events import ROUTES, SOURCE_TOPICS, InvalidEvent, decode_event
from salespulse.contracts.topics import DEADLETTER, KPI_UPDATES
from salespulse.domain.aggregation import (
    Aggregator,
    RowKey,
    SourceEvent,
    deadletter_key,
    parse_measure_key,
    plan_expiry,
)
from salespulse.domain.directory import Directory
from salespulse.domain.kpis import KPIS_BY_SOURCE
from salespulse.domain.money import CurrencyConverter
from salespulse.domain.periods import SNAPSHOT, bucket_starts
from salespulse.domain.retention import Retention
from salespulse.domain.targets import TargetBook
from salespulse.domain.valuation import value_row
from salespulse.processor import metrics
from salespulse.processor.directory import DirectoryFollower
from salespulse.processor.table import SourcePartitionedTable
from salespulse.readmodel import ReadModel
from salespulse.settings import Settings

log = logging.getLogger(__name__)

TARGETS_CACHE_SECONDS = 1.0
RESYNC_INTERVAL_SECONDS = 2.0


def kpi_update(kpi, row: RowKey, value, as_of: float | None) -> tuple[bytes, bytes]:
    key = f"{kpi.id}/{row.dim}/{row.key}/{row.period}/{row.start or 'now'}"

    def num(x):
        return None if x is None else float(x)

    doc = {
        "kpi": kpi.id, "by": row.dim, "key": row.key, "period": row.period,
        "period_start": row.start or None, "unit": kpi.unit,
        "value": num(value.value), "target": num(value.target), "attainment": num(value.attainment),
        "pace": num(value.pace), "level": value.level,
        "as_of": datetime.fromtimestamp(as_of or time.time(), timezone.utc).isoformat(),
    }
    return key.encode(), orjson.dumps(doc)


class Processor:
    """What the agent does with a batch; holds no Faust-specific logic beyond the table."""

    def __init__(self, app: faust.App, settings: Settings, table, deadletter, readmodel: ReadModel) -> None:
        self.app = app
        self.settings = settings
        self.tz = ZoneInfo(settings.business_timezone)
        self.directory = Directory()
        self.follower = DirectoryFollower(settings.kafka_bootstrap_servers, self.directory)
        self.retention = Retention(settings.bucket_retention_days, settings.entity_retention_days)
        self.aggregator = Aggregator(self.tz, CurrencyConverter(settings.reporting_currency, settings.fx_rates),
                                     self.directory, settings.customer_activity_days, self.retention)
        self.expired_in_redis: list = []  # expired rows Redis has not dropped yet
        self.table = table
        self.deadletter = deadletter
        self.readmodel = readmodel
        self.dirty: set[str] = set()  # source partitions whose Redis rows may be stale
        self.directory_dirty = False  # Redis's copy of the directory may be stale
        self.publish_lock = asyncio.Lock()
        self._book: TargetBook | None = None
        self._book_read_at = 0.0

    async def dead_letter(self, message, reason: str) -> None:
        """Send the original bytes with the reason; once per source offset, even on replay."""
        key = deadletter_key(message.partition, message.topic)
        done = self.table.get(key)
        if done is not None and message.offset <= done["o"]:
            return
        headers = [
            ("salespulse.reason", reason.encode()),
            ("salespulse.source.topic", message.topic.encode()),
            ("salespulse.source.partition", str(message.partition).encode()),
            ("salespulse.source.offset", str(message.offset).encode()),
        ]
        await self.deadletter.send(key=message.key, value=message.value, headers=headers)
        self.table[key] = {"o": message.offset}
        metrics.EVENTS.labels(message.topic, "deadlettered").inc()
        log.warning("dead-lettered %s[%s]@%s: %s", message.topic, message.partition, message.offset, reason)

    async def handle(self, events: Iterable[Any]) -> None:
        started = time.perf_counter()
        messages: dict[tuple[str, int, int], Any] = {}
        valid: list[SourceEvent] = []
        for event in events:
            message = event.message
            try:
                envelope = decode_event(message.value)
                route = ROUTES[envelope.type]
                if route.topic != message.topic:
                    raise InvalidEvent(f"{envelope.type} belongs on {route.topic}, not {message.topic}")
            except InvalidEvent as exc:
                await self.dead_letter(message, str(exc))
                continue
            messages[(message.topic, message.partition, message.offset)] = message
            valid.append(SourceEvent(message.topic, message.partition, message.offset, envelope))

        await self.sync_directory()
        result = self.aggregator.apply(self.table, valid)
        # Measure rows first, then entity rows: one changelog partition keeps them in order.
        written = await self.table.write(result.measures)
        written += await self.table.write(result.entities)
        for event, reason in result.rejected:
            await self.dead_letter(messages[(event.topic, event.partition, event.offset)], reason)
        for (topic, outcome), n in result.outcomes.items():
            metrics.EVENTS.labels(topic, outcome).inc(n)
        metrics.BATCH_SIZE.observe(len(messages) + len(result.rejected))
        await self.publish(result.measures)
        await asyncio.gather(*written)  # durable before take_events acks the batch
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
        metrics.STATE_ROWS.set(len(self.table))
        self.observe_progress(messages.values())

    def observe_progress(self, messages: Iterable[Any]) -> None:
        """Latency of each event from its write to Kafka, and what is left on its partition."""
        now, last = time.time(), {}
        for message in messages:
            if message.timestamp:
                metrics.EVENT_LATENCY.observe(max(0.0, now - message.timestamp))
            last[message.tp] = max(last.get(message.tp, -1), message.offset)
        for tp, offset in last.items():
            try:
                highwater = self.app.consumer.highwater(tp)
            except Exception:  # noqa: BLE001 - not known yet: leave the gauge as it was
                continue
            if highwater is not None:
                metrics.LAG.labels(tp.topic, str(tp.partition)).set(max(0, highwater - offset - 1))

    async def sync_directory(self) -> None:
        """Bring the directory up to date, and Redis's copy of it for the API's reads."""
        changed = await self.follower.sync()
        if not changed and not self.directory_dirty:
            return
        try:
            if self.directory_dirty:  # whatever Redis missed, deletions included
                await self.readmodel.replace_records(self.directory.docs())
            else:
                await self.readmodel.write_records(changed)
            self.directory_dirty = False
        except (RedisError, OSError) as exc:
            self.directory_dirty = True
            log.warning("Redis unavailable (%s); the directory will be copied when it is back", exc)

    async def target_book(self) -> TargetBook:
        now = time.monotonic()
        if self._book is None or now - self._book_read_at > TARGETS_CACHE_SECONDS:
            self._book = await self.readmodel.target_book()
            self._book_read_at = now
        return self._book

    async def publish(self, measure_rows: dict[str, dict]) -> None:
        """Copy changed partial rows to Redis, then emit the merged KPI values they change in
        the current buckets (today, this week, month, quarter, year, and `now`): what screens
        and alert rules watch. A closed bucket changed by a late event or a replay is in Redis
        for every reading, not pushed: on a replay that was dozens of messages per event."""
        if not measure_rows:
            return
        now = datetime.now(timezone.utc)
        current = {kind: start.isoformat() for kind, start in bucket_starts(now, self.tz).items()}
        rows, touched = [], {}
        for key, row in measure_rows.items():
            partition, topic, row_key = parse_measure_key(key)
            rows.append((topic, partition, row_key, row["m"]))
            if row_key.period == SNAPSHOT or current.get(row_key.period) == row_key.start:
                touched.setdefault(row_key, set()).add(topic)
        async with self.publish_lock:
            try:
                await self.readmodel.write_rows(rows)
                merged = await self.readmodel.read_rows(touched)
                book = await self.target_book()
            except (RedisError, OSError) as exc:
                self.dirty.update(f"{topic}/{partition}" for topic, partition, _, _ in rows)
                metrics.READ_MODEL_FAILURES.inc()
                log.warning("Redis unavailable (%s); %d rows will be copied when it is back", exc, len(rows))
                return
        # The producer directly, not Faust's topic.send: a fraction of the cost per message, and
        # the batch's offsets are committed only once every update is acknowledged.
        producer, sent = self.app.producer, []
        for row_key, topics in touched.items():
            measures = merged[row_key]
            kpis = {kpi.id: kpi for topic in topics for kpi in KPIS_BY_SOURCE[topic]}
            for kpi in kpis.values():
                if (not kpi.live or kpi.snapshot != (row_key.period == SNAPSHOT)
                        or row_key.dim not in kpi.dimensions):
                    continue
                value = value_row(kpi, row_key, measures, book, now, self.tz)
                key, doc = kpi_update(kpi, row_key, value, measures.as_of)
                sent.append(await producer.send(KPI_UPDATES, key, doc, None, None, None))
        await asyncio.gather(*sent)
        metrics.KPI_UPDATES.inc(len(sent))

    async def expire(self) -> None:
        """Drop the rows retention is done with, from the table (its changelog) and Redis, and
        fold customers' old orders into their history (no figure changes, so no row is booked)."""
        expiry = plan_expiry(dict(self.table.items()), self.retention, datetime.now(timezone.utc), self.tz,
                        self.settings.customer_activity_days)
        await asyncio.gather(*await self.table.write(expiry.rewrite, expiry.drop))
        rows = expiry.rows
        if expiry.drop or expiry.rewrite:
            metrics.EXPIRED_ROWS.labels("measure").inc(len(rows))
            metrics.EXPIRED_ROWS.labels("entity").inc(len(expiry.drop) - len(rows))
            metrics.FROZEN_CUSTOMERS.inc(len(expiry.rewrite))
            log.info("retention dropped %d measure rows and %d entity rows, froze the old orders of %d customers",
                     len(rows), len(expiry.drop) - len(rows), len(expiry.rewrite))
        for kind, n in expiry.unmatched.items():
            metrics.UNMATCHED_EXPIRED.labels(kind).inc(n)
            log.warning("retention dropped %d %s rows that never met their %s (a cancellation or payment for one "
                        "older than ENTITY_RETENTION_DAYS, or never sent)", n, kind, kind)
        self.expired_in_redis += rows
        if not self.expired_in_redis:
            return
        async with self.publish_lock:
            try:
                await self.readmodel.delete_rows(self.expired_in_redis)
                self.expired_in_redis = []
            except (RedisError, OSError) as exc:
                log.warning("Redis unavailable (%s); expired rows will be dropped from it later", exc)

    def active_sources(self) -> set[str]:
        partitions = {tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic in SOURCE_TOPICS}
        return {f"{topic}/{p}" for topic in SOURCE_TOPICS for p in partitions}

    async def resync(self) -> None:
        """Copy all rows of owned partitions that Redis lacks (it restarted empty) or missed."""
        try:
            await self.sync_directory()  # also when no event flows, for the API's reads
        except Exception as exc:  # noqa: BLE001 - the next batch retries it, and fails loudly
            log.warning("could not read the directory topics (%s); will retry", exc)
        sources = self.active_sources()
        if not sources:
            return
        async with self.publish_lock:
            try:
                todo = (sources - await self.readmodel.synced_partitions()) | (self.dirty & sources)
                if not todo:
                    return
                rows = []
                for key, row in list(self.table.items()):
                    parsed = parse_measure_key(key)
                    if parsed and f"{parsed[1]}/{parsed[0]}" in todo:
                        rows.append((parsed[1], parsed[0], parsed[2], row["m"]))
                for i in range(0, len(rows), 5000):
                    await self.readmodel.write_rows(rows[i:i + 5000])
                await self.readmodel.replace_records(self.directory.docs())  # Redis may be new
                await self.readmodel.mark_synced(todo)
            except (RedisError, OSError) as exc:
                log.warning("Redis still unavailable (%s); will retry", exc)
                return
            self.dirty -= todo
            log.info("copied %d rows of %d partitions to Redis", len(rows), len(todo))


def broker_credentials(settings: Settings):
    """Faust's form of KAFKA_SECURITY_PROTOCOL and its credentials (None: plaintext)."""
    options = settings.kafka_options()
    protocol = options["security_protocol"]
    if protocol == "PLAINTEXT":
        return None
    if protocol == "SSL":
        return faust.SSLCredentials(options["ssl_context"])
    return faust.SASLCredentials(username=options["sasl_plain_username"], password=options["sasl_plain_password"],
                                 mechanism=options["sasl_mechanism"], ssl_context=options.get("ssl_context"))


def create_app(settings: Settings) -> faust.App:
    brokers = ";".join(f"kafka://{h.strip()}" for h in settings.kafka_bootstrap_servers.split(","))
    app = faust.App(
        settings.processor_app_id,
        broker=brokers,
        store="memory://",
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication_factor,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=1.0,
        producer_acks=-1,
        web_enabled=False,
        datadir=str(settings.data_dir / "processor"),
        broker_credentials=broker_credentials(settings),
    )
    raw = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}
    sources = app.topic(*SOURCE_TOPICS, partitions=settings.topic_partitions, **raw)
    deadletter = app.topic(DEADLETTER, **raw)
    table = app.tables.add(SourcePartitionedTable(  # what app.Table() does, with our class
        app, name="state", beacon=app.tables.beacon, partitions=settings.topic_partitions,
        schema=faust.Schema(key_serializer="json", value_serializer="json"),
    ))
    processor = Processor(app, settings, table, deadletter, ReadModel.from_url(settings.redis_url))
    app.processor = processor

    @app.agent(sources, concurrency=1, name="aggregate")
    async def aggregate(stream):
        async for events in stream.take_events(settings.processor_batch_size, settings.processor_batch_seconds):
            await processor.handle(events)

    @app.on_before_shutdown.connect
    async def close_directory(app, **kwargs) -> None:
        await processor.follower.stop()

    @app.timer(RESYNC_INTERVAL_SECONDS)
    async def keep_read_model_complete() -> None:
        await processor.resync()

    @app.timer(settings.retention_check_seconds)
    async def keep_state_bounded() -> None:
        await processor.expire()

    return app
