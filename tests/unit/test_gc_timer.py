"""Every cyclic collection of a worker is timed into salespulse_processor_gc_seconds, and what
survives a full one is frozen out of the next ones."""

from __future__ import annotations

import gc

from salespulse.processor import metrics
from salespulse.processor.app import GcTimer, watch_gc


def timed(generation: int) -> float:
    """Collections of `generation` observed so far."""
    return sum(bucket.get() for bucket in metrics.GC_SECONDS.labels(str(generation))._buckets)


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
