"""take() joins the records a consumer held to those it fetched next (no broker: a fake consumer)."""

from __future__ import annotations

from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from salespulse.processor.batching import take

A, B = TopicPartition("t", 0), TopicPartition("t", 1)


def records(tp: TopicPartition, *offsets: int) -> list[ConsumerRecord]:
    return [ConsumerRecord(tp.topic, tp.partition, o, 0, 0, None, b"%d" % o, None, 0, 1, []) for o in offsets]


class Consumer:
    """Answers getmany from a script, and notes what it was asked."""

    def __init__(self, *answers: dict) -> None:
        self.answers, self.asked = list(answers), []

    async def getmany(self, timeout_ms: int, max_records: int) -> dict:
        self.asked.append((timeout_ms, max_records))
        return self.answers.pop(0)


def offsets(batch: dict) -> dict:
    return {tp: [r.offset for r in rs] for tp, rs in batch.items()}


async def test_the_records_fetched_next_follow_the_held_ones_per_partition():
    consumer = Consumer({A: records(A, 5, 6)}, {A: records(A, 7, 9), B: records(B, 0)})
    batch = await take(consumer, 10, 0.05, 0.02)
    assert offsets(batch) == {A: [5, 6, 7, 9], B: [0]}  # 8: a gap, as a transaction marker leaves
    assert consumer.asked == [(50, 10), (20, 8)]


async def test_nothing_more_is_fetched_for_an_empty_or_a_full_batch():
    empty = Consumer({})
    assert await take(empty, 10, 0.05, 0.02) == {}
    full = Consumer({A: records(A, 1, 2)})
    assert offsets(await take(full, 2, 0.05, 0.02)) == {A: [1, 2]}
    assert len(empty.asked) == len(full.asked) == 1


async def test_a_partition_fetched_again_from_an_earlier_offset_keeps_only_the_new_records():
    # A rebalance between the two fetches gave A back from its committed offset: the consumer's
    # position follows the second records, so the held ones are dropped, not handled twice.
    consumer = Consumer({A: records(A, 5, 6), B: records(B, 3)}, {A: records(A, 5, 6, 7), B: records(B, 4)})
    assert offsets(await take(consumer, 10, 0.05, 0.02)) == {A: [5, 6, 7], B: [3, 4]}


async def test_each_fetch_is_timed_as_it_ends():
    laps: list[tuple[str, int]] = []
    consumer = Consumer({A: records(A, 1)}, {A: records(A, 2)})
    await take(consumer, 10, 0.05, 0.02, lambda phase: laps.append((phase, len(consumer.asked))))
    assert laps == [("fetch", 1), ("fresh", 2)]
    laps.clear()
    consumer = Consumer({})
    await take(consumer, 10, 0.05, 0.02, lambda phase: laps.append((phase, len(consumer.asked))))
    assert laps == [("fetch", 1)]  # nothing held: no second fetch to time
