"""The processor's state changelog on a real broker: a write cut short is undone on restore."""

from __future__ import annotations

import orjson
from aiokafka import AIOKafkaProducer

from salespulse.processor.state import State
from tests.integration.conftest import new_topic

ROW_0 = "0|m|sales.orders|day|2026-11-23|rep|r1"
NEW_0 = "0|m|sales.orders|day|2026-11-23|rep|r2"
ROW_1 = "1|e|sales.orders|order:o1"


async def test_a_restore_undoes_a_write_cut_short_and_says_so_in_the_changelog(settings):
    client = settings.kafka_options()
    topic = await new_topic(client, "test-state-changelog", 2, **{"cleanup.policy": "compact"})
    producer = AIOKafkaProducer(**client, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        first = State(producer, topic)
        await first.restore(client, [0, 1])  # a worker taking the partitions marks them
        whole = {ROW_0: {"o": 3, "m": {"orders": 2}}, ROW_1: {"o": 3, "s": {"_kind": "order"}}}
        for sent in await first.write(whole):
            await sent
        # A worker killed mid-write: rows of both partitions sent, no commit marker after them.
        for key, value in [(ROW_0, {"o": 9, "m": {"orders": 5}}), (NEW_0, {"o": 9, "m": {"orders": 1}}),
                           (ROW_1, None)]:
            await producer.send_and_wait(topic, None if value is None else orjson.dumps(value),
                                         key=orjson.dumps(key), partition=int(key[0]))

        second = State(producer, topic)
        read, undone = await second.restore(client, [0, 1])
        assert second.data == whole
        assert undone == {ROW_0: whole[ROW_0], NEW_0: None, ROW_1: whole[ROW_1]}
        # per partition: the first restore's marker, the whole write's row and marker, the cut write
        assert read == {0: 1 + 2 + 2, 1: 1 + 2 + 1}

        third = State(producer, topic)  # the undoing is in the changelog: nothing left to undo
        _, undone = await third.restore(client, [0, 1])
        assert third.data == whole and undone == {}
    finally:
        await producer.stop()
