"""Kafka topics of DESIGN.md with explicit partitions, replication and retention; created at start."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import GroupCoordinatorNotAvailableError, TopicAlreadyExistsError

from salespulse.contracts.directory import DIRECTORY_TOPICS
from salespulse.contracts.events import SOURCE_TOPICS
from salespulse.settings import Settings, kafka_client

log = logging.getLogger(__name__)

DEADLETTER = "sales.deadletter"
KPI_UPDATES = "kpi.updates"
KPI_TARGETS = "kpi.targets"
KPI_RULES = "kpi.rules"
KPI_ALERTS = "kpi.alerts"
WALLBOARD_PROFILES = "wallboard.profiles"


def state_changelog(processor_app_id: str) -> str:
    """The processor's state changelog (the name Faust gave it in earlier versions)."""
    return f"{processor_app_id}-state-changelog"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication: int
    config: dict[str, str] = field(default_factory=dict)


def topic_specs(settings: Settings) -> list[TopicSpec]:
    p, r = settings.topic_partitions, settings.topic_replication_factor
    keep_forever = {"retention.ms": "-1", "cleanup.policy": "delete"}  # replayable history
    compacted = {"cleanup.policy": "compact"}
    specs = [TopicSpec(name, p, r, keep_forever) for name in SOURCE_TOPICS]
    specs += [
        TopicSpec(DEADLETTER, p, r, keep_forever),
        TopicSpec(KPI_UPDATES, p, r, compacted),  # latest value per kpi/by/key/period
        TopicSpec(KPI_TARGETS, 1, r, compacted),
        TopicSpec(KPI_RULES, 1, r, compacted),
        TopicSpec(WALLBOARD_PROFILES, 1, r, compacted),
        # Every alert change, in order (one partition: a small stream whose history GET /alerts serves).
        TopicSpec(KPI_ALERTS, 1, r, keep_forever),
    ]
    specs += [TopicSpec(topic, 1, r, compacted) for topic in DIRECTORY_TOPICS.values()]  # reference data
    # The processor's rows, partitioned like the sources: the latest value of each row.
    specs.append(TopicSpec(state_changelog(settings.processor_app_id), p, r, compacted))
    return specs


async def _described(admin: AIOKafkaAdminClient, topics: list[str], attempts: int = 20) -> list[dict]:
    """Topic descriptions once the broker reports every topic with its partitions: right after
    creation the metadata may still show a topic with none."""
    for _ in range(attempts - 1):
        descriptions = await admin.describe_topics(topics)
        if all(d["partitions"] and not d.get("error_code") for d in descriptions):
            return descriptions
        await asyncio.sleep(0.25)
    return await admin.describe_topics(topics)


COORDINATOR_ATTEMPTS = 40  # every half second: a new broker's offsets topic takes seconds to appear


async def group_lag(bootstrap_servers: str, group: str, topics: Iterable[str]) -> dict[TopicPartition, int]:
    """Records of each partition of `topics` past the offset `group` has committed there (all
    of them where it has none): what a member of the group starting now would read first."""
    admin = AIOKafkaAdminClient(**kafka_client(bootstrap_servers))
    consumer = AIOKafkaConsumer(**kafka_client(bootstrap_servers), enable_auto_commit=False)
    await admin.start()
    await consumer.start()
    try:
        partitions = [TopicPartition(d["topic"], p["partition"])
                      for d in await admin.describe_topics(list(topics)) for p in d["partitions"]]
        for attempt in range(COORDINATOR_ATTEMPTS):
            try:
                committed = await admin.list_consumer_group_offsets(group, partitions=partitions)
                break
            except GroupCoordinatorNotAvailableError:  # a new broker creating its offsets topic
                if attempt == COORDINATOR_ATTEMPTS - 1:
                    raise
                await asyncio.sleep(0.5)
        ends = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
        await admin.close()
    start = {tp: meta.offset for tp, meta in committed.items() if meta.offset >= 0}
    return {tp: end - start.get(tp, 0) for tp, end in ends.items()}


async def partitions_of(bootstrap_servers: str, topic: str) -> list[int]:
    """The partition numbers of a topic, asked of the cluster (empty if it does not exist)."""
    admin = AIOKafkaAdminClient(**kafka_client(bootstrap_servers))
    await admin.start()
    try:
        (description,) = await admin.describe_topics([topic])
        return sorted(p["partition"] for p in description["partitions"])
    finally:
        await admin.close()


async def read_compacted(bootstrap_servers: str, topic: str,
                           apply: Callable[[bytes, bytes | None], Awaitable[None]]) -> int:
    """Read a compacted topic from the start to its current end; `apply(key, value)` each record."""
    return await read_compacted_records(bootstrap_servers, topic, lambda record: apply(record.key, record.value))


async def read_compacted_records(bootstrap_servers: str, topic: str,
                                 apply: Callable[[ConsumerRecord], Awaitable[None]],
                                 before: Callable[[dict[int, int]], Awaitable[None]] | None = None) -> int:
    """Read a compacted topic from the start to its current end; `apply(record)` each record,
    after `before(end)` if given: partition -> its end offset, the one read up to."""
    partitions = [TopicPartition(topic, p) for p in await partitions_of(bootstrap_servers, topic)]
    if not partitions:
        raise RuntimeError(f"topic {topic} does not exist")
    consumer = AIOKafkaConsumer(**kafka_client(bootstrap_servers), enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        if before is not None:
            await before({tp.partition: offset for tp, offset in end.items()})
        copied = 0
        while [tp for tp in partitions if await consumer.position(tp) < end[tp]]:
            batches = await consumer.getmany(timeout_ms=1000)
            for records in batches.values():
                for record in records:
                    await apply(record)
                    copied += 1
        return copied
    finally:
        await consumer.stop()


class TopicMismatch(RuntimeError):
    """An existing topic does not have the partitions the processor's state is laid out for."""


async def ensure_topics(settings: Settings) -> None:
    """Create any missing topic and check that the source topics have TOPIC_PARTITIONS.

    The processor's table is co-partitioned with the source topics, so a source topic with
    another partition count is refused with a clear message rather than half-processed.
    """
    admin = AIOKafkaAdminClient(**settings.kafka_options())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in topic_specs(settings) if s.name not in existing]
        if missing:
            try:
                await admin.create_topics([
                    NewTopic(s.name, num_partitions=s.partitions, replication_factor=s.replication,
                             topic_configs=s.config) for s in missing
                ])
            except TopicAlreadyExistsError:  # a concurrent starter created them first
                pass
            log.info("created topics %s", ", ".join(s.name for s in missing))
        for description in await _described(admin, list(SOURCE_TOPICS)):
            count = len(description["partitions"])
            if count != settings.topic_partitions:
                raise TopicMismatch(
                    f"topic {description['topic']} has {count} partitions but TOPIC_PARTITIONS is "
                    f"{settings.topic_partitions}; set TOPIC_PARTITIONS={count} or repartition the topic")
    finally:
        await admin.close()
