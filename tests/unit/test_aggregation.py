"""Properties of the aggregation: what any order, redelivery, batching or crash must not change."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from salespulse.contracts.events import ROUTES
from salespulse.domain.aggregation import (
    STATE_CACHE_SIZE,
    Aggregator,
    RowKey,
    SourceEvent,
    customer_key,
    entity_key,
    key_partition,
    measure_key,
    merge_measures,
    merge_topic_rows,
    parse_measure_key,
    watermarks,
)
from salespulse.domain import customers, states
from salespulse.domain.events import CallEnded, DealChanged
from salespulse.domain.money import CurrencyConverter
from tests.unit.eventlogs import directory, envelope, event_logs

TZ = ZoneInfo("Europe/Paris")
aggregator = Aggregator(TZ, CurrencyConverter("EUR"), directory())


def partition_of(envelope, partitions: int) -> int:
    """The partition its producer's key sends it to (orders go by customer)."""
    return hash(getattr(envelope.data, ROUTES[envelope.type].key_field)) % partitions


def run(log, batch_sizes=None, partitions: int = 1, store=None, fast: bool = False):
    """Apply `log` in arrival order, in batches, the way the processor does; returns the store.
    `fast`: with watermarks, as the processor keeps them (fresh events summed per batch)."""
    store = {} if store is None else store
    marks = None
    offsets: dict[tuple[str, int], int] = {}
    sources = []
    for topic, env in log:
        p = partition_of(env, partitions)
        offsets[(topic, p)] = offsets.get((topic, p), -1) + 1
        sources.append(SourceEvent(topic, p, offsets[(topic, p)], env))
    sizes = iter(batch_sizes or [])
    i = 0
    while i < len(sources):
        n = next(sizes, len(sources)) or 1
        if fast and marks is None:
            marks = watermarks(store, {(s.topic, s.partition) for s in sources})
        result = aggregator.apply(store, sources[i:i + n], marks)
        assert_named(result)
        if marks is not None:
            marks.update(result.watermarks)
        store.update(result.measures)
        store.update(result.entities)
        i += n
    return store, sources


def assert_named(result) -> None:
    """Every measure row of a result is named (partition, RowKey), as its key says."""
    named = {key: parse_measure_key(key) for key in result.measures}
    assert {key: (cell.partition, cell.row) for key, cell in result.cells.items()} == named
    assert all(type(cell.row) is RowKey for cell in result.cells.values())
    # and says which topics changed it (of those whose offsets it keeps)
    assert all(cell.topics and cell.topics <= result.measures[key]["o"].keys() for key, cell in result.cells.items())


def cube(store) -> dict:
    """Merged measures per row: what the read model serves, partitions and sources summed."""
    parts: dict = {}
    for key, row in store.items():
        parsed = parse_measure_key(key)
        if parsed is not None:
            parts.setdefault(parsed[1], []).append(row["m"])
    merged = {row: {name: v for name, v in merge_measures(ms).items() if v} for row, ms in parts.items()}
    return {row: m for row, m in merged.items() if m}  # a measure at 0 is the same as none


@given(event_logs(), st.randoms())
def test_arrival_order_does_not_change_the_measures(log, rnd):
    shuffled = list(log)
    rnd.shuffle(shuffled)
    assert cube(run(log)[0]) == cube(run(shuffled)[0])


