"""A worker started on the state of an earlier version, which kept measure rows per topic.

Its changelog and Redis hold rows of one topic each ("3|m|sales.calls|day|..." and the hash
field `sales.calls/3`). The new worker folds them into rows per cell, in the changelog too,
replaces the Redis fields, and recognises every event the old rows had applied: the group
has no committed offset here, so it replays the whole log over them and must count nothing
twice. On a broker and Redis of its own, so nothing else is in the log."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from zoneinfo import ZoneInfo

import orjson
from aiokafka import AIOKafkaProducer

from salespulse.contracts.events import decode_event
from salespulse.contracts.topics import state_changelog
from salespulse.domain.aggregation import Aggregator, RowKey, SourceEvent, merge_measures, parse_measure_key
from salespulse.domain.directory import Directory
from salespulse.domain.money import CurrencyConverter
from salespulse.domain.retention import Retention
from salespulse.processor.state import State
from salespulse.readmodel import SYNCED, ReadModel, keys_set, row_hash
from tests.integration.conftest import caught_up, cloudevent, eventually, start_processor, stop_processor

DAY = "2026-10-14"


def events() -> list[tuple[str, str, dict]]:
    """(topic, key, event): calls and deals of two reps on one day, a deal moved on twice."""
    out = []
    for i in range(12):
        rep = f"rep-{i % 2}"
        at = f"{DAY}T{9 + i // 2:02d}:{i * 4:02d}:00+02:00"
        out.append(("sales.calls", f"c{i}", cloudevent("call.ended", {
            "call_id": f"c{i}", "rep_id": rep, "direction": "outbound" if i % 3 else "inbound", "started_at": at,
            "status": "answered" if i % 4 else "missed", "ended_at": f"{DAY}T{9 + i // 2:02d}:{i * 4 + 2:02d}:00+02:00",
            **({"answered_at": at} if i % 4 else {})})))
    for i, stage in enumerate(["lead", "proposal", "won", "lead", "lost"]):
        deal = f"d{i % 3}"
        out.append(("sales.deals", deal, cloudevent("deal.changed", {
            "deal_id": deal, "rep_id": f"rep-{i % 2}", "stage": stage, "amount": f"{1000 + 250 * i}.00",
            "currency": "EUR", "created_at": f"{DAY}T08:00:00+02:00", "updated_at": f"{DAY}T1{i}:30:00+02:00",
            **({"closed_at": f"{DAY}T1{i}:30:00+02:00"} if stage in ("won", "lost") else {})})))
    return out


def aggregator(settings) -> Aggregator:
    return Aggregator(ZoneInfo(settings.business_timezone),
                      CurrencyConverter(settings.reporting_currency, settings.fx_rates), Directory(),
                      settings.customer_activity_days, Retention({}, 0))


def merged(rows) -> dict:
    """Measures per row (RowKey) of (key, row) pairs, summed over partitions, without zeros:
    what a reading sums."""
    parts = defaultdict(list)
    for key, row in rows:
        parsed = parse_measure_key(key)
        if parsed is not None:
            parts[parsed[1]].append(row["m"])
    summed = {row: {n: v for n, v in merge_measures(ms).items() if v} for row, ms in parts.items()}
    return {row: m for row, m in summed.items() if m}


async def test_a_worker_merges_an_earlier_versions_rows_per_topic_and_counts_nothing_twice(own):
    settings = own.settings
    client = settings.kafka_options()
    producer = AIOKafkaProducer(**client, acks="all")
    await producer.start()
    readmodel = ReadModel.from_url(settings.redis_url)
    processor = None
    try:
        sent = []
        for topic, key, event in events():
            meta = await producer.send_and_wait(topic, orjson.dumps(event), key=key.encode())
            sent.append(SourceEvent(topic, meta.partition, meta.offset, decode_event(orjson.dumps(event))))

        # The earlier version's state: each topic's rows apart, keyed by topic, one offset each.
        legacy: dict[str, dict] = {}
        for topic in ("sales.calls", "sales.deals"):
            result = aggregator(settings).apply({}, [e for e in sent if e.topic == topic])
            legacy.update(result.entities)
            for key, row in result.measures.items():
                partition, cell = key.split("|m|")
                legacy[f"{partition}|m|{topic}|{cell}"] = {"o": row["o"][topic], "m": row["m"]}
        changelog = state_changelog(settings.processor_app_id)
        for key, row in legacy.items():  # no commit markers: that version wrote none
            await producer.send(changelog, orjson.dumps(row), key=orjson.dumps(key), partition=int(key.split("|")[0]))
        await producer.flush()
        now = time.time()
        for key, row in legacy.items():
            partition, kind, rest = key.split("|", 2)
            if kind == "m":
                topic, period, start, dim, dim_key = rest.split("|", 4)
                await readmodel.redis.hset(row_hash(RowKey(period, start, dim, dim_key)), f"{topic}/{partition}",
                                           orjson.dumps({"m": row["m"], "t": now}))
                await readmodel.redis.sadd(keys_set(period, start, dim), dim_key)
                await readmodel.redis.hset(SYNCED, f"{topic}/{partition}", str(now))

        expected = aggregator(settings).apply({}, sent)  # all topics at once, rows per cell
        want = merged(expected.measures.items())
        assert want == merged((k.replace("|sales.calls|", "|").replace("|sales.deals|", "|"), v)
                              for k, v in legacy.items())  # the same figures, kept apart

        processor = start_processor(settings)
        await eventually(lambda: caught_up(settings.kafka_bootstrap_servers, settings.processor_app_id), timeout=60)

        async def redis_has_the_figures_once() -> None:
            got = await readmodel.read_rows(want)
            assert {row: {n: v for n, v in m.items() if v} for row, m in got.items()} == want
            fields = {f for row in want for f in await readmodel.redis.hkeys(row_hash(row))}
            assert fields <= {str(p).encode() for p in range(settings.topic_partitions)}, fields
        await eventually(redis_has_the_figures_once, timeout=60)
        stop_processor(processor)
        processor = None

        restored = State(producer, changelog)
        await restore_all(restored, client, settings.topic_partitions)
        rows = {k: v for k, v in restored.data.items() if "|m|" in k}
        assert rows == expected.measures  # per cell, each topic's offset kept
        assert {k: v for k, v in restored.data.items() if "|e|" in k} == expected.entities
    finally:
        if processor is not None:
            stop_processor(processor)
        await readmodel.close()
        await producer.stop()


async def restore_all(state: State, client: dict, partitions: int) -> None:
    """Read the changelog as a worker would (without the lease: the worker is stopped first)."""
    await asyncio.wait_for(state.restore(client, range(partitions)), 60)
