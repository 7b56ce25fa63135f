"""The benchmark's events: the simulator's sales floor, run on a simulated clock.

Pure: a seed and a time span in, (topic, key, value) messages out, in the order a live
floor would send them. The mix is the simulator's (calls half the time, deals, orders,
activities, surveys, invoices, spend, churn), with its 24 reps and 400 customers, so
the processor meets the same keys x periods a real floor of that size produces.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import orjson

from salespulse.simulator.world import World

Message = tuple[str, bytes, bytes]  # topic, key, value


def history(count: int, end: datetime, days: int, tz: ZoneInfo, seed: int = 7) -> Iterator[Message]:
    """`count` events spread evenly over the `days` before `end`."""
    world = World(random.Random(seed), tz)
    step = timedelta(days=days) / max(1, count) * 1.9  # about 1.9 events per activity started
    now, sent = end - timedelta(days=days), 0
    while sent < count:
        world.start_something(now)
        for topic, key, event in world.due(now):
            yield topic, key.encode(), orjson.dumps(event)
            sent += 1
            if sent == count:
                return
        now += step
    # unreachable: the loop returns once `count` events are out


def live(world: World, now: datetime) -> list[Message]:
    """What the floor sends at `now` (the caller paces the clock)."""
    return [(topic, key.encode(), orjson.dumps(event)) for topic, key, event in world.due(now)]
