"""Apply a batch of events to partition-owned rows, idempotently.

Every row lives in one key-value store (the processor's state, kept in a changelog topic) and belongs to exactly
one source partition number, whose number starts its key:

    "{partition}|e|{topic}|{kind}:{entity_id}"                  entity state
    "{partition}|e|customer|{customer_id}"                      customer state (two topics)
    "{partition}|m|{period}|{start}|{dim}|{key}"                partial measures
    "{partition}|d|{topic}"                                     last dead-lettered offset

An entity row keeps `o`, the source offset it last applied; a measure row and the customer row
are fed by several topics (a measure row by every topic whose events reach its cell, partition
`partition` of each) and keep one offset per topic. Replaying events after a crash (Kafka
redelivers from the last committed offset) therefore changes nothing that was already
applied. A worker owns the same partition numbers of every sales.* topic (they are
co-partitioned, and the group assigns by range), so a measure row has one writer.

One row per cell for all the topics, rather than one per topic, because a batch's events of
different topics reach the same cells (a rep's calls, deals, activities and orders of the day):
a third fewer rows to write, copy to Redis and read back (live, in-process: 5.8 -> 3.9 rows an
event in batches of 700), and a fifth fewer in the state; each carries more measures, so the
work per event stayed the same (docs/performance.md). Earlier versions kept one per topic,
"{partition}|m|{topic}|{period}|...": `merge_topic_rows` folds those into these.

The caller must make a batch's rows of one partition durable all together or not at all (the
processor's changelog does, with commit markers). Offsets alone would cover a write cut
short for every row but the customer's: Kafka may redeliver the two topics that feed it
interleaved differently, and a customer's figures are not additive (a churn ends the spell an
order extends), so figures booked from one interleaving before a crash and the rest from
another after it need not add up.

The customer row relies on sales.orders and sales.customers being co-partitioned: both keyed
by customer_id, with the same partition count and Kafka's default partitioner.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from salespulse.domain import customers, entities, states
from salespulse.domain.directory import Directory
from salespulse.domain.events import (
    ActivityLogged,
    CallAnswered,
    CallEnded,
    CallStarted,
    CustomerChurned,
    DealChanged,
    Envelope,
    InvoiceIssued,
    OrderCancelled,
    OrderPlaced,
    PaymentReceived,
    SpendRecorded,
    SurveyAnswered,
)
from salespulse.domain.money import CurrencyConverter
from salespulse.domain.periods import PERIODS, SNAPSHOT, local_day, period_start
from salespulse.domain.retention import EXPIRING_KINDS, KEEP_EVERYTHING, Retention, unmatched


class RowKey(NamedTuple):
    """One cell of the measure cube: period bucket x dimension value."""

    period: str  # day|week|month|quarter|year, or `now` for state measures
    start: str  # ISO date of the bucket's first day; "" for `now`
    dim: str
    key: str


class Cell(NamedTuple):
    """What a batch's measure row is (BatchResult.cells): its source partition number, its cell,
    and the topics whose events changed it in the batch (a kpi.updates push values their KPIs)."""

    partition: int
    row: RowKey
    topics: set[str]


class SourceEvent(NamedTuple):
    topic: str
    partition: int
    offset: int
    envelope: Envelope


def entity_key(partition: int, topic: str, kind: str, entity_id: str) -> str:
    return f"{partition}|e|{topic}|{kind}:{entity_id}"


CUSTOMER_ROW = "|e|customer|"  # what a customer row's key has after its partition


def customer_key(partition: int, customer_id: str) -> str:
    return f"{partition}{CUSTOMER_ROW}{customer_id}"


def measure_key(partition: int, row: tuple[str, str, str, str]) -> str:
    """`row` is a RowKey or the plain (period, start, dim, key) tuple the aggregator uses."""
    period, start, dim, key = row
    return f"{measure_prefix(partition)}{period}|{start}|{dim}|{key}"


def measure_prefix(partition: int) -> str:
    """What the keys of a partition's measure rows start with."""
    return f"{partition}|m|"


def deadletter_key(partition: int, topic: str) -> str:
    return f"{partition}|d|{topic}"


def key_partition(store_key: str) -> int:
    return int(store_key.split("|", 1)[0])


_BUCKET_KINDS = frozenset((*PERIODS, SNAPSHOT))


