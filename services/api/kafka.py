"""The API's Kafka side: producing events, targets and records; replaying the compacted topics."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer, ConsumerRecord

from salespulse.api.models import TargetIn, TargetOut
from salespulse.contracts.directory import DIRECTORY_TOPICS, InvalidRecord, decode_record
from salespulse.contracts.topics import KPI_TARGETS, read_compacted_records
from salespulse.domain.targets import TargetId
from salespulse.readmodel import TARGET_COPIES, Copies, ReadModel
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


async def copy_topic(bootstrap_servers: str, topic: str, readmodel: ReadModel, copies: Copies,
                     check: Callable[[str, Any], object]) -> int:
    """Make Redis's copies of a compacted topic of one partition (targets, rules, profiles) what
    the topic holds, each document with its offset (readmodel.Copies): a document written
    meanwhile by the API, at a later offset, is kept, whichever lands last.

    Anything may produce to these topics, not only the API: a record that is not JSON, or that
    `check(key, document)` refuses (ValueError: a key that names nothing, a document the API's
    reads could not serve), is logged and left out, as if deleted; once in Redis it would fail
    every reading that uses it. Records read."""
    docs: list[tuple[str, dict | None, int]] = []
    read_up_to = -1

    async def before(end: dict[int, int]) -> None:
        nonlocal read_up_to
        (end_offset,) = end.values()
        read_up_to = end_offset - 1
        if await readmodel.forget_copies_from(copies, end_offset):
            log.warning("Redis held %s documents at offsets %s has not reached (%d): copied from an earlier topic "
                        "of that name, dropped", copies.hash, topic, end_offset)

    async def apply(record: ConsumerRecord) -> None:
        key = record.key.decode("utf-8", "replace")
        try:
            doc = None if record.value is None else orjson.loads(record.value)
            if doc is not None:
                check(key, doc)
        except ValueError as exc:  # orjson.JSONDecodeError and pydantic's ValidationError are ValueErrors
            log.warning("ignored the record of %s at offset %d keyed %r: %s", topic, record.offset, key, exc)
            return
        docs.append((key, doc, record.offset))

    read = await read_compacted_records(bootstrap_servers, topic, apply, before)
    await readmodel.replace_copies(copies, docs, read_up_to)
    return read


async def replay_targets(bootstrap_servers: str, readmodel: ReadModel) -> int:
    """Copy the compacted kpi.targets topic into Redis (it is the durable copy of targets)."""
    return await copy_topic(bootstrap_servers, KPI_TARGETS, readmodel, TARGET_COPIES, check_target)


def check_target(key: str, doc: Any) -> None:
    """ValueError unless `key` is a target id and `doc` a target as readings and GET /targets use it."""
    tid = TargetId.decode(key)
    if not isinstance(doc, dict):
        raise ValueError("a target is a JSON object")
    TargetIn.model_validate(doc)
    TargetOut.model_validate(TargetOut.served(tid, doc))


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
