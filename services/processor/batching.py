"""Records gathered into aiokafka batches, one per partition, instead of sent one by one.

aiokafka's send() costs several microseconds a record in Python (serialising, choosing the
partition, finding the accumulator's batch, a future per record): a tenth of a worker's time
went there, for the changelog rows and kpi.updates records of every batch. A BatchBuilder's
append costs a fraction of that, and a batch has one future.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.producer.message_accumulator import BatchBuilder


def partition_of(key: bytes, partitions: Sequence[int]) -> int:
    """A key's partition among `partitions` (sorted): CRC-32, the processor's KeyPartitioner's."""
    return partitions[zlib.crc32(key) % len(partitions)]


class Batches:
    """Records for one topic, kept in order per partition, then sent as whole batches."""

    def __init__(self, producer: AIOKafkaProducer, topic: str) -> None:
        self.producer, self.topic = producer, topic
        self.open: dict[int, BatchBuilder] = {}
        self.full: list[tuple[int, BatchBuilder]] = []  # in the order they filled up
        self.count = 0

    def add(self, partition: int, key: bytes, value: bytes | None) -> tuple[BatchBuilder, int]:
        """Append a record; returns its batch and its offset within the batch."""
        batch = self.open.get(partition)
        if batch is None:
            batch = self.open[partition] = self.producer.create_batch()
        metadata = batch.append(timestamp=None, key=key, value=value)
        if metadata is None:  # full
            self.full.append((partition, batch))
            batch = self.open[partition] = self.producer.create_batch()
            metadata = batch.append(timestamp=None, key=key, value=value)
            if metadata is None:
                raise ValueError(f"a record of {len(key) + len(value or b'')} bytes is larger than a batch")
        self.count += 1
        return batch, metadata.offset

    async def send(self) -> list[tuple[BatchBuilder, asyncio.Future]]:
        """Hand every batch to the producer (a partition's in order); each with its future, whose
        result's offset is the batch's first record's."""
        sent = []
        for partition, batch in [*self.full, *self.open.items()]:
            batch.close()  # no send() record joins it
            sent.append((batch, await self.producer.send_batch(batch, self.topic, partition=partition)))
        self.full, self.open = [], {}
        return sent
