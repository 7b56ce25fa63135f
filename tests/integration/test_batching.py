"""A worker's next batch on a real broker: what the consumer holds and what arrived since."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from salespulse.processor.batching import take
from tests.integration.conftest import eventually, new_topic


async def produce(producer: AIOKafkaProducer, topic: str, values: list[bytes]) -> None:
    for sent in [await producer.send(topic, value, partition=0) for value in values]:
        await sent


async def test_a_batch_takes_what_the_consumer_held_and_what_reached_the_broker_since(settings):
    client = settings.kafka_options()
    topic = await new_topic(client, "test-take", 1)
    producer = AIOKafkaProducer(**client, acks="all")
    consumer = AIOKafkaConsumer(**client, enable_auto_commit=False, auto_offset_reset="earliest")
    await producer.start()
    await consumer.start()
    tp = TopicPartition(topic, 0)
    try:
        consumer.assign([tp])
        await produce(producer, topic, [b"a1", b"a2"])
        first = await take(consumer, 100, 5.0, 0.5)
        assert [r.value for r in first[tp]] == [b"a1", b"a2"]

        # Taking them made the consumer fetch again: it now holds b1 (and b2) as they arrive,
        # and fetches nothing more until they are taken, while c1, c2 reach the broker.
        await produce(producer, topic, [b"b1", b"b2"])

        async def held() -> None:
            assert (consumer.highwater(tp) or 0) >= 3  # a fetch of b1 at least has come back
        await eventually(held, timeout=10)
        await produce(producer, topic, [b"c1", b"c2"])

        second = await take(consumer, 100, 5.0, 5.0)
        assert [r.value for r in second[tp]] == [b"b1", b"b2", b"c1", b"c2"]
        assert [r.offset for r in second[tp]] == [2, 3, 4, 5]

        # A batch never holds more than asked, and the rest comes next, in order.
        await produce(producer, topic, [b"d1", b"d2", b"d3"])
        await asyncio.sleep(0.2)
        third = await take(consumer, 2, 5.0, 0.5)
        fourth = await take(consumer, 2, 5.0, 0.5)
        assert [r.value for r in third[tp] + fourth[tp]] == [b"d1", b"d2", b"d3"]
    finally:
        await consumer.stop()
        await producer.stop()
