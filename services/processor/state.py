"""The processor's rows, in memory, made durable in a compacted changelog topic.

Every row key starts with the source partition that owns it ("3|m|sales.orders|..."), and
its changelog record goes to that partition of `{PROCESSOR_APP_ID}-state-changelog`. A worker
that is assigned source partition 3 restores changelog partition 3 (read from the start to
its end offset) before it handles an event of partition 3; one that loses it drops the rows.

Records are the row's key and value as JSON (a tombstone deletes), the layout the Faust table
of earlier versions wrote, so an existing changelog restores as it is.

Each write is atomic per partition: its records are followed by a commit marker (key
"{partition}|commit", never a row), and a restore undoes the records after a partition's last
marker (a worker killed mid-write) and writes the undoing back. So the restored rows of a
partition are those of whole batches, never part of one. That matters for the rows one event
changes together (its cells, its entity, its customer): the customer row is fed by two topics
whose events Kafka may redeliver interleaved differently after a crash, and a customer's
figures are not additive (a churn ends the spell an order extends), so half a batch's customer
figures then the other half recomputed in another order would not add up. Records written
before a partition's first marker (a changelog of an earlier version) are kept as they are;
a worker writes a marker as soon as it has restored a partition.

A batch's rows are staged (`stage`: in `data` at once, for the next batch to build on) and
written by the next `flush`, once per key however many batches changed it since the last one:
a live worker changes the same rows batch after batch (today's rows of a busy rep, a
customer's row at each order), and the processor flushes every PROCESSOR_FLUSH_SECONDS. A
flush is one write, so its batches are restored all or none, as a single batch's were. A
worker that may no longer write (membership.Fenced) puts the staged rows back (`unstage`).
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
from collections.abc import Awaitable, Iterable, Iterator, Mapping
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from salespulse.domain.aggregation import key_partition
from salespulse.processor.batching import Batches
from salespulse.processor.metrics import CHANGELOG_RECORDS
from salespulse.processor.membership import Lease

log = logging.getLogger(__name__)


def marker_key(partition: int) -> str:
    return f"{partition}|commit"


def is_marker(key: str) -> bool:
    return key.endswith("|commit")


_ABSENT = object()


class Replay:
    """Rows rebuilt from changelog records read in order, minus each partition's unfinished write.

    Pure (no I/O), so the rollback rule is tested on its own: feed every record with `record`,
    then `unfinished()` names what to undo, and `undo()` applies it to `data`.
    """

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        # partition -> key -> the row before the partition's last marker (_ABSENT: none); only
        # for partitions that have a marker (a changelog of an earlier version has none)
        self.since_marker: dict[int, dict[str, Any]] = {}

    def record(self, key: str, value: Any | None, partition: int | None = None) -> None:
        """`partition`: the key's (key_partition), when the caller knows it: the changelog
        partition a row is read from is its own."""
        if partition is None:
            partition = key_partition(key)
        if is_marker(key):
            self.since_marker[partition] = {}
            return
        before = self.since_marker.get(partition)
        if before is not None and key not in before:
            before[key] = self.data.get(key, _ABSENT)
        if value is None:
            self.data.pop(key, None)
        else:
            self.data[key] = value

    def unfinished(self) -> dict[str, Any | None]:
        """Key -> the row to put back (None: delete) for every record after its partition's last marker."""
        return {key: None if before is _ABSENT else before
                for changes in self.since_marker.values() for key, before in changes.items()}

    def undo(self) -> dict[str, Any | None]:
        """Put the unfinished writes' rows back in `data`; returns what was undone."""
        undone = self.unfinished()
        for key, before in undone.items():
            if before is None:
                self.data.pop(key, None)
            else:
                self.data[key] = before
        for changes in self.since_marker.values():
            changes.clear()
        return undone


