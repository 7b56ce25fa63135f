"""`python -m salespulse.alerting`: evaluate alert rules and deliver alert changes."""

from __future__ import annotations

import asyncio
import logging
from zoneinfo import ZoneInfo

import httpx
from prometheus_client import start_http_server

from salespulse.alerting.evaluator import Evaluator
from salespulse.alerting.notifier import AlertmanagerReceiver, Delivery, receivers, refresh_alertmanager
from salespulse.api.kafka import new_producer
from salespulse.api.reading import Readings
from salespulse.contracts.topics import ensure_topics
from salespulse.readmodel import ReadModel
from salespulse.settings import get_settings

log = logging.getLogger("salespulse.alerting")


async def evaluate_forever(evaluator: Evaluator, every: float) -> None:
    while True:
        try:
            await evaluator.follow_rules()
            await evaluator.evaluate()
        except Exception as exc:  # noqa: BLE001 - Kafka or Redis away: the next round retries
            log.warning("alert evaluation failed (%s); retrying", exc)
            log.debug("evaluation failure", exc_info=True)
        await asyncio.sleep(every)


async def main() -> None:
    settings = get_settings()
    targets = receivers(settings)  # refuses a webhook without its secret before anything starts
    delay = 0.5
    while True:
        try:
            await ensure_topics(settings)
            break
        except Exception as exc:  # noqa: BLE001
            log.warning("Kafka not ready (%s); retrying in %.1fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
    start_http_server(settings.alerting_metrics_port, settings.alerting_metrics_host)
    readmodel = ReadModel.from_url(settings.redis_url)
    producer = new_producer(settings.kafka_bootstrap_servers)
    await producer.start()
    async with httpx.AsyncClient(timeout=10) as client:
        deliveries = [Delivery(settings, receiver, client) for receiver in targets]
        for delivery in deliveries:  # positioned before any alert can be produced
            await delivery.start()
        evaluator = Evaluator(settings, Readings(readmodel, ZoneInfo(settings.business_timezone)), readmodel, producer)
        await evaluator.start()
        tasks = [asyncio.create_task(d.run()) for d in deliveries]
        tasks += [asyncio.create_task(refresh_alertmanager(r, client, readmodel, settings.alertmanager_resend_seconds))
                  for r in targets if isinstance(r, AlertmanagerReceiver)]
        tasks.append(asyncio.create_task(evaluate_forever(evaluator, settings.alert_eval_seconds)))
        log.info("alerting ready: %d rules, receivers: %s", len(evaluator.rules),
                 ", ".join(r.name for r in targets) or "none (alerts go to kpi.alerts and the API only)")
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await evaluator.stop()
            await producer.stop()
            await readmodel.close()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
