"""Every cyclic collection of a worker is timed into salespulse_processor_gc_seconds, what
survives a full one is frozen out of the next ones, and a batch is collected once, at its end."""

from __future__ import annotations

import gc
import weakref

from salespulse.processor import metrics
from salespulse.processor.app import GcTimer, collected_after, watch_gc


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


def test_a_batch_is_collected_once_at_its_end_and_what_it_leaves_is_frozen():
    gc.collect()
    gc.unfreeze()
    try:
        with collected_after():
            assert not gc.isenabled(), "no collection while the batch is handled"
            garbage = weakref.ref(Cycle())  # dies in a cycle: only a collection frees it
            kept = [object() for _ in range(100)]
            assert garbage() is not None
        assert gc.isenabled()
        assert garbage() is None, "the batch's cyclic garbage is freed at its end"
        assert gc.get_freeze_count() >= 1
        assert not any(o is kept for o in gc.get_objects()), "what the batch left is frozen"
    finally:
        gc.unfreeze()


def test_a_batch_leaves_the_collector_alone_when_it_was_off():
    frozen = gc.get_freeze_count()  # whatever earlier code in this process froze
    gc.disable()
    try:
        with collected_after():
            garbage = weakref.ref(Cycle())
        assert not gc.isenabled()
        assert garbage() is not None, "no collection was started"
        assert gc.get_freeze_count() == frozen, "nothing was frozen"
    finally:
        gc.enable()
        gc.collect()
