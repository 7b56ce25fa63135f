"""Measure SalesPulse on this machine: `make bench` (python -m salespulse.bench).

Starts its own Kafka broker and redis-server (fresh, under var/bench unless --home), loads a
history of simulated events, then measures, each on the real servers:

  baseline     a bare aiokafka consumer reading and parsing (orjson) every event
  saturation   one processor worker replaying the whole history: events/s once running,
               and the time to rebuild all KPI state from the retained topics
  2, 3 workers the same replay shared by two, then three worker processes
  recovery     a worker killed (SIGKILL) after the replay, restarted: seconds until it
               counts events again, and until it has caught up
  latency      events at a fixed rate (5,000/s) with probe orders, on the two workers:
               produce -> value in GET /api/v1/kpis and on the SSE stream, p50/p95/p99;
               first for half as long at a rate they sustain (1,000/s), the pipeline's
               own latency without a backlog
  memory       peak resident memory (VmHWM) of every process

and writes report.json and report.md (default var/bench/). BENCH_EVENTS and the options
below shrink it for a quick look.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from salespulse.bench import measure, report
from salespulse.bench.workload import history
from salespulse.devstack.servers import LocalKafka, LocalRedis, free_port
from salespulse.settings import REPO_ROOT, Settings

log = logging.getLogger("salespulse.bench")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=int(os.environ.get("BENCH_EVENTS", 1_000_000)),
                        help="events of history to load and replay (env BENCH_EVENTS, default 1,000,000)")
    parser.add_argument("--days", type=int, default=90, help="days of history the events span (default 90)")
    parser.add_argument("--rate", type=int, default=5000, help="events/s of the latency run (default 5,000)")
    parser.add_argument("--latency-seconds", type=float, default=60, help="length of the latency run (default 60)")
    parser.add_argument("--light-rate", type=int, default=1000,
                        help="events/s of a first, shorter latency run at a rate the workers sustain (default 1,000; 0: none)")
    parser.add_argument("--home", type=Path, default=REPO_ROOT / "var" / "bench",
                        help="servers' data, logs and the reports (emptied first; default var/bench)")
    parser.add_argument("--aggregator-only", action="store_true",
                        help="only decode + aggregate min(--events, 100,000) events in-process (no servers) and print it")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    for noisy in ("httpx", "aiokafka"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if args.aggregator_only:
        print(json.dumps(domain_ceiling(args), indent=2))
        return
    shutil.rmtree(args.home, ignore_errors=True)
    args.home.mkdir(parents=True)
    kafka = LocalKafka(args.home / "kafka", port=free_port(), controller_port=free_port(), heap="2g")
    redis = LocalRedis(args.home / "redis", port=free_port())
    try:
        kafka.start()
        redis.start()
        results = asyncio.run(run(args, kafka, redis))
    finally:
        redis.stop()
        kafka.stop()
    (args.home / "report.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.home / "report.md").write_text(report.markdown(results))
    print(report.markdown(results))
    print(f"reports: {args.home / 'report.json'} and {args.home / 'report.md'}")


def domain_ceiling(args: argparse.Namespace) -> dict:
    settings = Settings()
    tz = ZoneInfo(settings.business_timezone)
    messages = history(min(args.events, 100_000), datetime.now(timezone.utc), args.days, tz)
    return measure.aggregator_only(messages, tz, settings.topic_partitions, settings.processor_batch_size)


async def run(args: argparse.Namespace, kafka: LocalKafka, redis: LocalRedis) -> dict:
    stack = measure.Stack(args.home, kafka, redis)
    results: dict = {"machine": measure.machine(), "events": args.events, "history_days": args.days,
                     "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    try:
        tz = ZoneInfo(stack.settings.business_timezone)
        await stack.prepare()
        log.info("loading %d events of history into Kafka ...", args.events)
        results["load"] = await stack.load(history(args.events, datetime.now(timezone.utc), args.days, tz))
        log.info("baseline: a bare aiokafka consumer parsing every event ...")
        results["baseline"] = await stack.baseline(args.events)
        log.info("the domain code alone: decode + aggregate in-process ...")
        results["aggregator_only"] = domain_ceiling(args)
        log.info("one worker replays the history ...")
        one = results["one_worker"] = await stack.replay(args.events, workers=1)
        results["ratio"] = round(one["events_per_second"] / results["baseline"]["events_per_second"], 3)
        log.info("a worker is killed and restarted ...")
        results["recovery"] = await stack.recovery(one["group"])
        log.info("three workers share the replay ...")
        results["three_workers"] = await stack.replay(args.events, workers=3)
        log.info("two workers share the replay ...")
        results["two_workers"] = await stack.replay(args.events, workers=2, keep=True)
        stack.stop_group(one["group"])  # the live load goes to the two workers: one is below the rate
        if args.light_rate:
            log.info("latency at %d events/s for %.0f s (two workers) ...", args.light_rate, args.latency_seconds / 2)
            results["latency_light"] = await stack.latency(args.light_rate, args.latency_seconds / 2, tz)
        log.info("latency at %d events/s for %.0f s (two workers) ...", args.rate, args.latency_seconds)
        results["latency"] = await stack.latency(args.rate, args.latency_seconds, tz)
        results["memory"] = stack.memory()
    finally:
        await stack.close()
    results["targets"] = report.check(results)
    return results


if __name__ == "__main__":
    main()
