"""Several processor workers on the same topics: partitions spread across them, and workers
joining and leaving mid-stream (a clean stop, a SIGKILL, a restart under the same group
instance id) lose nothing and count nothing twice, checked against the independent
recomputation of the messy log (messy.py), on servers of the test's own.
"""

from __future__ import annotations

import asyncio
import random

from tests.integration.test_faults import Processor, messy_log_through


async def test_workers_joining_and_leaving_mid_stream_lose_nothing_and_count_nothing_twice(own):
    async def churn(workers: list[Processor], sending: asyncio.Task, rng: random.Random) -> None:
        first, second, third = workers
        steps = [
            second.start,  # joins: the group rebalances, partitions move with their rows
            third.start,  # three workers share the six partitions
            second.stop,  # leaves cleanly (SIGTERM): its batch in hand is committed first
            third.kill,  # crashes: its partitions wait out its session, then move
            third.start,  # comes back under the same instance id
            second.start,
        ]
        for step in steps:
            await asyncio.wait([sending], timeout=rng.uniform(2.0, 4.0))
            await step() if asyncio.iscoroutinefunction(step) else await asyncio.to_thread(step)
        for worker in workers:
            log = (worker.settings.data_dir / "processor.log").read_text()
            assert "took partitions" in log, f"{worker.settings.processor_instance_id} never owned a partition"
        assert not sending.done(), "the log should still be flowing after every join and leave"

    own.settings = own.settings.model_copy(update={"processor_session_timeout": 8.0})
    await messy_log_through(own, 20240305, churn, workers=3, pause=0.3)  # about a minute of sending
