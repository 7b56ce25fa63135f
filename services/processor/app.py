"""The stream processor: sales.* events -> partition-owned state -> Redis and kpi.updates.

A Worker is one member of the PROCESSOR_APP_ID consumer group. Kafka assigns it source
partitions (the same partition numbers of every sales.* topic together: they are
co-partitioned); before it handles an event of a partition it restores that partition's rows
from the state changelog, and it commits an offset only once every row the event changed is
durable in the changelog. So a crash at any point loses nothing (Kafka redelivers from the
committed offset) and counts nothing twice (a restore keeps a batch's rows of a partition all
or none, and rows remember the source offset they last applied). One batch is handled at a
time: the processor is single-threaded per worker; more workers share the partitions.

The Processor turns a batch into rows with the domain's Aggregator; it only decodes, routes,
writes the state and publishes.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from datetime import date, datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.structs import ConsumerRecord
from redis.exceptions import RedisError

from salespulse.contracts.events import ROUTES, SOURCE_TOPICS, InvalidEvent, decode_event
from salespulse.contracts.topics import DEADLETTER, KPI_UPDATES, state_changelog
from salespulse.domain.aggregation import (
    Aggregator,
    BatchResult,
    Cell,
    RowKey,
    SourceEvent,
    deadletter_key,
    key_partition,
    merge_topic_rows,
    parse_measure_key,
    plan_expiry,
    watermarks,
)
from salespulse.domain.directory import Directory
from salespulse.domain.kpis import KPIS_BY_SOURCE
from salespulse.domain.money import CurrencyConverter
from salespulse.domain.periods import SNAPSHOT, bucket_starts, progress
from salespulse.domain.retention import Retention
from salespulse.domain.targets import TargetBook
from salespulse.domain.valuation import value_row
from salespulse.processor import metrics
from salespulse.processor.directory import DirectoryFollower
from salespulse.processor.assignment import StandbyAssignor
from salespulse.processor.batching import Batches, partition_of, take
from salespulse.processor.membership import Fenced, Lease, heartbeat
from salespulse.processor.poison import apply_setting_apart
from salespulse.processor.state import Standby, State
from salespulse.readmodel import ReadModel
from salespulse.settings import Settings

log = logging.getLogger(__name__)

TARGETS_CACHE_SECONDS = 1.0
APPLY_CHUNK = 500  # events decoded or aggregated between two turns of the event loop


async def let_others_run() -> None:
    """Yield to heartbeats, fetches and timers. Not sleep(0): that requeues this task ahead of
    the timers that fall due meanwhile, so they would wait for the next chunk as well."""
    await asyncio.sleep(0.001)
RESYNC_INTERVAL_SECONDS = 2.0
FENCED_PAUSE_SECONDS = 1.0  # after a batch dropped unwritten (membership.Fenced), before the next
MAX_RETRY_SECONDS = 30.0  # the longest wait between two attempts to restore partitions
FRESH_FETCH_SECONDS = 0.02  # the longest a batch waits for the records newer than the consumer held (take)
LAG_SECONDS = 1.0  # between two readings of the lag gauge (Worker.observe_lag)
PUSH_SHARE = 0.05  # of a worker's time, at most, spent pushing kpi.updates (Worker.pushing)

# Python's cycle collector runs a young collection every 700 container allocations and a full
# one (every object: the worker's rows are millions) every 100 young ones: on a long replay that
# cost grew with the state (a 300,000-event replay, domain code only: 281 us an event at the
# end with the defaults, 205 with fewer). The rows hold no reference cycles; refcounting frees
# them. A young collection's pause grows with the first threshold and a middle one's with the
# first two (it walks what survived them): at (100_000, 20, 100), 90-130 ms and 0.8 s, each
# holding up live events; at these, 8 and 80 ms, for more of them: 4 -> 8 us an event in all
# (150,000 live events after a 300,000-event history, in-process; in a bench worker at 2,500
# events/s, 1.3 -> 2.3 s a minute), and 3 us an event more on a replay (the bench's first
# 100,000 events, domain code only: 0.73 -> 1.05 s of collections, some 3 % of its time).
# (100_000, 2, 10_000) kept the replay's cost but still paused 0.4 s. A full collection still
# comes every 200 million net allocations, as before.
GC_THRESHOLDS = (10_000, 20, 1000)


def tune_gc() -> None:
    gc.set_threshold(*GC_THRESHOLDS)


class GcTimer:
    """Times each cyclic collection (gc.callbacks) into GC_SECONDS, and warns of one that held
    the worker for over a second: the loop watchdog says that the loop stalled, this says
    whether the collector was why.

    And after each full collection it freezes what survived (gc.freeze): the state is millions
    of long-lived objects, and a full collection walked every one of them (1.1 s over 300,000
    events' state, 2-3 s pauses in a 1,000,000-event bench), while they hold no reference
    cycles and are freed by refcounting. Frozen, they are skipped, so a full collection walks
    only what was made since the last one (0.05 s after 50,000 more events). The price: an
    object alive at a full collection that later dies in a reference cycle is never freed
    (a batch's few in-flight ones: valid events make no cyclic garbage, Collections)."""

    def __init__(self) -> None:
        self.started = 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self.started = time.perf_counter()
            return
        took = time.perf_counter() - self.started
        metrics.GC_SECONDS_BY_GENERATION[info["generation"]].observe(took)
        if took > 1.0:
            log.warning("a generation-%d garbage collection took %.1f s (%d objects collected)",
                        info["generation"], took, info["collected"])
        if info["generation"] == 2:
            gc.freeze()
            metrics.GC_FROZEN.set(gc.get_freeze_count())


def settle_restored() -> None:
    """After a restore: a full collection now, and what survives it frozen (as GcTimer does),
    rather than one walking the restored rows at some moment of the live load that follows."""
    started = time.perf_counter()
    gc.collect()
    gc.freeze()
    metrics.GC_FROZEN.set(gc.get_freeze_count())
    log.info("full garbage collection after the restore: %.1f s, %d objects frozen", time.perf_counter() - started,
             gc.get_freeze_count())


YOUNG_GC_SECONDS = 1.0  # the longest a worker's cyclic garbage waits for a collection (Collections)


class Collections:
    """No cyclic collection while a batch is handled; a young collection at the end of a batch
    once YOUNG_GC_SECONDS have passed since the last, and what survives it frozen (as GcTimer
    does after a full one). In between the collector stays off.

    A batch keeps its decoded events, their contributions and its rows alive until it ends, so
    the young collections the allocator started during it walked all of them, each time one
    started (a 1,000-event batch: two or three of 8-12 ms), and the young collections promoted
    the batch's rows to be walked again by the middle ones (70-100 ms). At a batch's end the
    transient objects are gone: a young collection walks only what the batches since the last
    one left behind and still hold, and frees their cyclic garbage, and freezing (constant
    time) keeps the next collections from walking the survivors again. One at the end of every
    batch walked each batch's new rows and states (some 11,500 objects for 1,000 live events,
    10 ms), while a live worker replaces the same rows batch after batch: the rows a batch
    leaves are mostly gone a few batches later, freed by refcounting, never walked. In-process,
    15,000 live events in batches of 300 after a 60,000-event history, two runs each: 7.4 and
    12.0 us an event of collections at every batch's end, 3.6 and 4.4 at every 16th.
    Valid events make no cyclic garbage (tests/unit/test_gc_timer.py); the loop's tasks
    (aiokafka's, redis-py's) and bad input make some, which waits up to YOUNG_GC_SECONDS.

    As with GcTimer's freezing, an object alive at a collection that later dies in a reference
    cycle is never freed (an ad hoc check found none that grew with batches)."""

    def __init__(self, seconds: float = YOUNG_GC_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds, self.clock = seconds, clock
        self.last = clock()
        self.holding = False  # the collector is off because of a batch, until the next collection

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        if not gc.isenabled() and not self.holding:  # someone else decides (a test, a debugger)
            yield
            return
        gc.disable()
        self.holding = True
        try:
            yield
        finally:
            self.collect_if_due()

    def collect_if_due(self) -> None:
        """The young collection, if one is due (the worker's loop asks between batches too)."""
        if self.holding and self.clock() - self.last >= self.seconds:
            self.release()
            gc.collect(0)
            gc.freeze()
            self.last = self.clock()

    def release(self) -> None:
        """The collector on again, if a batch had turned it off."""
        if self.holding:
            self.holding = False
            gc.enable()


def watch_gc() -> None:
    if not any(isinstance(callback, GcTimer) for callback in gc.callbacks):
        gc.callbacks.append(GcTimer())


class Laps:
    """Times the phases of a batch one after the other (salespulse_processor_batch_phase_seconds)."""

    def __init__(self, started: float) -> None:
        self.last = started

    def __call__(self, phase: str) -> None:
        now = time.perf_counter()
        metrics.BATCH_PHASE_SECONDS.labels(phase).observe(now - self.last)
        self.last = now


def _num(x):
    return None if x is None else float(x)


def kpi_update(kpi, row: RowKey, value, as_of: str) -> tuple[bytes, bytes]:
    """A kpi.updates record; `as_of` is the ISO time of the row's newest part."""
    key = f"{kpi.id}/{row.dim}/{row.key}/{row.period}/{row.start or 'now'}"
    doc = {
        "kpi": kpi.id, "by": row.dim, "key": row.key, "period": row.period,
        "period_start": row.start or None, "unit": kpi.unit,
        "value": _num(value.value), "target": _num(value.target), "attainment": _num(value.attainment),
        "pace": _num(value.pace), "level": value.level, "as_of": as_of,
    }
    return key.encode(), orjson.dumps(doc)


DEFAULT_PARTITIONER = DefaultPartitioner()


class KeyPartitioner:
    """Partition by CRC-32 of the key (C speed) rather than murmur2 (aiokafka's is pure Python,
    a tenth of a worker's time). This producer's keyed topics, kpi.updates and sales.deadletter,
    are read whole by their consumers: only a key's order matters, which any fixed hash keeps.
    Changelog records name their partition."""

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:
            return DEFAULT_PARTITIONER(key, all_partitions, available)
        return partition_of(key, sorted(all_partitions))


class Processor:
    """What a worker does with a batch of source records: decode, aggregate, write, publish."""

    def __init__(self, settings: Settings, producer: AIOKafkaProducer, state: State, readmodel: ReadModel) -> None:
        self.settings = settings
        self.producer = producer
        self.tz = ZoneInfo(settings.business_timezone)
        self.directory = Directory()
        self.follower = DirectoryFollower(settings.kafka_bootstrap_servers, self.directory)
        self.retention = Retention(settings.bucket_retention_days, settings.entity_retention_days)
        self.aggregator = Aggregator(self.tz, CurrencyConverter(settings.reporting_currency, settings.fx_rates),
                                     self.directory, settings.customer_activity_days, self.retention)
        self.gone_from_redis: list = []  # rows Redis still has, gone from the state (expired or undone)
        self.table = state
        self.readmodel = readmodel
        self.owned: set[int] = set()  # source partition numbers whose rows are restored here
        self.watermarks: dict[tuple[str, int], int] = {}  # of owned sources (Aggregator.apply)
        self.dirty: set[int] = set()  # source partitions whose Redis rows may be stale
        self.directory_dirty = False  # Redis's copy of the directory may be stale
        self.publish_lock = asyncio.Lock()
        self.unpushed: dict[RowKey, set[str]] = {}  # current rows changed since the last kpi.updates push
        self._book: TargetBook | None = None
        self._book_read_at = 0.0

    async def dead_letter(self, message: ConsumerRecord, reason: str, bug: Exception | None = None) -> list:
        """Send the original bytes with the reason; once per source offset, even on replay.
        Returns the sends to await before the offset is committed. `bug`: the exception of the
        processor's code the event raised (set_apart), logged with its traceback."""
        key = deadletter_key(message.partition, message.topic)
        done = self.table.get(key)
        if done is not None and message.offset <= done["o"]:
            return []
        headers = [
            ("salespulse.reason", reason.encode()),
            ("salespulse.source.topic", message.topic.encode()),
            ("salespulse.source.partition", str(message.partition).encode()),
            ("salespulse.source.offset", str(message.offset).encode()),
        ]
        sent = await self.producer.send(DEADLETTER, message.value, key=message.key, headers=headers)
        written = await self.table.write({key: {"o": message.offset}})
        metrics.EVENTS.labels(message.topic, "deadlettered").inc()
        if bug is None:
            log.warning("dead-lettered %s[%s]@%s: %s", message.topic, message.partition, message.offset, reason)
        else:
            log.error("dead-lettered %s[%s]@%s, a bug: %s", message.topic, message.partition, message.offset, reason,
                      exc_info=bug)
        return [sent, *written]

    async def set_apart(self, message: ConsumerRecord, exc: Exception, step: str) -> list:
        """Dead-letter an event the processor's code raised on (poison.py), its traceback logged."""
        metrics.FAILED_EVENTS.labels(message.topic).inc()
        return await self.dead_letter(message, f"could not be {step}: {type(exc).__name__}: {exc} "
                                               "(a bug of the processor; its log has the traceback)", bug=exc)

    async def handle(self, records: Iterable[ConsumerRecord]) -> None:
        """Apply a batch: its rows are staged for the changelog (durable at the worker's next
        flush) and copied to Redis; its dead letters are sent and durable once this returns.
        Raises membership.Fenced if the group dropped this worker (its rows may be staged:
        the caller puts them back, State.unstage)."""
        started = time.perf_counter()
        lap = Laps(started)
        # Every event of the batch was produced before this point, so the directory as of now has
        # every change acknowledged before any of them: its round trip overlaps the decoding.
        directory_synced = asyncio.ensure_future(self.sync_directory())
        await asyncio.sleep(0)  # it sends its request now (a batch under APPLY_CHUNK never yields)
        messages: dict[tuple[str, int, int], ConsumerRecord] = {}
        valid: list[SourceEvent] = []
        pending: list = []
        try:
            for n, message in enumerate(records, 1):
                if n % APPLY_CHUNK == 0:
                    await let_others_run()
                try:
                    envelope = decode_event(message.value)
                    route = ROUTES[envelope.type]
                    if route.topic != message.topic:
                        raise InvalidEvent(f"{envelope.type} belongs on {route.topic}, not {message.topic}")
                except InvalidEvent as exc:
                    pending += await self.dead_letter(message, str(exc))
                    continue
                except Exception as exc:  # noqa: BLE001 - a bug of the decoder: this event only
                    pending += await self.set_apart(message, exc, "decoded")
                    continue
                messages[(message.topic, message.partition, message.offset)] = message
                valid.append(SourceEvent(message.topic, message.partition, message.offset, envelope))
            lap("decode")
        finally:
            await directory_synced
        lap("directory")
        result, set_apart = await apply_setting_apart(self.apply, valid)
        lap("aggregate")
        # Staged whole and flushed in one write, so a restore keeps all of a partition's rows of
        # the batch or none; measure rows first, then entity rows (of use to a changelog of an
        # earlier version).
        self.table.stage({**result.measures, **result.entities})
        self.watermarks.update(result.watermarks)
        for event, reason in result.rejected:
            pending += await self.dead_letter(messages[(event.topic, event.partition, event.offset)], reason)
        for event, exc in set_apart:
            pending += await self.set_apart(messages[(event.topic, event.partition, event.offset)], exc, "aggregated")
        for (topic, outcome), n in result.outcomes.items():
            metrics.EVENTS.labels(topic, outcome).inc(n)
        metrics.BATCH_SIZE.observe(len(messages) + len(result.rejected))
        metrics.BATCH_ROWS.observe(len(result.measures))
        lap("changelog")
        if self.table.lease is not None:  # a worker the group dropped copies nothing to Redis
            await self.table.lease.hold()
        await self.publish(result.measures, result.cells)
        lap("redis")
        await asyncio.gather(*pending)  # durable before the worker commits the batch
        lap("durable")
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
        metrics.STATE_ROWS.set(len(self.table))
        self.observe_progress(messages.values())

    async def apply(self, events: list[SourceEvent]) -> BatchResult:
        """The aggregator's rows for a batch, fed to it APPLY_CHUNK events at a time with the
        event loop free in between (a 10,000-event batch of a long history took long enough to
        starve the consumer's heartbeats, and the group dropped the worker), and finished once,
        so each row is still summed, encoded and written once per batch."""
        batch = self.aggregator.begin(self.table.data, self.watermarks)
        for i in range(0, len(events), APPLY_CHUNK):
            batch.feed(events[i:i + APPLY_CHUNK])
            await let_others_run()
        return batch.finish()

    def observe_progress(self, messages: Iterable[ConsumerRecord]) -> None:
        """Latency of each event from its write to Kafka."""
        now = time.time()
        for message in messages:
            if message.timestamp:
                metrics.EVENT_LATENCY.observe(max(0.0, now - message.timestamp / 1000))

    async def sync_directory(self) -> None:
        """Bring the directory up to date, and Redis's copy of it for the API's reads."""
        changed = await self.follower.sync()
        if not changed and not self.directory_dirty:
            return
        try:
            if self.directory_dirty:  # whatever Redis missed, deletions included
                await self.readmodel.replace_records(self.follower.everything(), self.follower.read_up_to)
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

    async def publish(self, measure_rows: dict[str, dict], cells: Mapping[str, Cell]) -> None:
        """Copy changed partial rows to Redis (every reading sees them from then on), and note
        the rows of the current buckets (today, this week, month, quarter, year, and `now`) for
        the next kpi.updates flush. A closed bucket changed by a late event or a replay is in
        Redis for every reading, not pushed: on a replay that was dozens of messages per event.
        `cells` says what each row is and which topics changed it (BatchResult.cells): its key
        is not parsed again, and a push values the KPIs of those topics."""
        if not measure_rows:
            return
        current = {kind: start.isoformat() for kind, start in bucket_starts(datetime.now(timezone.utc), self.tz).items()}
        skip = self.settings.kpi_updates_skip_dimensions
        rows, touched, unflushed, created = [], {}, {}, self.table.created
        for key, row in measure_rows.items():
            partition, row_key, topics = cells[key]
            rows.append((partition, row_key, row["m"]))
            if key in created:
                unflushed.setdefault(partition, []).append(key)
            if (row_key.period == SNAPSHOT or current.get(row_key.period) == row_key.start) and row_key.dim not in skip:
                touched.setdefault(row_key, set()).update(topics)
        async with self.publish_lock:
            try:
                await self.readmodel.write_rows(rows, unflushed=unflushed)
            except (RedisError, OSError) as exc:
                self.dirty.update(partition for partition, _, _ in rows)
                metrics.READ_MODEL_FAILURES.inc()
                log.warning("Redis unavailable (%s); %d rows will be copied when it is back", exc, len(rows))
                return
        for row_key, topics in touched.items():
            self.unpushed.setdefault(row_key, set()).update(topics)

    async def push_updates(self) -> None:
        """Send the merged KPI values of the rows changed since the last push to kpi.updates:
        one record per live KPI of each row, the row read once from Redis however many batches
        changed it. Screens and alert rules watch these; a crash may lose the last push (the
        figures themselves are in Redis and the changelog, and the next push wakes every screen)."""
        if not self.unpushed:
            return
        touched, self.unpushed = self.unpushed, {}
        now = datetime.now(timezone.utc)
        async with self.publish_lock:
            try:
                merged = await self.readmodel.read_rows(touched)
                book = await self.target_book()
            except (RedisError, OSError) as exc:
                for row_key, topics in touched.items():
                    self.unpushed.setdefault(row_key, set()).update(topics)
                log.warning("Redis unavailable (%s); %d rows will be pushed when it is back", exc, len(touched))
                return
        updates, partitions = Batches(self.producer, KPI_UPDATES), sorted(await self.producer.partitions_for(KPI_UPDATES))
        elapsed: dict[tuple[str, str], float] = {(SNAPSHOT, ""): 1.0}  # share of each bucket elapsed now
        for row_key, topics in touched.items():
            measures = merged[row_key]
            as_of = datetime.fromtimestamp(measures.as_of or time.time(), timezone.utc).isoformat()
            share = elapsed.get((row_key.period, row_key.start))
            if share is None:
                share = elapsed[(row_key.period, row_key.start)] = progress(
                    row_key.period, date.fromisoformat(row_key.start), now, self.tz)
            kpis = {kpi.id: kpi for topic in topics for kpi in KPIS_BY_SOURCE[topic]}
            for kpi in kpis.values():
                if (not kpi.live or kpi.snapshot != (row_key.period == SNAPSHOT)
                        or row_key.dim not in kpi.dimensions):
                    continue
                value = value_row(kpi, row_key, measures, book, now, self.tz, elapsed=share)
                key, doc = kpi_update(kpi, row_key, value, as_of)
                updates.add(partition_of(key, partitions), key, doc)
        count = updates.count
        await asyncio.gather(*(future for _, future in await updates.send()))
        metrics.KPI_UPDATES.inc(count)

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
        self.gone_from_redis += rows
        async with self.publish_lock:
            await self.drop_from_redis()

    async def drop_from_redis(self) -> None:
        """Delete the rows Redis still has that the state dropped (call with the publish lock)."""
        if not self.gone_from_redis:
            return
        try:
            await self.readmodel.delete_rows(self.gone_from_redis)
            self.gone_from_redis = []
        except (RedisError, OSError) as exc:
            log.warning("Redis unavailable (%s); %d rows gone from the state will be dropped from it later",
                        exc, len(self.gone_from_redis))

    async def flushed(self, created: Iterable[str]) -> None:
        """The changelog has the rows staged as new before a flush (State.take_created), now
        acknowledged: Redis no longer notes them as unflushed (a note left, if Redis does not
        answer, only costs a check at the partition's next takeover)."""
        by_partition: dict[int, list[str]] = {}
        for key in created:
            parsed = parse_measure_key(key)
            if parsed is not None:
                by_partition.setdefault(parsed[0], []).append(key)
        if not by_partition:
            return
        try:
            await self.readmodel.forget_unflushed(by_partition)
        except (RedisError, OSError) as exc:
            log.info("Redis unavailable (%s); %d rows stay noted as unflushed", exc, len(created))

    async def drop_strays(self, partitions: set[int]) -> None:
        """Rows of `partitions` in Redis that the state lacks: copied there by an owner that
        stopped before its changelog had them (a crash between flushes), and not made again by
        the events it handled, handled anew (a batch that nets a row's change to nothing writes
        no row). Dropped; notes of rows the changelog has are forgotten. Call with the publish
        lock, before copying the partitions' rows."""
        strays, settled = [], {}
        for partition, keys in (await self.readmodel.unflushed_rows(partitions)).items():
            for key in keys:
                parsed = parse_measure_key(key)
                if parsed is not None and key not in self.table.data:
                    strays.append(parsed)
                if key not in self.table.created:
                    settled.setdefault(partition, []).append(key)
        if strays:
            await self.readmodel.delete_rows(strays)
            log.warning("dropped %d rows from Redis that an earlier owner copied there and no changelog has",
                        len(strays))
        await self.readmodel.forget_unflushed(settled)

    def unstaged(self, undone: Mapping[str, Any | None]) -> None:
        """Rows put back to what the changelog has (State.unstage): Redis may have their newer
        values, and rows the put-back removed. The events that made them are read again; until
        then their partitions are copied to Redis as they are, and the removed rows dropped.
        (The watermarks stay: no row has applied beyond them, which still holds.)"""
        for key, row in undone.items():
            parsed = parse_measure_key(key)
            if parsed is not None:
                self.dirty.add(parsed[0])
                if row is None:
                    self.gone_from_redis.append(parsed)

    def own(self, partitions: set[int], undone: dict[str, Any | None] | None = None,
            unchanged: set[int] = frozenset()) -> None:
        """Partitions whose rows were just restored (`undone`: rows a restore put back, None
        for gone; Redis may have their unfinished values): handled from now on. `unchanged`:
        those of them this worker kept over a rebalance with nothing read or undone since: Redis
        has what it published of them (or they are dirty still), so they are not copied again."""
        for key, row in (undone or {}).items():
            parsed = parse_measure_key(key)
            if parsed is not None and row is None:
                self.gone_from_redis.append(parsed)
        self.owned |= partitions
        self.watermarks.update(watermarks(self.table.data, [(t, p) for t in SOURCE_TOPICS for p in partitions]))
        self.dirty |= partitions - unchanged

    def disown(self, partitions: set[int]) -> None:
        self.owned -= partitions
        for source in [s for s in self.watermarks if s[1] in partitions]:
            del self.watermarks[source]

    async def may_write(self) -> bool:
        """Whether this worker may still write its rows (its lease holds or is renewed now,
        membership.Lease): a worker the group dropped must not copy its older rows to Redis."""
        if self.table.lease is None:
            return True
        try:
            await self.table.lease.hold()
        except Fenced as exc:
            log.warning("copied nothing to Redis: %s", exc)
            return False
        return True

    async def resync(self) -> None:
        """Copy all rows of owned partitions that Redis lacks (it restarted empty) or missed."""
        try:
            await self.sync_directory()  # also when no event flows, for the API's reads
        except Exception as exc:  # noqa: BLE001 - the next batch retries it, and fails loudly
            log.warning("could not read the directory topics (%s); will retry", exc)
        if not self.owned:
            return
        async with self.publish_lock:
            await self.drop_from_redis()
            try:
                todo = (self.owned - await self.readmodel.synced_partitions()) | (self.dirty & self.owned)
                if not todo or not await self.may_write():
                    return
                await self.drop_strays(todo)
                rows = []
                for key, row in list(self.table.items()):
                    parsed = parse_measure_key(key)
                    if parsed and parsed[0] in todo:
                        rows.append((*parsed, row["m"]))
                for i in range(0, len(rows), 5000):
                    await self.readmodel.write_rows(rows[i:i + 5000], whole=True)
                metrics.RESYNCED_ROWS.inc(len(rows))
                await self.readmodel.replace_records(  # Redis may be new
                    self.follower.everything(), self.follower.read_up_to)
                await self.readmodel.mark_synced(todo)
            except (RedisError, OSError) as exc:
                log.warning("Redis still unavailable (%s); will retry", exc)
                return
            self.dirty -= todo
            log.info("copied %d rows of %d partitions to Redis", len(rows), len(todo))


def group_consumer(settings: Settings, assignor: StandbyAssignor) -> AIOKafkaConsumer:
    """The consumer of a worker of the processor's group (subscribed by the caller).

    The group speaks one assignment protocol, range-standby: aiokafka 0.14 sends one JoinGroup
    per assignor it is given (the second with a protocol list the first did not have, which
    the broker takes as a member changing its metadata: a new rebalance), so two members
    joining together could keep failing each other's SyncGroup and never settle (seen in
    `make bench`: a two-worker group rebalancing for minutes; aio-libs/aiokafka#1168)."""
    return AIOKafkaConsumer(
        **settings.kafka_options(), group_id=settings.processor_app_id,
        group_instance_id=settings.processor_instance_id,
        enable_auto_commit=False, auto_offset_reset="earliest", isolation_level="read_committed",
        partition_assignment_strategy=(assignor,),
        session_timeout_ms=int(settings.processor_session_timeout * 1000),
        heartbeat_interval_ms=int(settings.processor_session_timeout * 1000 / 5),
        max_poll_interval_ms=600_000, max_partition_fetch_bytes=4 * 2**20,
        # A fetch the broker parks for want of new records answers within a batch's wait. Under
        # live load (5,000 events/s, two workers) one worker's fetches came back up to the default
        # 500 ms late although records had arrived: it idled 30 % of its time with a backlog,
        # waiting 84 us an event for them; 3 us with this.
        fetch_max_wait_ms=max(1, int(settings.processor_batch_seconds * 1000)))


class Worker(ConsumerRebalanceListener):
    """One member of the processor's consumer group: owns some source partitions and their rows.

    Partitions are assigned with the range assignor, which gives a member the same partition
    numbers of every sales.* topic (equal partition counts): a customer's orders and the rest
    of its events meet in one worker. With PROCESSOR_INSTANCE_ID set (static membership), a
    worker restarted under the same id gets its partitions back at once, without a rebalance.
    With PROCESSOR_STANDBY_REPLICAS, the assignment also names partitions whose rows this
    worker keeps warm (assignment.py), so taking one over reads only its latest records.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client = settings.kafka_options()
        self.producer = AIOKafkaProducer(**settings.producer_options(), acks="all", linger_ms=5,
                                         max_batch_size=1024 * 1024, enable_idempotence=True,
                                         partitioner=KeyPartitioner())
        self.consumer = group_consumer(settings, StandbyAssignor(settings.processor_standby_replicas,
                                                                 self.on_standbys))
        self.lease = Lease(heartbeat(self.consumer), settings.processor_session_timeout)
        self.state = State(self.producer, state_changelog(settings.processor_app_id), self.lease)
        self.standby = Standby(self.client, self.state.topic)
        self.standby_partitions: set[int] = set()  # as the last assignment named them
        self.parked: set[int] = set()  # revoked, rows kept until the next assignment says
        self.unrestored: set[int] = set()  # assigned, but a restore failed: paused, retried (take)
        self.retry_at, self.retry_delay = 0.0, 1.0
        self.processor = Processor(settings, self.producer, self.state, ReadModel.from_url(settings.redis_url))
        self.lock = asyncio.Lock()  # one batch, rebalance or timer job at a time
        self.committing: asyncio.Future | None = None  # the last flush's offset commit, if not settled
        # Source partitions handled since the last flush: (first offset handled, next offset).
        self.unflushed: dict[TopicPartition, tuple[int, int]] = {}
        self.flush_due = 0.0  # (monotonic) when the staged rows are to be written
        self.lag_due = 0.0  # (monotonic) when the lag gauge is to be read again
        self.collections = Collections()
        self.ready = asyncio.Event()
        self.stopping = asyncio.Event()

    # -- group membership -------------------------------------------------------------------
    def on_standbys(self, partitions: set[int]) -> None:
        """The partitions of the new assignment to keep warm (called before on_partitions_assigned)."""
        self.standby_partitions = partitions

    async def on_partitions_revoked(self, revoked) -> None:
        """Stop handling the partitions (the batch in hand is finished and committed first).
        Their rows are kept until the new assignment: a rebalance revokes every partition and
        gives most of them straight back."""
        async with self.lock:
            await self.flush()  # under the generation that handled the batches
            self.lease.end()
            await self.settle_commit()
            gone = {tp.partition for tp in revoked if tp.topic in SOURCE_TOPICS}
            if gone:
                self.processor.disown(gone)
                self.parked |= gone

    async def on_partitions_assigned(self, assigned) -> None:
        async with self.lock:
            mine = {tp.partition for tp in assigned if tp.topic in SOURCE_TOPICS}
            kept = {p: copy for p in self.parked & mine if (copy := self.state.kept(p)) is not None}
            let_go = self.parked - set(kept)
            if let_go:
                dropped = self.state.drop(let_go)
                log.info("gave up partitions %s (%d rows)", sorted(let_go), dropped)
            self.parked = set()
            self.set_unrestored(set())
            await self.take(mine - self.processor.owned, kept)
            self.standby.follow(self.standby_partitions - mine)
            metrics.STANDBY_PARTITIONS.set(len(self.standby.copies))
        await self.processor.resync()  # Redis gets every row of them, whatever it missed
        self.ready.set()

    async def upgrade_rows(self, partitions: set[int]) -> None:
        """Fold restored measure rows an earlier version kept per topic into rows per cell
        (aggregation.merge_topic_rows), in the changelog too, before any event of them is
        handled. Redis gets them when the partitions are copied to it (its per-topic fields are
        dropped then: ReadModel.write_rows)."""
        rows, legacy = merge_topic_rows(self.state.data, partitions)
        if legacy:
            await asyncio.gather(*await self.state.write(rows, legacy))
            log.warning("merged %d measure rows kept per topic (an earlier version's) into %d rows per cell in "
                        "partitions %s", len(legacy), len(rows), sorted(partitions))

    async def take(self, new: set[int], kept: dict[int, tuple] | None = None) -> None:
        """Restore the rows of newly assigned partitions and handle them from now on (call with
        the lock). `kept`: rows this worker kept of some of them over the rebalance.

        If the restore fails (the broker unreachable, the changelog unreadable), the partitions
        stay assigned but not handled: paused, their rows dropped (a retry reads them from
        scratch), and taken again by the loop later. aiokafka would log an exception raised
        here and go on as if the partitions were handled, so none is raised."""
        if not new:
            return
        kept = kept or {}
        started = time.perf_counter()
        warm = {p: copy for p in new - set(kept) if (copy := self.standby.take(p)) is not None}
        try:
            read, undone = await self.state.restore(self.client, new, {**kept, **warm})
            await self.upgrade_rows(new)
        except Exception:  # noqa: BLE001 - retried by the loop; logged with its cause
            self.state.drop(new)
            self.set_unrestored(new)
            self.retry_at = time.monotonic() + self.retry_delay
            log.exception("could not restore partitions %s; their events wait, next attempt in %.0f s",
                          sorted(new), self.retry_delay)
            self.retry_delay = min(self.retry_delay * 2, MAX_RETRY_SECONDS)
            self.consumer.pause(*self.source_partitions(new))
            return
        unchanged = {p for p in kept if not read[p]} - {key_partition(k) for k in undone}
        self.processor.own(new, undone, unchanged)
        if self.unrestored:
            log.info("restored partitions %s after an earlier failure", sorted(self.unrestored))
        self.set_unrestored(set())
        self.retry_delay = 1.0
        self.consumer.resume(*self.source_partitions(new))
        metrics.RESTORED.labels("changelog").inc(sum(read.values()))
        metrics.RESTORED.labels("standby").inc(sum(len(rows) for rows, _, _ in warm.values()))
        log.info("took partitions %s: %d changelog records restored in %.1fs (%s)", sorted(new), sum(read.values()),
                 time.perf_counter() - started, ", ".join(
                     ([f"rows kept of {sorted(kept)}"] if kept else [])
                     + ([f"on top of standby copies of {sorted(warm)}"] if warm else [])) or "from scratch")
        metrics.STATE_ROWS.set(len(self.state))
        if sum(read.values()):
            settle_restored()

    async def retry_restore(self) -> None:
        """Take the partitions a failed restore left unhandled, if still assigned and it is time."""
        if not self.unrestored or time.monotonic() < self.retry_at:
            return
        async with self.lock:
            assigned = {tp.partition for tp in self.consumer.assignment() if tp.topic in SOURCE_TOPICS}
            todo = self.unrestored & assigned - self.processor.owned
            if todo:
                await self.take(todo)
            else:  # given to another worker meanwhile
                self.set_unrestored(set())
        if not self.unrestored:
            await self.processor.resync()

    def set_unrestored(self, partitions: set[int]) -> None:
        self.unrestored = partitions
        metrics.UNRESTORED_PARTITIONS.set(len(partitions))

    def source_partitions(self, partitions: set[int]) -> list[TopicPartition]:
        assigned = self.consumer.assignment()
        return [tp for tp in (TopicPartition(t, p) for t in SOURCE_TOPICS for p in sorted(partitions))
                if tp in assigned]

    # -- the loop ------------------------------------------------------------------------------
    async def run(self) -> None:
        await self.producer.start()
        await self.processor.follower.start()
        self.consumer.subscribe(list(SOURCE_TOPICS), listener=self)
        timers: list[asyncio.Task] = []
        try:
            if not await self.unless_stopped(self.consumer.start()):
                log.info("stopped before the group gave this worker its partitions")
                return
            timers = [asyncio.create_task(self.standby.run()),
                      asyncio.create_task(self.every(RESYNC_INTERVAL_SECONDS, self.processor.resync)),
                      asyncio.create_task(self.pushing()),
                      asyncio.create_task(self.every(self.settings.retention_check_seconds, self.expire)),
                      asyncio.create_task(self.watch_the_loop())]
            while not self.stopping.is_set():
                await self.retry_restore()
                batches = await take(self.consumer, self.settings.processor_batch_size,
                                     self.settings.processor_batch_seconds, FRESH_FETCH_SECONDS,
                                     Laps(time.perf_counter()))
                async with self.lock:
                    records = self.owned_records(batches)
                    fenced = None
                    if records:
                        try:
                            await self.lease.hold()  # (held again at the write) no work when dropped
                            with self.collections.batch():
                                await self.processor.handle(records)
                        except Fenced as exc:
                            fenced = exc
                            self.drop_unflushed(exc, batches)
                        else:
                            self.handled(batches)
                    if self.unflushed and time.monotonic() >= self.flush_due:
                        fenced = await self.flush() or fenced
                    self.collections.collect_if_due()
                if fenced is not None:  # until the group has this worker again, or its coordinator is back
                    await asyncio.sleep(FENCED_PAUSE_SECONDS)
                if time.monotonic() >= self.lag_due:  # not under the lock: a rebalance may be waiting for it
                    self.lag_due = time.monotonic() + LAG_SECONDS
                    await self.observe_lag()
        finally:
            self.collections.release()
            for timer in timers:
                timer.cancel()
            try:
                async with self.lock:
                    await self.flush()
                await self.settle_commit()
            except Exception:  # noqa: BLE001 - its events are delivered again and recognised as applied
                log.exception("the last batches' rows or offsets could not be written")
            await self.consumer.stop()
            await self.processor.follower.stop()
            await self.producer.stop()

    async def unless_stopped(self, work: Awaitable[Any]) -> bool:
        """Await `work` (True) unless the worker is asked to stop first (False; `work` is
        cancelled). Joining the group waits as long as the group takes to settle, and a
        worker asked to stop meanwhile should stop, not wait for it."""
        task, stop = asyncio.ensure_future(work), asyncio.ensure_future(self.stopping.wait())
        await asyncio.wait([task, stop], return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            return False
        task.result()  # its exception, if it raised one
        return True

    def owned_records(self, batches: dict[TopicPartition, list[ConsumerRecord]]) -> list[ConsumerRecord]:
        """The batch's records, minus those of partitions not restored here yet (fetched while
        the assignment was being handled): those are fetched again once they are."""
        records, assigned = [], self.consumer.assignment()
        for tp, rs in list(batches.items()):
            if tp.partition in self.processor.owned:
                records += rs
            else:
                del batches[tp]
                if rs and tp in assigned:  # else its next owner reads them from the committed offset
                    self.consumer.seek(tp, rs[0].offset)
        return records

    def handled(self, batches: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        """Note a batch handled (its rows staged): its offsets are committed after the next flush."""
        if not self.unflushed:
            self.flush_due = time.monotonic() + self.settings.processor_flush_seconds
        for tp, records in batches.items():
            if records:
                first = self.unflushed[tp][0] if tp in self.unflushed else records[0].offset
                self.unflushed[tp] = (first, records[-1].offset + 1)

    async def flush(self) -> Fenced | None:
        """Write the rows staged since the last flush to the changelog (call with the lock),
        then commit the offsets of the batches they came of: the commit, once the broker has
        them, overlaps the next batches, and is settled before the next commit, a rebalance or
        the end. A worker the group dropped writes nothing and goes back (drop_unflushed)."""
        if not self.unflushed:
            return None
        lap = Laps(time.perf_counter())
        created = self.state.take_created()
        try:
            sent = await self.state.flush()
        except Fenced as exc:
            self.drop_unflushed(exc)
            return exc
        lap("changelog")
        offsets = {tp: after for tp, (_, after) in self.unflushed.items()}
        self.unflushed = {}
        await self.settle_commit()  # the previous flush's, long done as a rule
        lap("commit")
        self.committing = asyncio.ensure_future(self.commit(offsets, sent, created))
        return None

    def drop_unflushed(self, reason: Fenced, batches: Mapping[TopicPartition, list[ConsumerRecord]] | None = None,
                       ) -> None:
        """Give up what this worker may no longer write (membership.Fenced): the rows staged
        since the last flush are put back, and the batches they came of (and `batches`, the
        one in hand) are read again from their first records, for the case the group still
        counts this worker in and leaves it the partitions; if the group gave them to another
        worker, that one handles them from the committed offsets."""
        back = {tp: first for tp, (first, _) in self.unflushed.items()}
        for tp, records in (batches or {}).items():
            if records:
                back[tp] = min(back.get(tp, records[0].offset), records[0].offset)
        self.unflushed = {}
        self.processor.unstaged(self.state.unstage())
        metrics.FENCED_BATCHES.inc()
        log.warning("dropped the rows of %d partitions' events since the last flush unwritten: %s", len(back), reason)
        assigned = self.consumer.assignment()
        for tp, offset in back.items():
            if tp in assigned:
                self.consumer.seek(tp, offset)

    async def settle_commit(self) -> None:
        """Wait for the last flush's offset commit (its errors are raised here)."""
        committing, self.committing = self.committing, None
        if committing is not None:
            await committing

    async def commit(self, offsets: dict[TopicPartition, int], written: Iterable[Awaitable] = (),
                     created: Iterable[str] = ()) -> None:
        """Commit handled batches' offsets once `written`, their rows' changelog writes, are
        acknowledged (and forget Redis's notes of the `created` rows: Processor.flushed). If
        the group took the partitions away meanwhile (this worker's session expired), the
        batches are delivered again to their new owner, whose rows already have them (the
        changelog is written first) and recognise them as applied."""
        await asyncio.gather(*written)
        await self.processor.flushed(created)
        try:
            await self.consumer.commit(offsets)
        except CommitFailedError as exc:
            log.warning("could not commit a batch's offsets (%s); its events will be delivered again and "
                        "recognised as applied", exc)

    async def observe_lag(self) -> None:
        """What is left on every owned partition (not only those that delivered this batch). A
        partition whose position is not known within a second (just assigned) or no longer
        assigned is skipped: a rebalance may take partitions away while a position is awaited,
        and aiokafka's highwater() asserts that its partition is assigned (that ended a worker).
        Read every LAG_SECONDS, not after every batch: it awaits each partition's position, and
        an idle worker, taking a batch every 50 ms, spent some 15 % of its time here."""
        deadline = time.monotonic() + 1.0
        for tp in self.consumer.assignment():
            if tp not in self.consumer.assignment():
                continue
            highwater = self.consumer.highwater(tp)
            if highwater is not None:
                try:
                    position = await asyncio.wait_for(self.consumer.position(tp),
                                                      max(0.01, deadline - time.monotonic()))
                except (IllegalStateError, asyncio.TimeoutError):
                    continue
                metrics.LAG.labels(tp.topic, str(tp.partition)).set(max(0, highwater - position))

    async def expire(self) -> None:
        async with self.lock:
            try:
                await self.processor.expire()
            except Fenced as exc:  # the next round, if the partitions are still here, does it
                log.warning("retention wrote nothing: %s", exc)

    async def watch_the_loop(self) -> None:
        """Measure how long the event loop goes without turning (LOOP_STALL), and warn when
        it nears the session timeout: a heartbeat waits that long."""
        while True:
            started = time.monotonic()
            await asyncio.sleep(1.0)
            stall = time.monotonic() - started - 1.0
            metrics.LOOP_STALL.observe(max(0.0, stall))
            if stall > self.settings.processor_session_timeout / 4:
                log.warning("the event loop did not turn for %.1f s (heartbeats wait as long; the session "
                            "times out after %.0f s)", stall, self.settings.processor_session_timeout)

    async def pushing(self) -> None:
        """Push KPI updates every KPI_UPDATES_SECONDS, or less often when pushing takes long.

        A push reads, values and sends every live KPI of each row changed since the last one;
        under live load (every row current) pushing every 0.2 s took half a worker's time and
        the events waited. Waiting nineteen times as long as the last push took keeps pushing
        to a twentieth of the time at most (PUSH_SHARE); rows changed meanwhile are pushed once,
        with their latest values. The pushes feed alert rules and outside consumers; screens
        follow Redis. A quarter (until 2026-11-24) cost 100 us a live event at 5,000 events/s
        and the events waited behind it; a tenth cost 40 (ad hoc, two workers, 100,000-event
        history, 30 s: produce -> GET /kpis p50 376 -> 271 ms, p99 1.13 -> 0.65 s); a twentieth
        costs 21 (three 300,000-event benches each way, alternated: p50 at 5,000 events/s
        359/274/726 -> 228/205/269 ms, p99 1.35/1.18/1.75 -> 1.11/0.79/1.05 s). The price, under
        such a load only: a push waits nineteen times its length after it, not nine, so alert
        rules see a change later. Under a light one, every KPI_UPDATES_SECONDS as before."""
        while True:
            started = time.monotonic()
            try:
                await self.processor.push_updates()
            except Exception:  # noqa: BLE001 - logged; the next push tries again
                log.exception("push_updates failed")
            took = time.monotonic() - started
            metrics.PUSH_SECONDS.observe(took)
            await asyncio.sleep(max(self.settings.kpi_updates_seconds, took * (1 - PUSH_SHARE) / PUSH_SHARE))

    async def every(self, seconds: float, job) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await job()
            except Exception:  # noqa: BLE001 - logged; the next round tries again
                log.exception("%s failed", getattr(job, "__name__", job))

    def stop(self) -> None:
        self.stopping.set()
