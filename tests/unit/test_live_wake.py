"""When a live stream wakes: a change that came while it read or sent is not missed."""

from __future__ import annotations

import asyncio

from salespulse.api.live import LiveHub


def hub() -> LiveHub:
    return LiveHub("127.0.0.1:1", readings=None, readmodel=None)  # nothing followed: versions moved by hand


def kpis_moved(live: LiveHub) -> None:
    """What follow_rows does when the read model's version moves."""
    live.kpi_version += 1
    live._notify()


async def test_a_change_while_the_stream_read_wakes_its_next_wait_at_once():
    live = hub()
    seen = live.versions()  # the stream reads...
    kpis_moved(live)  # ...a batch lands meanwhile...
    await asyncio.wait_for(live.changed(30, seen), 1)  # ...and its wait returns at once to read it


async def test_with_nothing_new_a_stream_waits_for_the_next_change():
    live = hub()
    waiting = asyncio.create_task(live.changed(30, live.versions()))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    live.alert_version += 1
    live._notify()
    await asyncio.wait_for(waiting, 1)


async def test_a_wait_times_out_when_nothing_changes():
    live = hub()
    await asyncio.wait_for(live.changed(0.05, live.versions()), 1)
