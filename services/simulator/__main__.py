"""Run the event simulator: a live sales floor streaming to Kafka.

    python -m salespulse.simulator [--rate 15] [--duration SECONDS] [--seed N]

Starts about RATE new activities a second (calls, deal moves, orders) at full working-hours
intensity, fewer at night and on week-ends; each call then answers and ends in real time.
Events go straight to the sales.* topics, keyed by entity id, as a telephony system or a CRM
connector would send them.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import orjson
from aiokafka import AIOKafkaProducer

from salespulse.contracts.directory import DIRECTORY_TOPICS
from salespulse.contracts.topics import ensure_topics, read_compacted
from salespulse.settings import get_settings
from salespulse.simulator.world import World

log = logging.getLogger("salespulse.simulator")


async def seed_directory(bootstrap_servers: str, producer: AIOKafkaProducer, world: World) -> None:
    """Give the world's reps, products and customers directory records, leaving those that exist
    alone (a rep moved through the API must not be put back on its first team)."""
    for kind, records in world.directory_records().items():
        topic, known = DIRECTORY_TOPICS[kind], set()

        async def collect(key: bytes | None, value: bytes | None) -> None:
            (known.add if value is not None else known.discard)(key)

        await read_compacted(bootstrap_servers, topic, collect)
        missing = [(key, doc) for key, doc in records if key.encode() not in known]
        for key, doc in missing:
            await producer.send(topic, orjson.dumps(doc), key=key.encode())
        log.info("wrote %d records to %s (%d there already)", len(missing), topic, len(records) - len(missing))
    await producer.flush()


async def run(rate: float, duration: float | None, seed: int | None) -> None:
    settings = get_settings()
    await ensure_topics(settings)
    world = World(random.Random(seed), ZoneInfo(settings.business_timezone))
    producer = AIOKafkaProducer(**settings.producer_options(), acks="all",
                                enable_idempotence=True, linger_ms=5)
    await producer.start()
    await seed_directory(settings.kafka_bootstrap_servers, producer, world)
    loop = asyncio.get_running_loop()
    started, sent, tick = loop.time(), 0, 0.1
    credit, last_report = 0.0, loop.time()
    try:
        while duration is None or loop.time() - started < duration:
            now = datetime.now(timezone.utc)
            credit += rate * tick * world.activity(now)
            while credit >= 1:
                world.start_something(now)
                credit -= 1
            for topic, key, event in world.due(now):
                await producer.send(topic, orjson.dumps(event), key=key.encode())
                sent += 1
            if loop.time() - last_report >= 30:
                log.info("%d events sent", sent)
                last_report = loop.time()
            await asyncio.sleep(tick)
    finally:
        await producer.stop()
        log.info("stopped after %d events", sent)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=float(os.environ.get("SIM_RATE", "15")),
                        help="new activities per second at full intensity (env SIM_RATE, default 15)")
    parser.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    parser.add_argument("--seed", type=int, default=None, help="random seed, for a repeatable run")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if os.environ.get("SIMULATE", "1") == "0":
        log.info("SIMULATE=0: not simulating")
        return
    try:
        asyncio.run(run(args.rate, args.duration, args.seed))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
