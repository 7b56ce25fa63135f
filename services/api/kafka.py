"""The API's Kafka side: producing events, targets and records; replaying the compacted topics."""

from __future__ import annotations

import asyncio
import logging

import orjson
from aiokafka import AIOKafkaProducer, ConsumerRecord

from salespulse.contracts.directory import DIRECTORY_TOPICS, InvalidRecord, decode_record
from salespulse.contracts.topics import KPI_TARGETS, read_compacted, read_compacted_records
from salespulse.domain.targets import TargetId
from salespulse.readmodel import ReadModel
from salespulse.settings import kafka_producer

log = logging.getLogger(__name__)


def new_producer(bootstrap_servers: str) -> AIOKafkaProducer:
    # acks=all + idempotence: a 2xx answer means the event is durably in Kafka, once.
    return AIOKafkaProducer(
        **kafka_producer(bootstrap_servers), acks="all", enable_idempotence=True,
        linger_ms=2, request_timeout_ms=15000,
    )


async def kafka_answers(producer: AIOKafkaProducer, timeout: float = 3.0) -> bool:
    try:
        await asyncio.wait_for(producer.client.fetch_all_metadata(), timeout)
        return True
    except Exception:  # noqa: BLE001 - any failure means "not ready"
        return False


async def replay_targets(bootstrap_servers: str, readmodel: ReadModel) -> int:
    """Copy the compacted kpi.targets topic into Redis (it is the durable copy of targets)."""

    async def apply(key: bytes, value: bytes | None) -> None:
        tid = TargetId.decode(key.decode())
        if value is None:
            await readmodel.delete_target(tid)
        else:
            await readmodel.put_target(tid, orjson.loads(value))

    return await read_compacted(bootstrap_servers, KPI_TARGETS, apply)


async def replay_directory(bootstrap_servers: str, readmodel: ReadModel) -> int:
    """Copy the directory.* topics into Redis; invalid records are logged and left out. Records
    Redis holds at offsets the topic has not reached came from an earlier topic of that name
    (ReadModel.forget_records_from): they go first."""
    copied = 0
    for kind, topic in DIRECTORY_TOPICS.items():

        async def before(end: dict[int, int], kind=kind, topic=topic) -> None:
            (end_offset,) = end.values()  # directory topics have one partition
            if await readmodel.forget_records_from(kind, end_offset):
                log.warning("Redis held %s records at offsets %s has not reached (%d): copied from an earlier "
                            "topic of that name, dropped", kind, topic, end_offset)

        async def apply(record: ConsumerRecord, topic=topic) -> None:
            try:
                kind, name, doc = decode_record(topic, record.key, record.value)
            except InvalidRecord as exc:
                log.warning("ignored an invalid directory record: %s", exc)
                return
            await readmodel.write_records([(kind, name, doc, record.offset)])

        copied += await read_compacted_records(bootstrap_servers, topic, apply, before)
    return copied
