"""Every cyclic collection of a worker is timed into salespulse_processor_gc_seconds."""

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
