"""Delivers alert changes from kpi.alerts to the configured receivers.

Each receiver reads kpi.alerts in its own consumer group and commits a change only once the
receiver accepted it, retrying with exponential backoff (up to NOTIFY_MAX_BACKOFF_SECONDS)
for as long as it takes: a receiver that is down for a while gets every change, in order,
when it comes back, and a change it accepted is not sent again. (A crash between a delivery and
its commit could repeat that one change: each carries its event id, `X-SalesPulse-Event-Id`
for webhooks, so a receiver can drop the repeat.) A change the receiver refuses for what it
is (REFUSED) is logged, counted and skipped: sent again, it would hold back every later one.

Receivers: a generic JSON webhook signed with HMAC-SHA256, a Slack-compatible incoming
webhook, and Alertmanager's v2 API. Alertmanager forgets an alert that is not sent again
within its resolve_timeout, so active alerts are also re-posted to it every
ALERTMANAGER_RESEND_SECONDS; that refreshes an alert, it is not a new notification
(Alertmanager groups and deduplicates them, as it does for Prometheus).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from typing import Any, Protocol

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from salespulse.alerting import metrics
from salespulse.alerting.records import alert_of
from salespulse.contracts.topics import KPI_ALERTS
from salespulse.readmodel import ReadModel
from salespulse.settings import Settings

log = logging.getLogger(__name__)

SEVERITY = {"balance": "info", "anticipation": "warning", "alert": "critical"}
# Answers that refuse the change itself (its content): sending it again would be refused again,
# and would hold back every later change. Any other failure (the receiver down, 5xx, 429, or
# 401/403/404: credentials or a URL to fix) is retried until it is taken, so nothing is lost.
REFUSED = frozenset({400, 413, 422})


def summary(event: dict[str, Any]) -> str:
    where = "company" if event["by"] == "all" else f"{event['by']} {event['key']}"
    period = event["period"] + (f" {event['period_start']}" if event.get("period_start") else "")
    measured = "no value" if event.get("measured") is None else f"{event['measured']:g}"
    if event["state"] == "resolved":
        return f"Resolved: {event['kpi']} for {where} ({period}) is back within its thresholds ({event['previous_level']} over)."
    verb = "raised" if event["state"] == "raised" else f"now {event['level']} (was {event['previous_level']})"
    return (f"{event['level'].capitalize()}: {event['kpi']} for {where} ({period}) {verb}: "
            f"{event['measure']} {measured} crossed {event['threshold']:g}.")


class Receiver(Protocol):
    name: str

    async def deliver(self, client: httpx.AsyncClient, event: dict[str, Any]) -> None: ...


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=` + hex HMAC-SHA256 of "{timestamp}.{body}" with the shared secret."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


class WebhookReceiver:
    """POSTs the alert event as JSON; `X-SalesPulse-Signature` lets the receiver check it came from us."""

    name = "webhook"

    def __init__(self, url: str, secret: str) -> None:
        self.url, self.secret = url, secret

    async def deliver(self, client: httpx.AsyncClient, event: dict[str, Any]) -> None:
        body = orjson.dumps(event)
        timestamp = str(int(time.time()))
        response = await client.post(self.url, content=body, headers={
            "Content-Type": "application/json", "X-SalesPulse-Event-Id": event["id"],
            "X-SalesPulse-Timestamp": timestamp, "X-SalesPulse-Signature": signature(self.secret, timestamp, body)})
        response.raise_for_status()


def slack_message(event: dict[str, Any], wallboard_url: str) -> dict[str, Any]:
    """Slack's incoming webhook payload: `text` plus one section block. Names come from the
    directory and events, so &, < and > are escaped as Slack asks: a team called `<!channel>`
    must not notify a whole channel, nor `<http://x|y>` make a link."""
    text = summary(event).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return {"text": text,
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": f"{text}\n<{wallboard_url}|Wallboard>"}}]}


class SlackReceiver:
    name = "slack"

    def __init__(self, url: str, wallboard_url: str) -> None:
        self.url, self.wallboard_url = url, wallboard_url

    async def deliver(self, client: httpx.AsyncClient, event: dict[str, Any]) -> None:
        response = await client.post(self.url, json=slack_message(event, self.wallboard_url))
        response.raise_for_status()


def alertmanager_alerts(event: dict[str, Any], generator_url: str) -> list[dict[str, Any]]:
    """The Alertmanager v2 alerts an event stands for: the new level firing, the old one ended."""

    def alert(level: str, ends_at: str | None) -> dict[str, Any]:
        doc = {
            "labels": {"alertname": f"SalesPulse_{event['kpi']}", "kpi": event["kpi"], "by": event["by"],
                       "key": event["key"], "period": event["period"], "rule": event["rule"],
                       "level": level, "severity": SEVERITY[level]},
            "annotations": {"summary": summary(event), "value": str(event.get("measured"))},
            "startsAt": event["raised_at"], "generatorURL": generator_url,
        }
        if ends_at:
            doc["endsAt"] = ends_at
        return doc

    out = []
    if event.get("previous_level") and event["previous_level"] != event.get("level"):
        out.append(alert(event["previous_level"], event["at"]))
    if event.get("level"):
        out.append(alert(event["level"], None))
    return out


class AlertmanagerReceiver:
    name = "alertmanager"

    def __init__(self, url: str, generator_url: str) -> None:
        self.url, self.generator_url = url.rstrip("/") + "/api/v2/alerts", generator_url

    async def deliver(self, client: httpx.AsyncClient, event: dict[str, Any]) -> None:
        await self.post(client, alertmanager_alerts(event, self.generator_url))

    async def post(self, client: httpx.AsyncClient, alerts: list[dict[str, Any]]) -> None:
        if alerts:
            response = await client.post(self.url, json=alerts)
            response.raise_for_status()


def receivers(settings: Settings) -> list[Receiver]:
    out: list[Receiver] = []
    if settings.alert_webhook_url:
        if not settings.alert_webhook_secret:
            raise ValueError("ALERT_WEBHOOK_URL is set without ALERT_WEBHOOK_SECRET to sign its requests")
        out.append(WebhookReceiver(settings.alert_webhook_url, settings.alert_webhook_secret))
    if settings.slack_webhook_url:
        out.append(SlackReceiver(settings.slack_webhook_url, settings.wallboard_url))
    if settings.alertmanager_url:
        out.append(AlertmanagerReceiver(settings.alertmanager_url, settings.wallboard_url))
    return out


class Delivery:
    """One receiver's consumer of kpi.alerts."""

    def __init__(self, settings: Settings, receiver: Receiver, client: httpx.AsyncClient) -> None:
        self.settings, self.receiver, self.client = settings, receiver, client
        self.partition = TopicPartition(KPI_ALERTS, 0)
        self.consumer = AIOKafkaConsumer(
            **settings.kafka_options(), group_id=f"{settings.alerting_app_id}-{receiver.name}",
            enable_auto_commit=False, auto_offset_reset="latest")

    async def start(self) -> None:
        """Join the group and fix the starting position (a new receiver starts at the end)."""
        await self.consumer.start()
        self.consumer.assign([self.partition])
        committed = await self.consumer.committed(self.partition)
        if committed is None:
            await self.consumer.seek_to_end(self.partition)
            await self.consumer.commit({self.partition: await self.consumer.position(self.partition)})

    async def run(self) -> None:
        try:
            while True:
                batches = await self.consumer.getmany(self.partition, timeout_ms=1000)
                for record in batches.get(self.partition, []):
                    event = alert_of(record.offset, record.value)
                    if event is None:  # nothing a receiver could be sent; it must not hold back the rest
                        metrics.NOTIFICATIONS.labels(self.receiver.name, "skipped").inc()
                    else:
                        await self.deliver(event)
                    await self.consumer.commit({self.partition: record.offset + 1})
                end = (await self.consumer.end_offsets([self.partition]))[self.partition]
                metrics.NOTIFY_BACKLOG.labels(self.receiver.name).set(end - await self.consumer.position(self.partition))
        finally:
            await self.consumer.stop()

    async def deliver(self, event: dict[str, Any]) -> None:
        """Until the receiver takes the change, retrying with backoff; unless it refuses this
        change itself (REFUSED), which no retry would change: logged, counted, and the next."""
        delay = 0.5
        while True:
            try:
                await self.receiver.deliver(self.client, event)
                metrics.NOTIFICATIONS.labels(self.receiver.name, "delivered").inc()
                return
            except (httpx.HTTPError, OSError) as exc:
                if isinstance(exc, httpx.HTTPStatusError) and exc.response.status_code in REFUSED:
                    metrics.NOTIFICATIONS.labels(self.receiver.name, "refused").inc()
                    log.error("%s refused alert event %s (%s: %s); not sent again", self.receiver.name,
                              event["id"], exc.response.status_code, exc.response.text[:500])
                    return
                metrics.NOTIFICATIONS.labels(self.receiver.name, "retried").inc()
                log.warning("%s did not take alert event %s (%s); retrying in %.1fs",
                            self.receiver.name, event["id"], exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.settings.notify_max_backoff_seconds)


async def refresh_alertmanager(receiver: AlertmanagerReceiver, client: httpx.AsyncClient, readmodel: ReadModel,
                               every: float) -> None:
    """Re-post the active alerts so that Alertmanager keeps them firing."""
    while True:
        await asyncio.sleep(every)
        try:
            alerts = [a for event in await readmodel.active_alerts()
                      for a in alertmanager_alerts({**event, "previous_level": None}, receiver.generator_url)]
            await receiver.post(client, alerts)
        except Exception as exc:  # noqa: BLE001 - the next round tries again
            log.warning("could not refresh Alertmanager's alerts (%s)", exc)