def parse_measure_key(store_key: str) -> tuple[int, RowKey] | None:
    """(partition, row) of a measure row key; None for any other key (a row of one topic's
    measures, as earlier versions kept them, included: `merge_topic_rows`)."""
    partition, kind, rest = store_key.split("|", 2)
    if kind != "m":
        return None
    period, start, dim, key = rest.split("|", 3)
    if period not in _BUCKET_KINDS:
        return None
    return int(partition), RowKey(period, start, dim, key)


def merge_topic_rows(store: Mapping[str, dict[str, Any]], partitions: Iterable[int] | None = None,
                     ) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """The measure rows kept per topic by earlier versions ("3|m|sales.calls|day|..."), folded
    into rows per cell: (rows to write, per-topic keys to delete), of `partitions` (None: all).
    A cell's row keeps each topic's offset and the sum of the topics' measures (their names
    differ by topic, and where two topics book the same measure, a reading summed their rows
    anyway)."""
    rows: dict[str, dict[str, Any]] = {}
    legacy = []
    heads = None if partitions is None else {str(p) for p in partitions}
    for key, row in store.items():
        parts = key.split("|", 3)
        if len(parts) < 4 or parts[1] != "m" or parts[2] in _BUCKET_KINDS:
            continue  # not a measure row, or one per cell already
        partition, _, topic, cell = parts
        if heads is not None and partition not in heads:
            continue
        legacy.append(key)
        mkey = f"{partition}|m|{cell}"
        merged = rows.get(mkey)
        if merged is None:
            current = store.get(mkey)
            merged = rows[mkey] = ({"o": dict(current["o"]), "m": dict(current["m"])} if current
                                   else {"o": {}, "m": {}})
        merged["o"][topic] = max(row["o"], merged["o"].get(topic, -1))
        merged["m"] = {name: v for name, v in merge_measures((merged["m"], row["m"])).items() if v}
    return rows, legacy


def watermarks(store: Mapping[str, dict[str, Any]], sources: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int]:
    """For each source (topic, partition): the highest offset any of its stored measure rows
    has applied (-1 if none), the watermark Aggregator.apply takes."""
    marks = {source: -1 for source in sources}
    partitions = {str(partition) for _, partition in marks}
    for key, row in store.items():
        head, kind, _ = key.split("|", 2)
        if kind == "m" and head in partitions:
            partition = int(head)
            for topic, offset in row["o"].items():
                source = (topic, partition)
                if source in marks and offset > marks[source]:
                    marks[source] = offset
    return marks


@dataclass
class BatchResult:
    """Rows to write (measures first, then entities) and what happened to each event."""

    measures: dict[str, dict[str, Any]] = field(default_factory=dict)
    cells: dict[str, Cell] = field(default_factory=dict)  # what each of the measures is, by key
    entities: dict[str, dict[str, Any]] = field(default_factory=dict)
    outcomes: Counter = field(default_factory=Counter)  # (topic, applied|duplicate|stale|replayed)
    rejected: list[tuple[SourceEvent, str]] = field(default_factory=list)
    watermarks: dict[tuple[str, int], int] = field(default_factory=dict)  # see Aggregator.apply

    def count(self, outcome: str) -> int:
        return sum(n for (_, o), n in self.outcomes.items() if o == outcome)


_ENTITY_OF: dict[type, tuple[str, str]] = {
    CallStarted: ("call", "call_id"), CallAnswered: ("call", "call_id"), CallEnded: ("call", "call_id"),
    DealChanged: ("deal", "deal_id"),
    OrderPlaced: ("order", "order_id"), OrderCancelled: ("order", "order_id"),
    ActivityLogged: ("activity", "activity_id"),
    SurveyAnswered: ("survey", "survey_id"),
    InvoiceIssued: ("invoice", "invoice_id"), PaymentReceived: ("invoice", "invoice_id"),
    SpendRecorded: ("spend", "spend_id"),
    CustomerChurned: ("customer", "customer_id"),
}


_SNAPSHOT_BUCKETS = ((SNAPSHOT, ""),)
_UNSEEN = object()
CUSTOMER_CACHE_SIZE = 4096  # customers whose contributions and decoded states are remembered (then forgotten at once)
STATE_CACHE_SIZE = 20_000  # entity rows whose decoded state is remembered (then forgotten at once)

