"""Run the SalesPulse stream processor (one worker of its consumer group).

    python -m salespulse.processor

Reads KAFKA_BOOTSTRAP_SERVERS, REDIS_URL and the other settings of the README; creates the
topics it needs, serves Prometheus metrics on PROCESSOR_METRICS_PORT, stops on SIGTERM/SIGINT
after the batch in hand. Start more workers with the same PROCESSOR_APP_ID to share the
partitions; give each its own PROCESSOR_INSTANCE_ID to restart without a rebalance.
"""

from __future__ import annotations

import asyncio
import io
import logging
import signal

from prometheus_client import start_http_server

from salespulse.contracts.topics import ensure_topics
from salespulse.processor.app import Worker, tune_gc
from salespulse.settings import get_settings

log = logging.getLogger("salespulse.processor")


def dump_tasks() -> None:
    """On SIGUSR1: log where each of the worker's tasks waits (a hung restore or rebalance)."""
    for task in asyncio.all_tasks():
        stack = io.StringIO()
        task.print_stack(file=stack)
        log.warning("task %s:\n%s", task.get_name(), stack.getvalue())


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
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    tune_gc()
    asyncio.run(serve())


if __name__ == "__main__":
    main()
