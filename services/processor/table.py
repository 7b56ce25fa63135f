"""A Faust table whose keys name the source partition that owns them, written in batches.

Faust sends a table write to the changelog partition of the event being processed, which
does not exist when a batch is handled after `take_events`. Our keys start with the owning
source partition ("3|m|sales.orders|..."), so the partition is read from the key: the
same partition the default would pick, without relying on a current event.

`table[key] = value` queues each changelog record in Faust's producer buffer, which sends
them one by one and stalls the stream past 100 pending: a few thousand records a second,
when a batch of a thousand events changes several thousand rows. `write` sets the rows and
hands their changelog records straight to the Kafka producer; the caller awaits them all
before the batch's offsets may be committed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable, Mapping
from typing import Any

import faust
import orjson

from salespulse.domain.aggregation import key_partition


class SourcePartitionedTable(faust.Table):
    def partition_for_key(self, key: Any) -> int:
        return key_partition(key)

    async def write(self, rows: Mapping[str, Any], deleted: Iterable[str] = ()) -> list[Awaitable]:
        """Set `rows` and delete `deleted`, in that order; one changelog record each (the
        table's JSON key and value, as Faust itself would encode them; None deletes)."""
        producer, topic, pending = self.app.producer, self.changelog_topic.get_topic_name(), []
        for key, value in rows.items():
            self.data[key] = value
            pending.append(await producer.send(topic, orjson.dumps(key), orjson.dumps(value),
                                               key_partition(key), None, None))
        for key in deleted:
            self.data.pop(key, None)
            pending.append(await producer.send(topic, orjson.dumps(key), None, key_partition(key), None, None))
        return pending