# Measure changes not yet spread over cells: (buckets, dims) -> measure -> change, where
# buckets are (period, start) pairs and dims (dim, key) pairs: the group's cells are their product.
Groups = dict[tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]], dict[str, int]]


def expand(groups: Groups, into: dict[tuple[str, str, str, str], dict[str, int]]) -> None:
    """Add each group's measure changes to every one of its cells."""
    for (buckets, dims), sums in groups.items():
        measures = [(name, value) for name, value in sums.items() if value]
        if not measures:
            continue
        for dim, key in dims:
            for period, start in buckets:
                cell = into.get((period, start, dim, key))
                if cell is None:
                    cell = into[(period, start, dim, key)] = {}
                for name, value in measures:
                    cell[name] = cell.get(name, 0) + value


def _entity_of(envelope: Envelope) -> tuple[str, str]:
    kind, id_field = _ENTITY_OF[type(envelope.data)]
    return kind, getattr(envelope.data, id_field)


@dataclass(slots=True)
class Remembered:
    """A customer's state as last seen, the walk of its orders, its contributions if computed,
    the walk's checkpoints (customers.rewalk), and, after a new last order, (the state before
    it, that state's walk, what the step contributed, that state's checkpoints): a
    cancellation of that order goes back to them."""

    state: Any
    walk: customers.Walk
    contributions: list[entities.Contribution] | None = None
    checkpoints: tuple[customers.Walk, ...] = ()
    undo: tuple[Any, customers.Walk, list[entities.Contribution], tuple[customers.Walk, ...]] | None = None