class State:
    def __init__(self, producer: AIOKafkaProducer, topic: str, lease: Lease | None = None) -> None:
        self.producer, self.topic, self.lease = producer, topic, lease
        self.data: dict[str, dict[str, Any]] = {}
        # partition -> the changelog offset after this worker's last commit marker there: the
        # rows in `data` are the changelog up to it and the staged rows (a takeover of the
        # partition reads on from it)
        self.positions: dict[int, int] = {}
        self.staged: dict[str, Any] = {}  # rows in `data` that the changelog does not have yet
        self.before_staged: dict[str, Any] = {}  # what `data` held of them at the last flush (_ABSENT: none)
        # Keys staged as new rows (none in the changelog then) since the last take_created: the
        # changelog may not have them yet, whatever wrote the staged rows since.
        self.created: set[str] = set()

    def get(self, key: str, default=None):
        return self.data.get(key, default)

    def __len__(self) -> int:
        return len(self.data)

    def items(self) -> Iterator[tuple[str, dict[str, Any]]]:
        return iter(self.data.items())

    def stage(self, rows: Mapping[str, Any]) -> None:
        """Set `rows` now; the next `flush` (or `write`) writes them to the changelog."""
        data, before, created = self.data, self.before_staged, self.created
        for key, value in rows.items():
            if key not in before:
                was = before[key] = data.get(key, _ABSENT)
                if was is _ABSENT:
                    created.add(key)
            data[key] = value
        self.staged.update(rows)

    def take_created(self) -> set[str]:
        """The keys staged as new rows since the last call (before a flush: once it is durable,
        the changelog has every one of them that is still a row)."""
        created, self.created = self.created, set()
        return created

    def unstage(self) -> dict[str, Any | None]:
        """Put back what the staged rows replaced (a worker that may not write them); returns
        the keys put back with their rows, None for gone."""
        undone = {}
        for key, before in self.before_staged.items():
            if before is _ABSENT:
                self.data.pop(key, None)
                undone[key] = None
            else:
                self.data[key] = undone[key] = before
        self.staged, self.before_staged = {}, {}
        return undone

    async def flush(self) -> list[Awaitable]:
        """Write the staged rows (as `write` does); their sends' futures."""
        return await self.write({}) if self.staged else []

    async def write(self, rows: Mapping[str, Any], deleted: Iterable[str] = ()) -> list[Awaitable]:
        """Set `rows` and delete `deleted`, after the staged rows and in that order, one
        changelog record each, then a commit marker in every partition written: a restore keeps
        all of it or none of it, per partition. Returns the sends' futures; the caller awaits
        them before committing the events' offsets. With a lease, it is held first
        (membership.Lease.hold): a worker the group dropped raises membership.Fenced, and
        nothing is written or changed (the staged rows stay staged)."""
        deleted = list(deleted)
        if self.staged:
            rows = {**self.staged, **rows}
        if self.lease is not None and (rows or deleted):
            await self.lease.hold()
        self.staged, self.before_staged = {}, {}
        return await self._send(rows, deleted)

    async def _send(self, rows: Mapping[str, Any], deleted: Iterable[str], mark: Iterable[int] = ()) -> list[Awaitable]:
        """Write rows and deletions, then a commit marker in each partition written and in `mark`."""
        batches, partitions, dumps = Batches(self.producer, self.topic), set(mark), orjson.dumps
        for key, value in rows.items():
            self.data[key] = value
            partition = key_partition(key)
            partitions.add(partition)
            batches.add(partition, dumps(key), dumps(value))
            if batches.count % 5000 == 0:
                await asyncio.sleep(0)  # let heartbeats run during a long write
        for key in deleted:
            self.data.pop(key, None)
            partition = key_partition(key)
            partitions.add(partition)
            batches.add(partition, dumps(key), None)
        markers = {id(batch): (partition, offset) for partition in sorted(partitions)
                   for batch, offset in [batches.add(partition, dumps(marker_key(partition)), b"{}")]}
        CHANGELOG_RECORDS.inc(batches.count)
        sent = []
        for batch, future in await batches.send():
            if id(batch) in markers:
                future.add_done_callback(functools.partial(self._marked, *markers[id(batch)]))
            sent.append(future)
        return sent

    def _marked(self, partition: int, offset: int, future: asyncio.Future) -> None:
        """A marker is written (`offset` within its batch): a warm copy reads on from after it."""
        if not future.cancelled() and future.exception() is None:
            position = future.result().offset + offset + 1
            if position > self.positions.get(partition, -1):
                self.positions[partition] = position

    async def restore(self, client: dict, partitions: Iterable[int], warm: Mapping[int, tuple] | None = None,
                      ) -> tuple[dict[int, int], dict[str, Any | None]]:
        """Load the rows of `partitions` from the changelog, up to its end now, without the
        records of a write left unfinished, and undo those in the changelog too; then mark
        every partition (later records are ours, not an earlier version's). Those writes hold
        the lease first, as `write` does. `warm`: standby copies (Standby.take) of some of
        them, read on from where they are. Returns (records read from the changelog per
        partition, the undone keys with the rows they are back to, None for gone)."""
        partitions = sorted(set(partitions))
        if not partitions:
            return {}, {}
        read, undone = await self._read(client, partitions, warm or {})
        if self.lease is not None:  # a worker dropped while it restored writes no undoing nor marker
            await self.lease.hold()
        await asyncio.gather(*await self._send({key: row for key, row in undone.items() if row is not None},
                                               [key for key, row in undone.items() if row is None], partitions))
        if undone:
            log.warning("undid an unfinished write of %d rows in partitions %s (a worker stopped mid-write)",
                        len(undone), sorted({key_partition(k) for k in undone}))
        return read, undone

    async def _read(self, client: dict, partitions: list[int], warm: Mapping[int, tuple],
                    ) -> tuple[dict[int, int], dict[str, Any | None]]:
        tps = [TopicPartition(self.topic, p) for p in partitions]
        replay = Replay(self.data)
        for partition, (rows, before, _) in warm.items():
            self.data.update(rows)
            if before is not None:
                replay.since_marker[partition] = before
        consumer = AIOKafkaConsumer(**client, enable_auto_commit=False, auto_offset_reset="earliest",
                                    max_partition_fetch_bytes=8 * 2**20)
        await consumer.start()
        read = dict.fromkeys(partitions, 0)
        # The rows read make millions of objects and no reference cycle: a cyclic collection
        # would walk them over and over (7 % of a restore). The caller collects once after.
        collecting = gc.isenabled()
        gc.disable()
        try:
            consumer.assign(tps)
            ends = await consumer.end_offsets(tps)
            cold = [tp for tp in tps if tp.partition not in warm]
            if cold:  # (none given would seek every partition)
                await consumer.seek_to_beginning(*cold)
            for tp in tps:
                if tp.partition in warm:
                    consumer.seek(tp, warm[tp.partition][2])
            todo = {tp for tp in tps if ends[tp] > await consumer.position(tp)}
            record_row, loads = replay.record, orjson.loads
            while todo:
                for tp, records in (await consumer.getmany(*todo, timeout_ms=1000, max_records=50_000)).items():
                    end, partition = ends[tp], tp.partition
                    for record in records:
                        if record.offset >= end:
                            break
                        record_row(loads(record.key), None if record.value is None else loads(record.value), partition)
                        read[partition] += 1
                    if await consumer.position(tp) >= end:
                        todo.discard(tp)
        finally:
            if collecting:
                gc.enable()
            await consumer.stop()
        return read, replay.undo()

    def drop(self, partitions: Iterable[int]) -> int:
        """Forget the rows of partitions this worker no longer owns; rows dropped."""
        gone = set(partitions)
        keys = [key for key in self.data if key_partition(key) in gone]
        for key in keys:
            del self.data[key]
        for key in [key for key in self.before_staged if key_partition(key) in gone]:
            self.staged.pop(key, None)
            del self.before_staged[key]
        for partition in gone:
            self.positions.pop(partition, None)
        return len(keys)

    def kept(self, partition: int) -> tuple[dict, dict, int] | None:
        """The rows this worker still has of a partition it gave up, as a warm copy to read on
        from (restore's `warm`; they are in `data` already); None if their position is unknown."""
        position = self.positions.get(partition)
        return None if position is None else ({}, {}, position)


