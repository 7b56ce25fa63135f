"""Run the SalesPulse stream processor (one worker of its consumer group).

    python -m salespulse.processor

Reads KAFKA_BOOTSTRAP_SERVERS, REDIS_URL and the other settings of the README; creates the
topics it needs, serves Prometheus metrics on PROCESSOR_METRICS_PORT, stops on SIGTERM/SIGINT
after the batch in hand. Start more workers with the same PROCESSOR_APP_ID to share the
partitions; give each its own PROCESSOR_INSTANCE_ID to restart without a rebalance.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal

from prometheus_client import start_http_server

from salespulse.contracts.topics import ensure_topics
from salespulse.processor.app import Worker, tune_gc, watch_gc
from salespulse.settings import get_settings

log = logging.getLogger("salespulse.processor")


def awaiting(task: asyncio.Task) -> list[str]:
    """Where a task waits: each coroutine of its await chain, outermost first, down to the
    future it waits on (Task.print_stack shows the outermost coroutine only)."""
    chain, step = [], task.get_coro()
    while step is not None:
        frame = getattr(step, "cr_frame", None) or getattr(step, "gi_frame", None)
        if frame is None:  # a future's iterator, or another awaitable written in C
            waiting_on = getattr(task, "_fut_waiter", None) or step  # the future, where CPython says
            chain.append(f"  awaits {waiting_on!r:.300}")
            break
        chain.append(f"  {frame.f_code.co_qualname} ({frame.f_code.co_filename}:{frame.f_lineno})")
        step = getattr(step, "cr_await", None) or getattr(step, "gi_yieldfrom", None)
    return chain


def dump_tasks() -> None:
    """On SIGUSR1: log where each of the worker's tasks waits (a hung restore or rebalance)."""
    for task in asyncio.all_tasks():
        log.warning("task %s:\n%s", task.get_name(), "\n".join(awaiting(task)))


async def serve() -> None:
    settings = get_settings()
    await ensure_topics(settings)
    start_http_server(settings.processor_metrics_port, addr=settings.processor_metrics_host)
    worker = Worker(settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stop)
    loop.add_signal_handler(signal.SIGUSR1, dump_tasks)
    running = asyncio.create_task(worker.run())
    ready = asyncio.create_task(worker.ready.wait())
    await asyncio.wait([running, ready], return_when=asyncio.FIRST_COMPLETED)
    if ready.done():
        log.info("processor ready: group %s, partitions %s", settings.processor_app_id, sorted(worker.processor.owned))
    else:
        ready.cancel()
    await running
    log.info("processor stopped")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiokafka").setLevel(os.environ.get("AIOKAFKA_LOG_LEVEL", "WARNING").upper())
    tune_gc()
    watch_gc()
    asyncio.run(serve())


if __name__ == "__main__":
    main()