class Aggregator:
    """Turns validated events into row updates; pure: no I/O, the store is any mapping."""

    def __init__(self, tz: ZoneInfo, converter: CurrencyConverter, directory: Directory | None = None,
                 horizon_days: int = customers.DEFAULT_HORIZON_DAYS, retention: Retention = KEEP_EVERYTHING,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self.tz = tz
        self.converter = converter
        self.directory = directory if directory is not None else Directory()
        self.horizon_days = horizon_days
        self.retention = retention
        self.clock = clock
        self._today: date | None = None  # while a batch is applied: no rows for expired buckets
        self._bucket_cache: dict[tuple[date, tuple[str, ...] | None], tuple[tuple[str, str], ...]] = {}
        self._bucket_cache_today: date | None = None  # the day the bucket cache was computed for
        # row key -> (the stored JSON of its state, that state decoded): a row this aggregator
        # wrote or read is decoded once, not once per batch (a customer's state holds its orders).
        self._states: dict[str, tuple[dict[str, Any], Any]] = {}
        # The same for customer rows, apart: a few hundred customers are decoded over and over
        # (hundreds of orders each) when the many new calls and orders flush them out with the rest.
        self._customer_states: dict[str, tuple[dict[str, Any], Any]] = {}
        # customer id -> what is remembered of its last state seen: a customer's next change
        # starts from it (customer_groups).
        self._customer_cache: dict[str, Remembered] = {}

    def rows(self, old: Iterable[entities.Contribution], new: Iterable[entities.Contribution],
             into: dict[tuple[str, str, str, str], dict[str, int]]) -> None:
        """Add what `new` contributes and take away what `old` did, cell by cell. Cells are
        keyed by plain (period, start, dim, key) tuples, equal to RowKeys."""
        groups: Groups = {}
        self.groups(old, new, groups)
        expand(groups, into)

    def groups(self, old: Iterable[entities.Contribution], new: Iterable[entities.Contribution],
               into: Groups) -> None:
        """Add what `new` contributes and take away what `old` did, per (buckets, dims) group.

        The two are netted first, per (instant, dims, periods): an update usually changes a
        measure or two of the same contributions, so most of them cancel. What is left is kept
        per group, not yet spread over its dimension x period cells: the events of a batch
        share groups (a rep's calls of the day), and `expand` spreads each group once.
        """
        net: dict[tuple, dict[str, int]] = {}
        for sign, contributions in ((-1, old), (1, new)):
            for c in contributions:
                sums = net.setdefault((c.at, c.dims, c.periods), {})
                for name, value in c.measures:
                    sums[name] = sums.get(name, 0) + sign * value
        for (at, dims, periods), sums in net.items():
            buckets = _SNAPSHOT_BUCKETS if at is None else self._buckets(at, periods)
            if not buckets:
                continue
            group = into.get((buckets, dims))
            if group is None:
                group = into[(buckets, dims)] = {}
            for name, value in sums.items():
                if value:
                    group[name] = group.get(name, 0) + value

    def _buckets(self, at: datetime, periods: tuple[str, ...] | None) -> tuple[tuple[str, str], ...]:
        """(period, ISO start) of the buckets containing `at` that are still kept; memoised
        by local day while today stays the same (what is kept depends on it)."""
        day = local_day(at, self.tz)
        cached = self._bucket_cache.get((day, periods))
        if cached is None:
            starts = {kind: period_start(kind, day) for kind in PERIODS}
            cached = tuple((kind, starts[kind].isoformat()) for kind in (periods or PERIODS)
                           if self._today is None or not self.retention.bucket_expired(kind, starts[kind], self._today))
            self._bucket_cache[(day, periods)] = cached
        return cached

    def _decoded(self, key: str, encoded: dict[str, Any]):
        """The state of a stored row; decoded once per stored version (states are immutable)."""
        cached = (self._customer_states if CUSTOMER_ROW in key else self._states).get(key)
        if cached is not None and cached[0] is encoded:
            return cached[1]
        state = states.state_from_json(encoded)
        self._remember(key, encoded, state)
        return state

    def _remember(self, key: str, encoded: dict[str, Any], state) -> None:
        cache, size = ((self._customer_states, CUSTOMER_CACHE_SIZE) if CUSTOMER_ROW in key
                       else (self._states, STATE_CACHE_SIZE))
        if len(cache) >= size:
            cache.clear()
        cache[key] = (encoded, state)

    def customer_groups(self, customer_id: str, old, new, into: Groups) -> None:
        """Book what a customer's change from `old` to `new` changes in its contributions.

        Its contributions cover all of its kept orders, so computing them costs more the longer
        its history. The usual changes start from the walk of `old` (remembered), and change only
        the contributions the walk settles or leaves open (customers.Walk): a new last order
        (walked on over), a churn after the last order (the open spell ends there), the last
        order cancelled (the walk before it, remembered too). Any other change of its orders
        or churns (a late order, an older one cancelled, a late churn) walks both from the last
        checkpoint before the first difference (customers.rewalk). Anything else (its sector or
        folded history changed) nets everything `old` and `new` contribute."""
        cached = self._customer_cache.get(customer_id)
        if cached is not None and (cached.state is old or cached.state == old):
            if customers.extends(old, new):
                walk, checkpoints = cached.walk.copy(), list(cached.checkpoints)
                stepped = walk.step(new.orders[walk.walked:], checkpoints)
                self.groups(cached.walk.ending(), stepped + walk.ending(), into)
                self._remember_customer(customer_id, Remembered(
                    new, walk, checkpoints=customers.kept(checkpoints), undo=(old, cached.walk, stepped, cached.checkpoints)))
                return
            if customers.churned_after(old, new, cached.walk.last):
                walk = cached.walk.with_churns(new.churned_at)
                self.groups(cached.walk.ending(), walk.ending(), into)
                # The checkpoints hold: the added churns come after every order (customers.rewalk).
                self._remember_customer(customer_id, Remembered(new, walk, checkpoints=cached.checkpoints))
                return
            if cached.undo is not None and (cached.undo[0] is new or cached.undo[0] == new):
                _, walk, stepped, checkpoints = cached.undo  # back to the state before the last order
                self.groups(stepped + cached.walk.ending(), walk.ending(), into)
                self._remember_customer(customer_id, Remembered(new, walk, checkpoints=checkpoints))
                return
            if customers.same_but_orders_and_churns(old, new):
                rewalked = customers.rewalk(old, new, cached.checkpoints)
                if rewalked is not None:
                    old_part, new_part, walk, checkpoints = rewalked
                    self.groups(old_part, new_part, into)
                    self._remember_customer(customer_id, Remembered(new, walk, checkpoints=checkpoints))
                    return
        self.groups(self._customer_contributions(customer_id, old),
                    self._customer_contributions(customer_id, new), into)

    def _customer_contributions(self, customer_id: str, state) -> list[entities.Contribution]:
        """Memoised per customer with its walk (a state compares in a fraction of the time its
        contributions take; after a new last order only the walk is known, not the whole list)."""
        cached = self._customer_cache.get(customer_id)
        if cached is not None and cached.contributions is not None and (cached.state is state or cached.state == state):
            return cached.contributions
        checkpoints: list[customers.Walk] = []
        walk, contributions = customers.walked(customer_id, state, self.tz, self.horizon_days, checkpoints)
        if walk is not None:
            self._remember_customer(customer_id, Remembered(state, walk, contributions, customers.kept(checkpoints)))
        return contributions

    def _remember_customer(self, customer_id: str, remembered: "Remembered") -> None:
        if len(self._customer_cache) >= CUSTOMER_CACHE_SIZE:
            self._customer_cache.clear()
        self._customer_cache[customer_id] = remembered

    def apply(self, store: Mapping[str, dict[str, Any]], events: Iterable[SourceEvent],
              watermarks: Mapping[tuple[str, int], int] | None = None) -> BatchResult:
        """Rows changed by `events` (in offset order per source partition), read from `store`.

        `watermarks` (optional) maps a source (topic, partition) to an offset no stored measure
        row of that source has applied beyond: watermarks(store) of a restored store, then
        updated with each result's `watermarks`. An event above its source's watermark is new
        to every row, so its cells are summed over the whole batch and each row is written
        once, instead of checked and updated event by event (most of the time of a batch).
        Without it, or for events at or below it (a replay after a crash), rows are checked
        event by event.
        """
        batch = self.begin(store, watermarks)
        batch.feed(events)
        return batch.finish()

    def begin(self, store: Mapping[str, dict[str, Any]],
              watermarks: Mapping[tuple[str, int], int] | None = None) -> "Batch":
        """A batch to feed events to in parts, then finish: what apply() does at once."""
        now = self.clock()
        self._today = now.astimezone(self.tz).date() if self.retention.bucket_days else None
        if self._today != self._bucket_cache_today:
            self._bucket_cache, self._bucket_cache_today = {}, self._today
        return Batch(self, store, watermarks or {}, now)


class Batch:
    """One batch being applied (Aggregator.begin): fed its events in as many parts as the caller
    likes (the processor frees its event loop in between), then finished once. The cells of the
    events above their watermark are summed, what each entity they changed contributes is
    computed, and the entity rows encoded, once for the whole batch, not once per part (parts
    of 500 events cost 18 % more than whole batches of 10,000). The store must not change
    until the batch is finished."""

    def __init__(self, aggregator: Aggregator, store: Mapping[str, dict[str, Any]],
                 marks: Mapping[tuple[str, int], int], now: datetime) -> None:
        self.aggregator, self.store, self.marks, self.now = aggregator, store, marks, now
        self.result = BatchResult()
        self.changed: dict[str, tuple[Any, Any]] = {}  # entity rows changed in this batch: (offsets, state)
        # Changes of the events new to every row, summed per source partition.
        self.summing: dict[tuple[str, int], Groups] = {}
        # The entities those events changed: (source, kind, state before the batch's first of
        # them). What an entity contributes is booked once, from that state to its last (finish):
        # a call's start, answer and end in one batch of a replay cost one difference, not three.
        self.settling: dict[str, tuple[tuple[str, int], str, Any]] = {}

    def load(self, key: str):
        """(offsets, state) of an entity row, as this batch left it or as stored."""
        changed = self.changed.get(key)
        if changed is not None:
            return changed
        stored = self.store.get(key)
        if stored is None:
            return None, None
        return stored["o"], self.aggregator._decoded(key, stored["s"])

    def write(self, partition: int, sources: Iterable[tuple[str, Groups, int]], fresh: bool = True) -> None:
        """Add each source's changes to partition `partition`'s rows: (topic, changes, offset),
        the changes of that topic's events up to source offset `offset`. `fresh`: above their
        watermarks, so new to every row (finish); otherwise (one source) only to the rows that
        have not applied that offset yet (a replay after a crash).

        The hottest loop of a batch. The changes are first summed per (buckets, dimension
        value) over the groups and sources (a rep's, team's and region's figures come from many
        groups), then each sum is added to the rows of its buckets. Spreading every group over
        all its cells first, then adding each cell to its row, once per source, took 39 measure
        additions a live event in the spreading alone, 5.7 cells besides; this takes 28 in all
        (counted in-process, batches of 700)."""
        spread: dict[tuple, tuple[dict[str, int], dict[str, int]]] = {}
        for topic, groups, offset in sources:
            for (buckets, dims), sums in groups.items():
                changes = [(name, value) for name, value in sums.items() if value]
                if not changes:
                    continue
                for dim_key in dims:
                    entry = spread.get((buckets, dim_key))
                    if entry is None:
                        entry = spread[(buckets, dim_key)] = ({}, {})
                    total, topics = entry
                    for name, value in changes:
                        total[name] = total.get(name, 0) + value
                    topics[topic] = offset
        prefix = measure_prefix(partition)
        result, store = self.result, self.store
        written, named = result.measures, result.cells
        new_tuple = tuple.__new__  # Cell and RowKey without their Python-level constructors
        rows: dict[str, dict[str, Any] | None] = {}  # the rows of this call; None: applied before
        for (buckets, (dim, key)), (total, topics) in spread.items():
            # Sources' changes may cancel out here (a churn's loss, and the cancellation of the
            # order that had made the churned a customer): the rows still take the offsets of
            # the sources that changed them, as writing each source's changes on its own did,
            # or a redelivery after a torn write would apply those sources' events again.
            changes = [(name, value) for name, value in total.items() if value]
            for period, start in buckets:
                mkey = f"{prefix}{period}|{start}|{dim}|{key}"
                row = rows.get(mkey, _UNSEEN)
                if row is _UNSEEN:
                    row = written.get(mkey)
                    new = row is None
                    if new:
                        stored = store.get(mkey)
                        row = {"o": dict(stored["o"]), "m": dict(stored["m"])} if stored else {"o": {}, "m": {}}
                    if not fresh and any(offset <= row["o"].get(topic, -1) for topic, offset in topics.items()):
                        rows[mkey] = None  # applied before a crash; its entity row had not been written
                        continue
                    rows[mkey] = row
                    if new:
                        written[mkey] = row
                        named[mkey] = new_tuple(Cell, (partition, new_tuple(RowKey, (period, start, dim, key)), set()))
                elif row is None:
                    continue
                measures = row["m"]
                for name, value in changes:
                    value += measures.get(name, 0)
                    if value:
                        measures[name] = value
                    else:
                        del measures[name]
                row["o"].update(topics)
                named[mkey].topics.update(topics)

    def feed(self, events: Iterable[SourceEvent]) -> None:
        aggregator, result, changed, marks, load = self.aggregator, self.result, self.changed, self.marks, self.load
        for event in events:
            env = event.envelope
            kind, entity_id = _entity_of(env)
            source = (event.topic, event.partition)
            mark = marks.get(source)
            if mark is not None and event.offset > mark:
                deltas = self.summing.get(source)
                if deltas is None:
                    deltas = self.summing[source] = {}
                summed = True  # written once for the batch, by finish()
                result.watermarks[source] = event.offset
            else:
                deltas = {}
                summed = False  # written now, row by row
            too_late = aggregator.retention.too_late(env.data, self.now)
            if too_late:
                result.rejected.append((event, too_late))
                continue
            if kind == "customer":  # customer.churned
                ckey = customer_key(event.partition, entity_id)
                offsets, old = load(ckey)
                if event.offset <= (offsets or {}).get(event.topic, -1):
                    result.outcomes[event.topic, "replayed"] += 1
                    continue
                new, fresh = customers.with_churn(old, env.data.churned_at)
                result.outcomes[event.topic, entities.APPLIED if fresh else entities.DUPLICATE] += 1
                if fresh:
                    new = states.enrich_customer(entity_id, new, aggregator.directory)
                    aggregator.customer_groups(entity_id, old, new, deltas)
                    if not summed:
                        self.write(event.partition, ((event.topic, deltas, event.offset),), fresh=False)
                    changed[ckey] = ({**(offsets or {}), event.topic: event.offset}, new)
                continue

            ekey = entity_key(event.partition, event.topic, kind, entity_id)
            last_offset, old = load(ekey)
            replayed = last_offset is not None and event.offset <= last_offset
            if replayed:
                result.outcomes[event.topic, "replayed"] += 1
                new = old
            else:
                try:
                    new, outcome = states.KINDS[kind].transition(old, env.id, env.data, aggregator.converter)
                except ValueError as exc:  # e.g. a currency with no exchange rate
                    result.rejected.append((event, str(exc)))
                    continue
                result.outcomes[event.topic, outcome] += 1
                if outcome != entities.APPLIED:
                    continue
                new = states.enrich(new, aggregator.directory)
                if not summed:
                    contributions = states.KINDS[kind].contributions
                    aggregator.groups(contributions(old), contributions(new), deltas)
                elif ekey not in self.settling:
                    self.settling[ekey] = (source, kind, old)
                changed[ekey] = (event.offset, new)
            if kind == "order" and new.customer_id is not None:
                # The customer's row may lag its order's after a crash between the two writes.
                ckey = customer_key(event.partition, new.customer_id)
                offsets, customer = load(ckey)
                applied = (offsets or {}).get(event.topic, -1)
                if event.offset > applied:
                    # Where the order sits among the customer's orders, known from its entity row
                    # when the customer's row has every event that row has (customers.with_order).
                    if old is None:
                        previous = None
                    elif replayed or last_offset > applied or old.customer_id != new.customer_id:
                        previous = customers.SCAN
                    else:
                        previous = old.placed_at if customers.placed(old) else None
                    updated = states.enrich_customer(
                        new.customer_id, customers.with_order(customer, entity_id, new, previous), aggregator.directory)
                    aggregator.customer_groups(new.customer_id, customer, updated, deltas)
                    changed[ckey] = ({**(offsets or {}), event.topic: event.offset}, updated)
            if not summed:
                self.write(event.partition, ((event.topic, deltas, event.offset),), fresh=False)

    def finish(self) -> BatchResult:
        """The batch's rows: measures (the summed cells written now), then entities."""
        result, aggregator = self.result, self.aggregator
        for key, (source, kind, first) in self.settling.items():
            contributions = states.KINDS[kind].contributions
            aggregator.groups(contributions(first), contributions(self.changed[key][1]), self.summing[source])
        self.settling = {}
        partitions: dict[int, list[tuple[str, Groups, int]]] = {}
        for (topic, partition), groups in self.summing.items():
            # Above the watermark, so new to every row; a row's offset becomes the source's
            # highest in the batch: every event of the source up to it is in the row.
            partitions.setdefault(partition, []).append((topic, groups, result.watermarks[(topic, partition)]))
        for partition, sources in partitions.items():
            self.write(partition, sources)
        self.summing = {}
        for key, (offsets, state) in self.changed.items():
            encoded = states.state_to_json(state)
            aggregator._remember(key, encoded, state)
            result.entities[key] = {"o": offsets, "s": encoded}
        return result


@dataclass
class Expiry:
    """What retention does to a store at one moment."""

    drop: list[str] = field(default_factory=list)  # every store key to delete
    rows: list[tuple[int, RowKey]] = field(default_factory=list)  # the measure rows among them
    rewrite: dict[str, dict[str, Any]] = field(default_factory=dict)  # customer rows with orders frozen
    unmatched: Counter = field(default_factory=Counter)  # kind -> dropped while waiting for its entity


def plan_expiry(store: Mapping[str, dict[str, Any]], retention: Retention, now: datetime, tz: ZoneInfo,
           horizon_days: int = customers.DEFAULT_HORIZON_DAYS) -> Expiry:
    """The rows retention is done with, and customer rows to shrink; writing them changes no figure."""
    today = now.astimezone(tz).date()
    before = retention.freeze_before(now)
    out = Expiry()
    for key, value in store.items():
        parsed = parse_measure_key(key)
        if parsed is not None:
            partition, row = parsed
            if row.period != SNAPSHOT and retention.bucket_expired(row.period, date.fromisoformat(row.start), today):
                out.drop.append(key)
                out.rows.append((partition, row))
            continue
        if key.split("|", 2)[1] != "e":
            continue
        kind = value["s"]["_kind"]
        if kind in EXPIRING_KINDS:
            state = states.state_from_json(value["s"])
            if retention.entity_expired(state, now):
                out.drop.append(key)
                if unmatched(state):
                    out.unmatched[kind] += 1
        elif kind == "customer" and before is not None:
            state = states.state_from_json(value["s"])
            frozen = customers.freeze(state, before, tz, horizon_days)
            if frozen != state:
                out.rewrite[key] = {"o": value["o"], "s": states.state_to_json(frozen)}
    return out


def merge_measures(parts: Iterable[Mapping[str, int]]) -> dict[str, int]:
    """Sum partial measures (from partitions, sources or finer dimensions)."""
    total: dict[str, int] = {}
    for part in parts:
        for name, value in part.items():
            total[name] = total.get(name, 0) + value
    return total
