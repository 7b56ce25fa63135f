"""A Faust table whose keys name the source partition that owns them.

Faust sends a table write to the changelog partition of the event being processed, which
does not exist when a batch is handled after `take_events`. Our keys start with the owning
source partition ("3|m|sales.orders|..."), so the partition is read from the key: the
same partition the default would pick, without relying on a current event.
"""

from __future__ import annotations

from typing import Any

import faust

from salespulse.domain.aggregation import key_partition


class SourcePartitionedTable(faust.Table):
    def partition_for_key(self, key: Any) -> int:
        return key_partition(key)
