"""How far a consumer group is behind, asked of a real broker (the bench's crash recovery waits
for a restarted worker to handle that many events, and tests wait for a group to catch up)."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from salespulse.contracts.topics import group_lag
from tests.integration.conftest import new_topic, unique


async def test_a_groups_lag_counts_from_its_committed_offsets_or_from_the_start(settings):
    client = settings.kafka_options()
    topic = await new_topic(client, "test-lag", 3)
    producer = AIOKafkaProducer(**client, acks="all")
    await producer.start()
    try:
        for partition, count in ((0, 5), (1, 3)):  # partition 2 stays empty
            for sent in [await producer.send(topic, b"x", partition=partition) for _ in range(count)]:
                await sent
    finally:
        await producer.stop()
    bootstrap, group = settings.kafka_bootstrap_servers, unique("test-lag-group")
    p0, p1, p2 = (TopicPartition(topic, p) for p in range(3))

    assert await group_lag(bootstrap, group, [topic]) == {p0: 5, p1: 3, p2: 0}  # nothing committed

    consumer = AIOKafkaConsumer(**client, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([p0, p1])
        await consumer.commit({p0: OffsetAndMetadata(2, ""), p1: OffsetAndMetadata(3, "")})
    finally:
        await consumer.stop()
    assert await group_lag(bootstrap, group, [topic]) == {p0: 3, p1: 0, p2: 0}
