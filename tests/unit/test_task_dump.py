"""The worker's SIGUSR1 task dump names each coroutine a task waits in, not only the outermost."""

from __future__ import annotations

import asyncio

from salespulse.processor.__main__ import awaiting


async def test_a_task_dump_follows_the_await_chain_down_to_the_future():
    gate = asyncio.get_running_loop().create_future()

    async def inner() -> None:
        await gate

    async def outer() -> None:
        await inner()

    task = asyncio.create_task(outer())
    await asyncio.sleep(0)
    chain = awaiting(task)
    assert len(chain) == 3, chain
    assert ".outer (" in chain[0] and "test_task_dump.py:" in chain[0]
    assert ".inner (" in chain[1]
    assert chain[2].startswith("  awaits <Future pending")
    gate.set_result(None)
    await task
