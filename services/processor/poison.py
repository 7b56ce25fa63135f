"""Events the processor's code raises on: set apart, so the rest of their batch counts.

Events that fail validation are dead-lettered with their reason as they are decoded. An event
that passes and then makes the aggregator raise is a bug, not bad input; left alone, it fails
its batch, and the worker stops and starts over on it, forever, while every later event of its
partitions waits. The aggregator is pure and a batch's rows are copies until the batch is
staged, so a batch that raised changed nothing and can be applied again in parts: the events
whose turn makes it raise are found by halving and set apart (the caller dead-letters them
with the error, its log has the traceback), and the rest is applied as it would have been.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

Event = TypeVar("Event")
Result = TypeVar("Result")

MAX_SET_APART = 10  # a batch's events set apart before the failure is taken for the code's, not theirs


async def apply_setting_apart(apply: Callable[[list[Event]], Awaitable[Result]], events: Sequence[Event],
                              limit: int = MAX_SET_APART) -> tuple[Result, list[tuple[Event, Exception]]]:
    """`apply(events)` and no event set apart, or, if it raises, the result of applying the
    events but those that make it raise, and those events with their errors, in order.

    The failing event is the last of the shortest failing run from the batch's start (the
    events before an event are what its state comes from): found in log2(len(events)) applies
    of prefixes. The failure is raised as it is when applying nothing raises too, or when more
    than `limit` events would be set apart: then the code fails whatever the events, and the
    batch must fail loudly rather than every event go to the dead letters."""
    events, set_apart = list(events), []
    good = 0  # applying events[:good] succeeds
    while True:
        try:
            return await apply(events), set_apart
        except MemoryError:
            raise  # the machine's, not an event's
        except Exception as exc:  # noqa: BLE001 - a bug of the code; set apart below or raised
            failure = exc
        if len(set_apart) == limit:
            raise failure
        if good == 0:
            await apply([])  # raises if the code fails on its own
        bad = len(events)  # applying events[:bad] raises `failure`
        while bad - good > 1:
            middle = (good + bad) // 2
            try:
                await apply(events[:middle])
            except MemoryError:
                raise
            except Exception as exc:  # noqa: BLE001 - the failure is in this half
                bad, failure = middle, exc
            else:
                good = middle
        set_apart.append((events[bad - 1], failure))
        del events[bad - 1]  # events[:good] is as it was: it still succeeds
