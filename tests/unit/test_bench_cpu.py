"""The bench's accounting: the cores each process used over a run, from /proc, and where a
worker's time went per event, from its batch metrics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from salespulse.bench.measure import CpuShare, batch_figures, per_event
from salespulse.bench.report import markdown


def test_a_busy_process_uses_a_core_and_a_sleeping_one_none():
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
    try:
        time.sleep(0.3)  # past the interpreter's start-up
        share = CpuShare({"me": os.getpid(), "sleeper": sleeper.pid})
        share.start()
        end = time.monotonic() + 0.5
        while time.monotonic() < end:
            pass
        cores = share.stop()
    finally:
        sleeper.kill()
        sleeper.wait()
    assert cores["me"] > 0.3
    assert cores["sleeper"] < 0.1


def test_a_process_gone_before_the_end_is_left_out():
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    share = CpuShare({"gone": gone.pid, "me": os.getpid()})
    share.start()
    gone.wait()
    assert set(share.stop()) == {"me"}


def test_the_report_gives_the_cores_of_each_latency_run():
    results = {
        "machine": {"cpus": 2, "memory_gib": 1, "python": "3.11"}, "events": 10, "history_days": 1, "started_at": "x",
        "load": {"events": 10, "mean_event_bytes": 400, "seconds": 1.0},
        "baseline": {"events_per_second": 100, "seconds": 0.1},
        "aggregator_only": {"events_per_second": 50, "seconds": 0.2, "events": 10},
        "one_worker": {"events_per_second": 10, "events_per_second_per_worker": 10, "rebuild_seconds": 1, "workers": 1,
                       "startup_seconds": 1, "peak_rss_mib": [1], "growth": []},
        "two_workers": {"events_per_second": 10, "events_per_second_per_worker": 5, "rebuild_seconds": 1,
                        "startup_seconds": 1, "peak_rss_mib": [1, 1], "workers": 2},
        "three_workers": {"events_per_second": 10, "events_per_second_per_worker": 3, "rebuild_seconds": 1,
                          "startup_seconds": 1, "peak_rss_mib": [1, 1, 1], "workers": 3},
        "ratio": 0.1,
        "recovery": {"events_before_kill": 10, "fresh_events": 5, "uncommitted_at_kill": 2,
                     "events_handled_after_restart": 7, "events_counted_after_restart": 7,
                     "seconds_to_first_event": 1, "seconds_to_caught_up": 1, "state_rows_restored": 3,
                     "replayed_after_restart": 0},
        "latency": {"rate": 5000, "achieved_rate": 5000, "seconds": 60, "workers": 2, "probes": 3,
                    "api": {"p50_ms": 1}, "sse": {"p50_ms": 2}, "probes_never_seen": {"api": 0, "sse": 0},
                    "cpu_cores": {"bench": 0.28, "api": 0.1, "w1": 0.53}},
        "memory": {"kafka_broker_mib": 1, "redis_mib": 1, "api_mib": 1, "bench_mib": 1, "workers_mib": {}},
        "targets": {},
    }
    results["latency"]["batches"] = {"w1": {"decode_us": 30.0, "aggregate_us": 120.5, "push_us": 99.0,
                                            "rows_per_event": 6.8, "changelog_records_per_event": 2.1,
                                            "events_per_batch": 330},
                                     "w2": {}}  # no event meanwhile
    text = markdown(json.loads(json.dumps(results)))
    assert "| offered (events/s) | bench | api | w1 |" in text
    assert "| 5,000 | 0.28 | 0.1 | 0.53 |" in text
    assert ("| offered (events/s) | worker | decode | aggregate | push | rows/event | changelog records/event "
            "| events/batch |") in text
    assert "| 5,000 | w1 | 30.0 | 120.5 | 99.0 | 6.8 | 2.1 | 330 |" in text
    assert "| w2 |" not in text
    assert "with 2 of them handled but not yet committed" in text
    assert "had handled all 7 after 1 s: 7 counted, 0 found applied already" in text


def worker_metrics() -> tuple[CollectorRegistry, dict[str, Histogram]]:
    """The batch histograms of salespulse.processor.metrics, in a registry of their own."""
    registry = CollectorRegistry()
    return registry, {
        "phase": Histogram("salespulse_processor_batch_phase_seconds", "", ["phase"], registry=registry),
        "events": Histogram("salespulse_processor_batch_events", "", registry=registry),
        "rows": Histogram("salespulse_processor_batch_rows", "", registry=registry),
        "push": Histogram("salespulse_processor_push_seconds", "", registry=registry),
        "other": Histogram("salespulse_processor_batch_seconds", "", registry=registry),
    }


def test_a_workers_time_per_event_is_read_from_its_batch_metrics():
    registry, m = worker_metrics()
    m["phase"].labels("aggregate").observe(5.0)  # before: left out
    m["events"].observe(1000)
    before = batch_figures(generate_latest(registry).decode())
    for _ in range(4):  # four batches of 500 events
        m["events"].observe(500)
        m["rows"].observe(1500)
        m["phase"].labels("decode").observe(0.01)
        m["phase"].labels("aggregate").observe(0.05)
        m["other"].observe(1.0)
    m["push"].observe(0.1)
    figures = per_event(before, batch_figures(generate_latest(registry).decode()))
    assert figures["decode_us"] == 20.0  # 0.04 s over 2,000 events
    assert figures["aggregate_us"] == 100.0
    assert figures["commit_us"] == 0.0  # a phase never observed
    assert figures["push_us"] == 50.0
    assert figures["rows_per_event"] == 3.0
    assert figures["events_per_batch"] == 500
    assert per_event(before, before) == {}