class Standby:
    """Warm copies of changelog partitions this worker does not own, kept by following them.

    Records are kept as they come (values not decoded, the last one per key, the unfinished
    write's rows remembered as in a restore), so following costs little; a worker that takes
    one of these partitions over decodes its rows and reads only the records written since,
    instead of the whole changelog partition.
    """

    def __init__(self, client: dict, topic: str) -> None:
        self.client, self.topic = client, topic
        self.copies: dict[int, Replay] = {}  # partition -> its rows so far (raw values)
        self.positions: dict[int, int] = {}  # partition -> next changelog offset to read
        self.consumer: AIOKafkaConsumer | None = None
        self.changed = asyncio.Event()

    def follow(self, partitions: set[int]) -> None:
        """Keep copies of exactly these partitions from now on (new ones from the beginning)."""
        for partition in set(self.copies) - partitions:
            del self.copies[partition]
            del self.positions[partition]
        for partition in partitions - set(self.copies):
            self.copies[partition] = Replay({})
            self.positions[partition] = 0
        self.changed.set()

    def take(self, partition: int) -> tuple[dict[str, Any], dict[str, Any], int] | None:
        """Stop following `partition` and hand over its copy: (rows, rows as they were before
        the unfinished write, _ABSENT for none), next offset to read); None if not kept."""
        replay = self.copies.pop(partition, None)
        if replay is None:
            return None
        position = self.positions.pop(partition)
        self.changed.set()
        decode = orjson.loads
        rows = {key: decode(value) for key, value in replay.data.items()}
        before = {key: value if value is _ABSENT else decode(value)
                  for key, value in replay.since_marker.get(partition, {}).items()}
        return rows, before if partition in replay.since_marker else None, position

    async def run(self) -> None:
        """Follow the partitions named by `follow`, until cancelled; a failure (the broker gone
        for a while) is logged and the copies read on from where they were."""
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a takeover meanwhile reads more of the changelog, that is all
                log.exception("standby copies stopped following the changelog; again in 5 s")
                await asyncio.sleep(5)

    async def _follow(self) -> None:
        self.consumer = AIOKafkaConsumer(**self.client, enable_auto_commit=False, auto_offset_reset="earliest",
                                         max_partition_fetch_bytes=8 * 2**20)
        await self.consumer.start()
        self.changed.set()  # (re)assign the partitions to this consumer
        try:
            while True:
                if self.changed.is_set():
                    self.changed.clear()
                    self._reassign()
                if not self.copies:
                    await self.changed.wait()
                    continue
                batches = await self.consumer.getmany(timeout_ms=500, max_records=20_000)
                for tp, records in batches.items():
                    replay = self.copies.get(tp.partition)
                    if replay is None or not records:
                        continue  # taken over or dropped meanwhile
                    record, position = replay.record, self.positions[tp.partition]
                    for message in records:
                        if message.offset >= position:  # not one fetched again after a reassignment
                            record(orjson.loads(message.key), message.value)
                    self.positions[tp.partition] = max(position, records[-1].offset + 1)
                await asyncio.sleep(0)
        finally:
            await self.consumer.stop()

    def _reassign(self) -> None:
        tps = [TopicPartition(self.topic, p) for p in sorted(self.copies)]
        self.consumer.assign(tps)
        for tp in tps:
            self.consumer.seek(tp, self.positions[tp.partition])
