"""Properties of the aggregation: what any order, redelivery, batching or crash must not change."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from salespulse.contracts.events import ROUTES
from salespulse.domain.aggregation import (
    Aggregator,
    SourceEvent,
    measure_key,
    merge_measures,
    parse_measure_key,
)
from salespulse.domain.money import CurrencyConverter
from tests.unit.eventlogs import directory, event_logs

TZ = ZoneInfo("Europe/Paris")
aggregator = Aggregator(TZ, CurrencyConverter("EUR"), directory())


def partition_of(envelope, partitions: int) -> int:
    """The partition its producer's key sends it to (orders go by customer)."""
    return hash(getattr(envelope.data, ROUTES[envelope.type].key_field)) % partitions


def run(log, batch_sizes=None, partitions: int = 1, store=None):
    """Apply `log` in arrival order, in batches, the way the processor does; returns the store."""
    store = {} if store is None else store
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
        result = aggregator.apply(store, sources[i:i + n])
        store.update(result.measures)
        store.update(result.entities)
        i += n
    return store, sources


def cube(store) -> dict:
    """Merged measures per row: what the read model serves, partitions and sources summed."""
    parts: dict = {}
    for key, row in store.items():
        parsed = parse_measure_key(key)
        if parsed is not None:
            parts.setdefault(parsed[2], []).append(row["m"])
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

    The processor writes a batch's measure rows, then its entity rows, to one changelog
    partition, so what survives a crash is always a prefix of that write sequence.
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


@given(event_logs())
def test_replaying_a_processed_log_changes_nothing(log):
    store, sources = run(log)
    before = dict(store)
    result = aggregator.apply(store, sources)
    assert result.measures == {} and result.entities == {} and result.count("applied") == 0
    # Events applied the first time are recognised by offset; stale or duplicate ones again as such.
    assert result.count("replayed") + result.count("stale") + result.count("duplicate") == len(sources)
    assert store == before


def test_measure_keys_round_trip_with_separators_in_the_key():
    from salespulse.domain.aggregation import RowKey

    row = RowKey("month", "2026-11-01", "rep", "rep|with|bars")
    assert parse_measure_key(measure_key(3, "sales.calls", row)) == (3, "sales.calls", row)
