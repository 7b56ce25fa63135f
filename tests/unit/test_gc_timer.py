"""Every cyclic collection of a worker is timed into salespulse_processor_gc_seconds, what
survives a full one is frozen out of the next ones, batches are collected at their end once
YOUNG_GC_SECONDS have passed, and valid events leave no cyclic garbage to collect."""

from __future__ import annotations

import gc
import weakref

from salespulse.processor import metrics
from salespulse.processor.app import Collections, GcTimer, watch_gc


def timed(generation: int) -> float:
    """Collections of `generation` observed so far."""
    return sum(bucket.get() for bucket in metrics.GC_SECONDS_BY_GENERATION[generation]._buckets)


def test_each_collection_is_timed_once_by_generation():
    before = gc.callbacks[:]
    try:
        watch_gc()
        watch_gc()  # once, however often it is called
        assert sum(isinstance(c, GcTimer) for c in gc.callbacks) == 1
        full, young = timed(2), timed(0)
        gc.collect()
        gc.collect(0)
        assert timed(2) == full + 1
        assert timed(0) >= young + 1  # (the allocator may start one of its own meanwhile)
    finally:
        gc.callbacks[:] = before


def test_what_survives_a_full_collection_is_frozen_out_of_the_next_ones():
    before = gc.callbacks[:]
    survivor = [object() for _ in range(1000)]  # tracked: lists are containers
    try:
        gc.unfreeze()
        watch_gc()
        gc.collect(1)
        assert gc.get_freeze_count() == 0, "a young collection freezes nothing"
        assert any(o is survivor for o in gc.get_objects(2)), "the young survivors are old now"
        gc.collect()
        assert gc.get_freeze_count() >= len(survivor)
        assert not any(o is survivor for o in gc.get_objects(2)), "frozen: the next full collection skips it"
        assert metrics.GC_FROZEN._value.get() >= len(survivor)
    finally:
        gc.callbacks[:] = before
        gc.unfreeze()


class Cycle:
    def __init__(self) -> None:
        self.me = self


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_batches_are_collected_at_the_end_of_the_first_once_the_seconds_passed_and_what_they_leave_is_frozen():
    gc.collect()
    gc.unfreeze()
    clock = Clock()
    collections = Collections(seconds=1.0, clock=clock)
    try:
        with collections.batch():
            assert not gc.isenabled(), "no collection while the batch is handled"
            garbage = weakref.ref(Cycle())  # dies in a cycle: only a collection frees it
            kept = [object() for _ in range(100)]
            assert garbage() is not None
        assert not gc.isenabled() and garbage() is not None, "no collection due yet: the collector stays off"
        clock.now += 0.5
        collections.collect_if_due()
        assert not gc.isenabled() and garbage() is not None
        clock.now += 0.5
        with collections.batch():
            later = weakref.ref(Cycle())
        assert gc.isenabled()
        assert garbage() is None and later() is None, "the batches' cyclic garbage is freed at the end of the second"
        assert gc.get_freeze_count() >= 1
        assert not any(o is kept for o in gc.get_objects()), "what the batches left is frozen"
    finally:
        collections.release()
        gc.enable()
        gc.unfreeze()


def test_the_loop_collects_between_batches_once_due():
    gc.collect()
    clock = Clock()
    collections = Collections(seconds=1.0, clock=clock)
    try:
        with collections.batch():
            garbage = weakref.ref(Cycle())
        clock.now += 1.0
        collections.collect_if_due()
        assert gc.isenabled() and garbage() is None
        collections.collect_if_due()  # nothing held: nothing to do
        assert gc.isenabled()
    finally:
        collections.release()
        gc.enable()
        gc.unfreeze()


def test_a_batch_leaves_the_collector_alone_when_it_was_off():
    frozen = gc.get_freeze_count()  # whatever earlier code in this process froze
    collections = Collections(seconds=0.0)
    gc.disable()
    try:
        with collections.batch():
            garbage = weakref.ref(Cycle())
        collections.collect_if_due()
        assert not gc.isenabled()
        assert garbage() is not None, "no collection was started"
        assert gc.get_freeze_count() == frozen, "nothing was frozen"
    finally:
        gc.enable()
        gc.collect()


def test_valid_events_of_every_type_leave_no_cyclic_garbage():
    """What lets the collections wait: decoding and aggregating the events senders send makes
    no reference cycles (fastjsonschema's uniqueItems check made one an activity)."""
    from datetime import datetime, timezone
    from zoneinfo import ZoneInfo

    import orjson

    from salespulse.contracts.events import decode_event
    from salespulse.domain.aggregation import Aggregator, SourceEvent, watermarks
    from salespulse.domain.money import CurrencyConverter
    from tests.unit.test_bad_input import SAMPLES

    raws = [(doc["type"], orjson.dumps(doc)) for doc in SAMPLES]
    assert {"activity.logged", "survey.answered", "order.placed", "call.ended"} <= {t for t, _ in raws}
    aggregator = Aggregator(ZoneInfo("Europe/Paris"), CurrencyConverter("EUR"),
                            clock=lambda: datetime(2026, 11, 22, 12, tzinfo=timezone.utc))
    store: dict = {}
    for _, raw in raws:  # msgspec builds each type's converter once, with cycles
        decode_event(raw)
    events = [SourceEvent("sales.x", 0, offset, decode_event(raw)) for offset, (_, raw) in enumerate(raws[:5])]
    aggregator.apply(store, events, watermarks(store, set()))  # caches, lazily built things
    gc.collect()
    gc.disable()
    try:
        events = [SourceEvent("sales.x", 0, offset, decode_event(raw)) for offset, (_, raw) in enumerate(raws)]
        result = aggregator.apply(store, events, watermarks(store, set()))
        assert result.measures, "the events were counted"
        del events, result
        assert gc.collect() == 0
    finally:
        gc.enable()
