"""The processor's copy of the directory.* topics, brought up to date before every batch.

Before a batch is aggregated, the follower asks Kafka for the end offsets of the directory
topics and reads up to them. So a directory change the API acknowledged before an event was
produced always applies to that event, at the cost of one ListOffsets request per batch; and
a replay from the start sees the whole directory before its first event. Between syncs its
partitions are paused, so no fetch waits on the broker in front of that request.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition

from salespulse.contracts.directory import DIRECTORY_TOPICS, InvalidRecord, decode_record
from salespulse.contracts.topics import partitions_of
from salespulse.domain.directory import Directory
from salespulse.processor import metrics
from salespulse.settings import kafka_client

log = logging.getLogger(__name__)


class DirectoryFollower:
    def __init__(self, bootstrap_servers: str, directory: Directory) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.directory = directory
        self.consumer: AIOKafkaConsumer | None = None
        self.partitions: list[TopicPartition] = []
        self.lock = asyncio.Lock()
        # (kind, key) -> offset of its last record read, deletions included; kind -> offset of
        # the last record read on its topic: what Redis's copy is checked against (ReadModel).
        self.offsets: dict[tuple[str, str], int] = {}
        self.read_up_to: dict[str, int] = {kind: -1 for kind in DIRECTORY_TOPICS}

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(**kafka_client(self.bootstrap_servers), enable_auto_commit=False,
                                    auto_offset_reset="earliest")
        await consumer.start()
        try:
            self.partitions = [TopicPartition(topic, p) for topic in DIRECTORY_TOPICS.values()
                               for p in await partitions_of(self.bootstrap_servers, topic)]
            missing = set(DIRECTORY_TOPICS.values()) - {tp.topic for tp in self.partitions}
            if missing:
                raise RuntimeError(f"directory topics missing: {', '.join(sorted(missing))}")
            consumer.assign(self.partitions)
            await consumer.seek_to_beginning(*self.partitions)
            consumer.pause(*self.partitions)  # fetched only when behind (_sync)
        except BaseException:
            await consumer.stop()
            raise
        self.consumer = consumer

    async def stop(self) -> None:
        if self.consumer is not None:
            await self.consumer.stop()
            self.consumer = None

    async def sync(self) -> list[tuple[str, str, dict | None, int]]:
        """Read every directory record produced so far; returns the (kind, key, record, offset)
        applied (record None: deleted)."""
        async with self.lock:  # the agent and the timer both call it; one reader at a time
            return await self._sync()

    async def _sync(self) -> list[tuple[str, str, dict | None, int]]:
        if self.consumer is None:
            await self.start()
        consumer = self.consumer
        end = await consumer.end_offsets(self.partitions)
        behind = [tp for tp in self.partitions if await consumer.position(tp) < end[tp]]
        if not behind:
            return []
        # The partitions stay paused between syncs: a fetch waiting on the broker for new records
        # (up to fetch_max_wait_ms, 500 ms) held back the next sync's ListOffsets answer on the
        # same connection, and that wait was most of a batch's time under live load.
        consumer.resume(*behind)
        try:
            return await self._read_up_to(consumer, behind, end)
        finally:
            consumer.pause(*self.partitions)

    def everything(self) -> list[tuple[str, str, dict | None, int]]:
        """Every key read so far: (kind, key, its record now or None if deleted, its last offset)."""
        docs = {(kind, key): doc for kind, key, doc in self.directory.docs()}
        return [(kind, key, docs.get((kind, key)), offset) for (kind, key), offset in self.offsets.items()]

    async def _read_up_to(self, consumer: AIOKafkaConsumer, behind: list[TopicPartition],
                          end: dict[TopicPartition, int]) -> list[tuple[str, str, dict | None, int]]:
        read = []
        kinds = {topic: kind for kind, topic in DIRECTORY_TOPICS.items()}
        while [tp for tp in behind if await consumer.position(tp) < end[tp]]:
            for records in (await consumer.getmany(*behind, timeout_ms=1000)).values():
                for record in records:
                    self.read_up_to[kinds[record.topic]] = record.offset
                    try:
                        kind, key, doc = decode_record(record.topic, record.key, record.value)
                    except InvalidRecord as exc:
                        metrics.DIRECTORY_RECORDS.labels(record.topic, "invalid").inc()
                        log.warning("ignored an invalid directory record at offset %s: %s", record.offset, exc)
                        continue
                    self.directory.put(kind, key, doc)
                    self.offsets[(kind, key)] = record.offset
                    read.append((kind, key, doc, record.offset))
                    metrics.DIRECTORY_RECORDS.labels(record.topic, "applied").inc()
        return read
