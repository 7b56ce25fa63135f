"""The bench's CPU accounting: the cores each process used over a run, from /proc."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from salespulse.bench.measure import CpuShare
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
        "recovery": {"events_before_kill": 10, "fresh_events": 5, "fresh_events_counted": 5,
                     "seconds_to_first_event": 1, "seconds_to_caught_up": 1, "state_rows_restored": 3,
                     "replayed_after_restart": 0},
        "latency": {"rate": 5000, "achieved_rate": 5000, "seconds": 60, "workers": 2, "probes": 3,
                    "api": {"p50_ms": 1}, "sse": {"p50_ms": 2}, "probes_never_seen": {"api": 0, "sse": 0},
                    "cpu_cores": {"bench": 0.28, "api": 0.1, "w1": 0.53}},
        "memory": {"kafka_broker_mib": 1, "redis_mib": 1, "api_mib": 1, "bench_mib": 1, "workers_mib": {}},
        "targets": {},
    }
    text = markdown(json.loads(json.dumps(results)))
    assert "| offered (events/s) | bench | api | w1 |" in text
    assert "| 5,000 | 0.28 | 0.1 | 0.53 |" in text