@given(event_logs(), st.randoms())
def test_redelivered_events_are_ignored(log, rnd):
    with_duplicates = list(log)
    for item in rnd.sample(log, k=len(log) // 2):
        with_duplicates.insert(rnd.randrange(len(with_duplicates) + 1), item)
    assert cube(run(log)[0]) == cube(run(with_duplicates)[0])


@given(event_logs(), st.lists(st.integers(1, 7), max_size=20))
def test_batching_does_not_change_the_measures(log, sizes):
    """merge == fold: one batch, many batches, one event at a time all agree."""
    assert cube(run(log)[0]) == cube(run(log, batch_sizes=sizes)[0]) == cube(run(log, [1] * len(log))[0])


@given(event_logs())
def test_every_dimension_adds_up_to_the_company_total(log):
    """Each event lands in exactly one value of every dimension (an order in one per product)."""
    rows = cube(run(log)[0])
    totals: dict = {}
    for row, m in rows.items():
        for name, v in m.items():
            if name not in ("orders", "orders_cancelled") or row.dim not in ("product", "category"):  # an order, many products
                key = (row.period, row.start, row.dim, name)
                totals[key] = totals.get(key, 0) + v
    for (period, start, dim, name), total in totals.items():
        assert total == totals.get((period, start, "all", name), 0), (period, start, dim, name)


@given(event_logs(), st.integers(2, 6))
def test_partial_rows_of_partitions_merge_to_the_single_partition_totals(log, partitions):
    assert cube(run(log)[0]) == cube(run(log, partitions=partitions)[0])


@settings(max_examples=200)
@given(event_logs(), st.data())
def test_a_crash_mid_write_then_redelivery_gives_the_clean_result(log, data):
    """Kafka redelivers from the last commit; a torn table write must not lose or double anything.

    The processor's changelog keeps a batch's rows all or none (the test below); offsets alone
    already cover any prefix of the write, measure rows first, when the events come back in
    the same order.
    """
    clean, sources = run(log)
    store: dict = {}
    committed = data.draw(st.integers(0, len(sources)), label="committed events")
    for s in sources[:committed]:  # committed before the crash: fully written
        result = aggregator.apply(store, [s])
        store.update(result.measures)
        store.update(result.entities)
    in_flight = sources[committed:]
    result = aggregator.apply(store, in_flight)
    writes = list(result.measures.items()) + list(result.entities.items())
    survived = data.draw(st.integers(0, len(writes)), label="rows written before the crash")
    store.update(writes[:survived])
    redelivered = aggregator.apply(store, in_flight)
    store.update(redelivered.measures)
    store.update(redelivered.entities)
    assert cube(store) == cube(clean)


CUSTOMER_MEASURES = {"new_customers", "activations", "losses", "lost_lifetime_s", "buyers", "repeat_buyers",
                     "new_revenue_cents", "recurring_revenue_cents"}


@given(event_logs(), st.lists(st.integers(1, 7), max_size=20))
def test_customer_figures_are_the_contributions_of_each_customers_final_state(log, sizes):
    """However a customer's changes were booked (batches, memoised contributions), its figures
    add up to what its final state contributes, computed at once."""
    store, _ = run(log, sizes, partitions=2, fast=True)
    expected: dict = defaultdict(dict)
    fresh = Aggregator(TZ, CurrencyConverter("EUR"), directory())
    for key, row in store.items():
        _, kind, topic, customer_id = key.split("|", 3)
        if kind == "e" and topic == "customer":
            state = states.state_from_json(row["s"])
            fresh.rows((), customers.customer_contributions(customer_id, state, TZ), expected)
    booked = {row: {n: v for n, v in m.items() if n in CUSTOMER_MEASURES} for row, m in cube(store).items()}
    assert {row: m for row, m in booked.items() if m} == {
        row: {n: v for n, v in m.items() if v} for row, m in expected.items() if any(m.values())}


def entity_rows(store) -> dict:
    return {key: row for key, row in store.items() if parse_measure_key(key) is None}


@given(event_logs(), st.lists(st.integers(1, 7), max_size=20), st.integers(1, 3))
def test_summing_fresh_events_per_batch_gives_the_rows_of_event_by_event_booking(log, sizes, partitions):
    slow, _ = run(log, sizes, partitions)
    fast, _ = run(log, sizes, partitions, fast=True)
    assert cube(fast) == cube(slow)
    assert entity_rows(fast) == entity_rows(slow)


@given(event_logs(), st.lists(st.integers(1, 7), max_size=20), st.integers(1, 3), st.booleans(), st.data())
def test_a_batch_fed_in_parts_gives_the_rows_of_the_batch_applied_at_once(log, parts, partitions, fast, data):
    """The processor feeds a batch to the aggregator in parts (its event loop free in between)
    and finishes it once: the same rows, outcomes and watermarks as one apply(), after any
    committed history, with watermarks (fresh events summed) or without (checked one by one)."""
    _, sources = run(log, partitions=partitions)
    committed = data.draw(st.integers(0, len(sources)), label="committed events")
    store: dict = {}
    everything = {(s.topic, s.partition) for s in sources}
    marks = watermarks(store, everything) if fast else None
    for i in range(0, committed, 3):
        result = aggregator.apply(store, sources[i:min(i + 3, committed)], marks)
        if marks is not None:
            marks.update(result.watermarks)
        store.update(result.measures)
        store.update(result.entities)
    batch = sources[committed:]
    at_once = aggregator.apply(store, batch, marks)
    fed = aggregator.begin(store, marks)
    i = 0
    for size in parts:
        fed.feed(batch[i:i + size])
        i += size
    fed.feed(batch[i:])
    in_parts = fed.finish()
    assert_named(in_parts)
    assert in_parts.measures == at_once.measures
    assert in_parts.entities == at_once.entities
    assert in_parts.outcomes == at_once.outcomes
    assert in_parts.rejected == at_once.rejected
    assert in_parts.watermarks == at_once.watermarks


def crash_mid_batch(sources, everything, data):
    """Commit a drawn number of `sources` in batches of 3 on the fast path, then apply the rest
    as one batch in flight: (store, the in-flight events, their result, not yet written)."""
    store: dict = {}
    committed = data.draw(st.integers(0, len(sources)), label="committed events")
    marks = watermarks(store, everything)
    for i in range(0, committed, 3):
        result = aggregator.apply(store, sources[i:min(i + 3, committed)], marks)
        marks.update(result.watermarks)
        store.update(result.measures)
        store.update(result.entities)
    in_flight = sources[committed:]
    return store, in_flight, aggregator.apply(store, in_flight, marks)


@settings(max_examples=200)
@given(event_logs(), st.data())
def test_a_crash_with_watermarks_then_redelivery_gives_the_clean_result(log, data):
    """As above, on the fast path: the restarted worker's watermarks come from what survived."""
    clean, sources = run(log)
    everything = {(s.topic, s.partition) for s in sources}
    store, in_flight, result = crash_mid_batch(sources, everything, data)
    writes = list(result.measures.items()) + list(result.entities.items())
    survived = data.draw(st.integers(0, len(writes)), label="rows written before the crash")
    store.update(writes[:survived])
    redelivered = aggregator.apply(store, in_flight, watermarks(store, everything))
    store.update(redelivered.measures)
    store.update(redelivered.entities)
    assert cube(store) == cube(clean)


def test_watermarks_are_the_highest_offset_a_sources_measure_rows_applied():
    store = {
        measure_key(2, ("day", "2026-11-23", "all", "all")): {"o": {"sales.calls": 7, "sales.deals": 30}, "m": {"calls": 1}},
        measure_key(2, ("day", "2026-11-23", "rep", "r1")): {"o": {"sales.calls": 9}, "m": {"calls": 1}},
        measure_key(3, ("day", "2026-11-23", "all", "all")): {"o": {"sales.calls": 4}, "m": {"calls": 1}},
        "2|e|sales.calls|call:c1": {"o": 12, "s": {}},  # entity rows do not count
        "2|d|sales.calls": {"o": 15},
    }
    assert watermarks(store, [("sales.calls", 2), ("sales.orders", 2), ("sales.calls", 1), ("sales.deals", 2)]) == {
        ("sales.calls", 2): 9, ("sales.orders", 2): -1, ("sales.calls", 1): -1, ("sales.deals", 2): 30}


def test_a_cell_has_one_row_per_partition_whatever_topics_feed_it():
    """A rep's call and deal of the same partition and day share their rows, each topic's
    offset kept apart; a redelivered event of either changes nothing."""
    at = datetime(2026, 11, 23, 10, tzinfo=timezone.utc)
    call = envelope("c1-e", "call.ended", CallEnded("c1", "rep-2", "outbound", "answered", at,
                                                    at + timedelta(minutes=2), at))
    deal = envelope("d1-0", "deal.changed", DealChanged("d1", "rep-2", "proposal", Decimal("1000"), "EUR", at, at))
    events = [SourceEvent("sales.calls", 0, 5, call), SourceEvent("sales.deals", 0, 8, deal)]
    result = aggregator.apply({}, events)
    rows = {parse_measure_key(k)[1]: row for k, row in result.measures.items()}
    day_rep = rows[RowKey("day", "2026-11-23", "rep", "rep-2")]
    assert day_rep["o"] == {"sales.calls": 5, "sales.deals": 8}
    keys = {cell.row: key for key, cell in result.cells.items()}
    assert result.cells[keys[RowKey("day", "2026-11-23", "rep", "rep-2")]].topics == {"sales.calls", "sales.deals"}
    assert result.cells[keys[RowKey("day", "2026-11-23", "product", "unknown")]].topics == {"sales.deals"}
    assert day_rep["m"]["calls_outbound"] == 1 and day_rep["m"]["talk_ms"] == 120_000
    assert any(name.startswith("deals") for name in day_rep["m"]), day_rep
    assert all(parse_measure_key(k) is not None for k in result.measures)
    store = {**result.measures, **result.entities}
    again = aggregator.apply(store, events)
    assert again.measures == {} and again.count("replayed") == 2


def test_rows_kept_per_topic_by_earlier_versions_merge_into_rows_per_cell():
    legacy = {
        "2|m|sales.calls|day|2026-11-23|rep|r1": {"o": 9, "m": {"calls_outbound": 2, "x": 1}},
        "2|m|sales.deals|day|2026-11-23|rep|r1": {"o": 4, "m": {"deals": 1, "x": -1}},
        "2|m|sales.calls|day|2026-11-23|rep|a|b": {"o": 3, "m": {"calls_outbound": 1}},
        "3|m|sales.calls|day|2026-11-23|rep|r1": {"o": 1, "m": {"calls_outbound": 5}},
        "2|e|sales.calls|call:c1": {"o": 12, "s": {}},
        "2|d|sales.calls": {"o": 15},
    }
    rows, gone = merge_topic_rows(legacy)
    assert sorted(gone) == sorted(k for k in legacy if "|m|" in k)
    assert rows == {
        "2|m|day|2026-11-23|rep|r1": {"o": {"sales.calls": 9, "sales.deals": 4}, "m": {"calls_outbound": 2, "deals": 1}},
        "2|m|day|2026-11-23|rep|a|b": {"o": {"sales.calls": 3}, "m": {"calls_outbound": 1}},
        "3|m|day|2026-11-23|rep|r1": {"o": {"sales.calls": 1}, "m": {"calls_outbound": 5}},
    }
    assert all(parse_measure_key(k) is None for k in gone)
    assert merge_topic_rows(legacy, [3]) == ({"3|m|day|2026-11-23|rep|r1": rows["3|m|day|2026-11-23|rep|r1"]},
                                             ["3|m|sales.calls|day|2026-11-23|rep|r1"])
    merged = {k: v for k, v in legacy.items() if k not in gone} | rows
    assert merge_topic_rows(merged) == ({}, [])  # nothing left to merge
    assert watermarks(merged, [("sales.calls", 2), ("sales.deals", 2)]) == {("sales.calls", 2): 9, ("sales.deals", 2): 4}


@given(event_logs())
def test_replaying_a_processed_log_changes_nothing(log):
    store, sources = run(log, fast=True)
    before = dict(store)
    result = aggregator.apply(store, sources, watermarks(store, {(s.topic, s.partition) for s in sources}))
    assert result.measures == {} and result.entities == {} and result.count("applied") == 0
    # Events applied the first time are recognised by offset; stale or duplicate ones again as such.
    assert result.count("replayed") + result.count("stale") + result.count("duplicate") == len(sources)
    assert store == before


def test_measure_keys_round_trip_with_separators_in_the_key():
    from salespulse.domain.aggregation import RowKey

    row = RowKey("month", "2026-11-01", "rep", "rep|with|bars")
    assert parse_measure_key(measure_key(3, row)) == (3, row)


def interleaved(sources, rnd) -> list:
    """The same events, each source partition's in order, the partitions interleaved anew:
    how a consumer may redeliver them after a restart (other batch boundaries, other order)."""
    queues: dict = {}
    for s in sources:
        queues.setdefault((s.topic, s.partition), []).append(s)
    out = []
    while queues:
        key = rnd.choice(sorted(queues))
        out.append(queues[key].pop(0))
        if not queues[key]:
            del queues[key]
    return out


@settings(max_examples=300)
@given(event_logs(), st.data(), st.randoms(use_true_random=False))
def test_a_crash_then_redelivery_interleaved_anew_gives_the_clean_result(log, data, rnd):
    """A batch in flight when the worker dies is durable all or none per partition (the
    changelog's commit markers); Kafka redelivers it with the topics of a partition interleaved
    anew. A customer is fed by two topics and its figures are not additive, so with a torn
    write instead (a prefix of the rows) this failed: one interleaving's orders figures plus
    another's churn figures doubled a customer's lost lifetime."""
    clean, _ = run(log)
    _, sources = run(log, partitions=2)
    everything = {(s.topic, s.partition) for s in sources}
    store, in_flight, result = crash_mid_batch(sources, everything, data)
    durable = data.draw(st.sets(st.sampled_from([0, 1])), label="partitions whose write was complete")
    store.update({k: v for k, v in (result.measures | result.entities).items() if key_partition(k) in durable})
    redelivered = aggregator.apply(store, interleaved(in_flight, rnd), watermarks(store, everything))
    store.update(redelivered.measures)
    store.update(redelivered.entities)
    assert cube(store) == cube(clean)


def test_customer_states_stay_decoded_while_many_new_entity_rows_pass(monkeypatch):
    # Live, new calls and orders fill the state cache every few seconds; clearing it made every
    # customer (hundreds of orders each) be decoded again.
    fresh, decoded = Aggregator(TZ, CurrencyConverter("EUR"), directory()), []
    monkeypatch.setattr(states, "state_from_json", lambda encoded: decoded.append(encoded) or object())
    customer, first_call = {"_kind": "customer"}, {"_kind": "call"}
    fresh._decoded(customer_key(0, "c1"), customer)
    fresh._decoded(entity_key(0, "sales.calls", "call", "0"), first_call)
    for i in range(1, STATE_CACHE_SIZE + 1):
        fresh._decoded(entity_key(0, "sales.calls", "call", str(i)), {"_kind": "call"})
    fresh._decoded(customer_key(0, "c1"), customer)
    fresh._decoded(entity_key(0, "sales.calls", "call", "0"), first_call)
    assert [d for d in decoded if d is customer] == [customer]  # remembered all along
    assert [d for d in decoded if d is first_call] == [first_call, first_call]  # the calls' cache was cleared
