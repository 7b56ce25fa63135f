"""The processor's rows, in memory, made durable in a compacted changelog topic.

Every row key starts with the source partition that owns it ("3|m|sales.orders|..."), and
its changelog record goes to that partition of `{PROCESSOR_APP_ID}-state-changelog`. A worker
that is assigned source partition 3 restores changelog partition 3 (read from the start to
its end offset) before it handles an event of partition 3; one that loses it drops the rows.

Records are the row's key and value as JSON (a tombstone deletes), the layout the Faust table
of earlier versions wrote, so an existing changelog restores as it is.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterable, Iterator, Mapping
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from salespulse.domain.aggregation import key_partition

log = logging.getLogger(__name__)


class State:
    def __init__(self, producer: AIOKafkaProducer, topic: str) -> None:
        self.producer, self.topic = producer, topic
        self.data: dict[str, dict[str, Any]] = {}

    def get(self, key: str, default=None):
        return self.data.get(key, default)

    def __len__(self) -> int:
        return len(self.data)

    def items(self) -> Iterator[tuple[str, dict[str, Any]]]:
        return iter(self.data.items())

    async def write(self, rows: Mapping[str, Any], deleted: Iterable[str] = ()) -> list[Awaitable]:
        """Set `rows` and delete `deleted`, in that order: one changelog record each. Returns
        the sends' futures; the caller awaits them before committing the events' offsets."""
        send, topic, pending = self.producer.send, self.topic, []
        for key, value in rows.items():
            self.data[key] = value
            pending.append(await send(topic, orjson.dumps(value), key=orjson.dumps(key), partition=key_partition(key)))
            if len(pending) % 2000 == 0:
                await asyncio.sleep(0.001)  # a send that needs no wait does not yield: let heartbeats run
        for key in deleted:
            self.data.pop(key, None)
            pending.append(await send(topic, None, key=orjson.dumps(key), partition=key_partition(key)))
        return pending

    async def restore(self, client: dict, partitions: Iterable[int]) -> int:
        """Load the rows of `partitions` from the changelog, up to its end now; records read."""
        tps = [TopicPartition(self.topic, p) for p in sorted(set(partitions))]
        if not tps:
            return 0
        consumer = AIOKafkaConsumer(**client, enable_auto_commit=False, auto_offset_reset="earliest",
                                    max_partition_fetch_bytes=8 * 2**20)
        await consumer.start()
        read = 0
        try:
            consumer.assign(tps)
            ends = await consumer.end_offsets(tps)
            await consumer.seek_to_beginning(*tps)
            todo = {tp for tp in tps if ends[tp] > await consumer.position(tp)}
            data = self.data
            while todo:
                for tp, records in (await consumer.getmany(*todo, timeout_ms=1000, max_records=50_000)).items():
                    for record in records:
                        if record.offset >= ends[tp]:
                            break
                        key = orjson.loads(record.key)
                        if record.value is None:
                            data.pop(key, None)
                        else:
                            data[key] = orjson.loads(record.value)
                        read += 1
                    if await consumer.position(tp) >= ends[tp]:
                        todo.discard(tp)
        finally:
            await consumer.stop()
        return read

    def drop(self, partitions: Iterable[int]) -> int:
        """Forget the rows of partitions this worker no longer owns; rows dropped."""
        gone = set(partitions)
        keys = [key for key in self.data if key_partition(key) in gone]
        for key in keys:
            del self.data[key]
        return len(keys)
