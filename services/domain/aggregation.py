"""Apply a batch of events to partition-owned rows, idempotently.

Every row lives in one key-value store (the processor's Faust table) and belongs to exactly
one source partition, whose number starts its key:

    "{partition}|e|{topic}|{entity_id}"                         entity state
    "{partition}|m|{topic}|{period}|{start}|{dim}|{key}"        partial measures
    "{partition}|d|{topic}"                                     last dead-lettered offset

and each row keeps `o`, the source offset it last applied. Replaying events after a crash
(Kafka redelivers from the last committed offset) therefore changes nothing that was already
applied. The caller writes the measure rows of a batch before its entity rows, into the same
changelog partition, so a durable entity row implies its measure rows are durable too.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from salespulse.domain import entities
from salespulse.domain.directory import Directory
from salespulse.domain.events import (
    CallAnswered,
    CallEnded,
    CallStarted,
    DealChanged,
    Envelope,
    OrderCancelled,
    OrderPlaced,
)
from salespulse.domain.money import CurrencyConverter
from salespulse.domain.periods import PERIODS, SNAPSHOT, bucket_starts


class RowKey(NamedTuple):
    """One cell of the measure cube: period bucket x dimension value."""

    period: str  # day|week|month|quarter|year, or `now` for state measures
    start: str  # ISO date of the bucket's first day; "" for `now`
    dim: str
    key: str


class SourceEvent(NamedTuple):
    topic: str
    partition: int
    offset: int
    envelope: Envelope


def entity_key(partition: int, topic: str, entity_id: str) -> str:
    return f"{partition}|e|{topic}|{entity_id}"


def measure_key(partition: int, topic: str, row: RowKey) -> str:
    return f"{partition}|m|{topic}|{row.period}|{row.start}|{row.dim}|{row.key}"


def deadletter_key(partition: int, topic: str) -> str:
    return f"{partition}|d|{topic}"


def key_partition(store_key: str) -> int:
    return int(store_key.split("|", 1)[0])


def parse_measure_key(store_key: str) -> tuple[int, str, RowKey] | None:
    """(partition, topic, row) of a measure row key; None for an entity row key."""
    partition, kind, rest = store_key.split("|", 2)
    if kind != "m":
        return None
    topic, period, start, dim, key = rest.split("|", 4)
    return int(partition), topic, RowKey(period, start, dim, key)


@dataclass
class BatchResult:
    """Rows to write (measures first, then entities) and what happened to each event."""

    measures: dict[str, dict[str, Any]] = field(default_factory=dict)
    entities: dict[str, dict[str, Any]] = field(default_factory=dict)
    outcomes: Counter = field(default_factory=Counter)  # (topic, applied|duplicate|stale|replayed)
    rejected: list[tuple[SourceEvent, str]] = field(default_factory=list)

    def count(self, outcome: str) -> int:
        return sum(n for (_, o), n in self.outcomes.items() if o == outcome)


def _entity_of(envelope: Envelope) -> tuple[str, str]:
    data = envelope.data
    if isinstance(data, (CallStarted, CallAnswered, CallEnded)):
        return "call", data.call_id
    if isinstance(data, DealChanged):
        return "deal", data.deal_id
    if isinstance(data, (OrderPlaced, OrderCancelled)):
        return "order", data.order_id
    raise TypeError(f"no entity for {type(data).__name__}")


class Aggregator:
    """Turns validated events into row updates; pure: no I/O, the store is any mapping."""

    def __init__(self, tz: ZoneInfo, converter: CurrencyConverter, directory: Directory | None = None) -> None:
        self.tz = tz
        self.converter = converter
        self.directory = directory if directory is not None else Directory()

    def transition(self, kind: str, state, event_id: str, data):
        if kind == "call":
            return entities.next_call_state(state, event_id, data)
        if kind == "deal":
            return entities.next_deal_state(state, event_id, data, self.converter)
        return entities.next_order_state(state, event_id, data, self.converter)

    @staticmethod
    def contributions(kind: str, state) -> list[entities.Contribution]:
        if kind == "call":
            return entities.call_contributions(state)
        if kind == "deal":
            return entities.deal_contributions(state)
        return entities.order_contributions(state)

    def rows(self, contributions: Iterable[entities.Contribution], sign: int,
             into: dict[RowKey, dict[str, int]]) -> None:
        for c in contributions:
            if c.at is None:
                buckets = [(SNAPSHOT, "")]
            else:
                starts = bucket_starts(c.at, self.tz)
                buckets = [(kind, starts[kind].isoformat()) for kind in PERIODS]
            for dim, key in c.dims:
                for period, start in buckets:
                    cell = into[RowKey(period, start, dim, key)]
                    for name, value in c.measures:
                        cell[name] = cell.get(name, 0) + sign * value

    def apply(self, store: Mapping[str, dict[str, Any]], events: Iterable[SourceEvent]) -> BatchResult:
        result = BatchResult()
        states: dict[str, tuple[int, Any]] = {}  # entity rows changed in this batch

        def measure_row(k: str) -> dict[str, Any]:
            row = result.measures.get(k)
            if row is None:
                stored = store.get(k)
                row = {"o": stored["o"], "m": dict(stored["m"])} if stored else {"o": -1, "m": {}}
            return row

        for event in events:
            env = event.envelope
            kind, entity_id = _entity_of(env)
            ekey = entity_key(event.partition, event.topic, entity_id)
            if ekey in states:
                last_offset, old = states[ekey]
            else:
                stored = store.get(ekey)
                last_offset = stored["o"] if stored else -1
                old = entities.state_from_json(stored["s"]) if stored else None
            if event.offset <= last_offset:
                result.outcomes[event.topic, "replayed"] += 1
                continue
            try:
                new, outcome = self.transition(kind, old, env.id, env.data)
            except ValueError as exc:  # e.g. a currency with no exchange rate
                result.rejected.append((event, str(exc)))
                continue
            result.outcomes[event.topic, outcome] += 1
            if outcome != entities.APPLIED:
                continue
            new = entities.enrich(new, self.directory)
            deltas: dict[RowKey, dict[str, int]] = defaultdict(dict)
            self.rows(self.contributions(kind, old), -1, deltas)
            self.rows(self.contributions(kind, new), +1, deltas)
            for row_key, delta in deltas.items():
                changes = {name: v for name, v in delta.items() if v}
                if not changes:
                    continue
                mkey = measure_key(event.partition, event.topic, row_key)
                row = measure_row(mkey)
                if event.offset <= row["o"]:
                    continue  # applied before a crash; its entity row had not been written
                measures = row["m"]
                for name, v in changes.items():
                    total = measures.get(name, 0) + v
                    if total:
                        measures[name] = total
                    else:
                        measures.pop(name, None)
                row["o"] = event.offset
                result.measures[mkey] = row
            states[ekey] = (event.offset, new)

        for ekey, (offset, state) in states.items():
            result.entities[ekey] = {"o": offset, "s": entities.state_to_json(state)}
        return result


def merge_measures(parts: Iterable[Mapping[str, int]]) -> dict[str, int]:
    """Sum partial measures (from partitions, sources or finer dimensions)."""
    total: dict[str, int] = {}
    for part in parts:
        for name, value in part.items():
            total[name] = total.get(name, 0) + value
    return total
