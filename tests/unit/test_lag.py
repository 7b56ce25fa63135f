"""The lag gauge is read outside the worker's lock, so a rebalance can take partitions away
while it awaits a position: the partitions gone are skipped, the worker goes on."""

from __future__ import annotations

from aiokafka import TopicPartition

from salespulse.processor import metrics
from salespulse.processor.app import Worker
from salespulse.settings import Settings


class RebalancedMidway:
    """The consumer calls observe_lag makes, with aiokafka's assertions; the first position()
    awaited is where a rebalance takes every other partition away."""

    def __init__(self, partitions: list[TopicPartition]) -> None:
        self.assigned = set(partitions)

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    def highwater(self, tp: TopicPartition) -> int:
        assert tp in self.assigned, "Partition is not assigned"  # as aiokafka's
        return 100

    async def position(self, tp: TopicPartition) -> int:
        self.assigned = {tp}
        return 40


async def test_partitions_taken_away_while_a_position_is_awaited_are_skipped():
    worker = Worker(Settings(kafka_bootstrap_servers="127.0.0.1:1", redis_url="redis://127.0.0.1:1/0"))
    real, worker.consumer = worker.consumer, RebalancedMidway([TopicPartition("sales.calls", p) for p in range(6)])
    try:
        await worker.observe_lag()  # raised AssertionError, which ended the worker (seen in test_scale_out)
    finally:
        await real.stop()
        await worker.producer.stop()
    [kept] = worker.consumer.assigned
    assert metrics.LAG.labels(kept.topic, str(kept.partition))._value.get() == 60
