"""Run the SalesPulse stream processor (a Faust worker).

    python -m salespulse.processor

Reads KAFKA_BOOTSTRAP_SERVERS, REDIS_URL and the other settings of the README; creates the
topics it needs, serves Prometheus metrics on PROCESSOR_METRICS_PORT, stops on SIGTERM/SIGINT.
Start more workers with the same PROCESSOR_APP_ID to share the partitions.
"""

from __future__ import annotations

import asyncio
import logging

import faust
from prometheus_client import start_http_server

from salespulse.contracts.topics import ensure_topics
from salespulse.processor.app import create_app
from salespulse.settings import get_settings


def main() -> None:
    settings = get_settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    (settings.data_dir / "processor").mkdir(parents=True, exist_ok=True)
    asyncio.run(ensure_topics(settings))
    start_http_server(settings.processor_metrics_port, addr=settings.processor_metrics_host)
    app = create_app(settings)
    faust.Worker(app, loglevel="INFO", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
