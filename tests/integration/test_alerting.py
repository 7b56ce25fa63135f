"""Alerts on the real path: a rule set through the API, events into Kafka, the processor's
values in Redis, the alerting service (a subprocess) raising and escalating an alert on
kpi.alerts, GET /api/v1/alerts, and deliveries to real HTTP receivers (a signed JSON webhook,
a Slack-compatible one that is down at first) and a real Alertmanager (Debian package)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import shutil
import subprocess
import threading
from datetime import datetime, time, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from zoneinfo import ZoneInfo

import httpx
import orjson
import pytest
import redis.asyncio as redis
from aiokafka import AIOKafkaProducer

from salespulse.contracts.topics import KPI_ALERTS
from salespulse.devstack.servers import free_port
from tests.integration.conftest import (
    AlertingService,
    cloudevent,
    eventually,
    processor_env,
    unavailable,
    unique,
    wait_until_up,
)

pytestmark = pytest.mark.usefixtures("processor")
SECRET = "test-webhook-secret"


class Receiver:
    """A real HTTP server that records what it is sent; it can refuse the first `down` requests."""

    def __init__(self, down: int = 0) -> None:
        self.received: list[tuple[dict, bytes]] = []
        self.refused = 0
        self.down = down
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if receiver.refused < receiver.down:
                    receiver.refused += 1
                    self.send_response(503)
                else:
                    receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory):
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if binary is None:
        unavailable("Alertmanager is not installed (make deps installs the Debian package)")
    workdir = tmp_path_factory.mktemp("alertmanager")
    config = workdir / "alertmanager.yml"
    config.write_text("route: {receiver: default, group_wait: 1s, group_interval: 1s, repeat_interval: 1h}\n"
                      "receivers: [{name: default}]\n")
    port = free_port()
    proc = subprocess.Popen([binary, f"--config.file={config}", f"--storage.path={workdir}",
                             f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
                            stdout=subprocess.DEVNULL, stderr=(workdir / "log").open("wb"))
    url = f"http://127.0.0.1:{port}"
    wait_until_up(f"{url}/-/ready", proc, "Alertmanager", workdir / "log")
    yield url
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="module")
def receivers():
    webhook, slack = Receiver(), Receiver(down=3)
    yield webhook, slack
    webhook.close()
    slack.close()


@pytest.fixture(scope="module")
def alerting(settings, receivers, alertmanager, tmp_path_factory):
    webhook, slack = receivers
    env = {**processor_env(settings), "ALERTING_APP_ID": unique("salespulse-alerting"),
           "ALERTING_METRICS_PORT": str(free_port()), "ALERT_EVAL_SECONDS": "0.5",
           "ALERT_WEBHOOK_URL": webhook.url, "ALERT_WEBHOOK_SECRET": SECRET, "SLACK_WEBHOOK_URL": slack.url,
           "ALERTMANAGER_URL": alertmanager, "NOTIFY_MAX_BACKOFF_SECONDS": "1"}
    service = AlertingService(env, tmp_path_factory.mktemp("alerting") / "alerting.log")
    service.start()
    yield service
    service.stop()


def missed_call(rep: str, at: datetime) -> dict:
    return cloudevent("call.ended", {"call_id": unique("call"), "rep_id": rep, "direction": "inbound",
                                     "status": "missed", "started_at": at.isoformat(),
                                     "ended_at": (at + timedelta(seconds=20)).isoformat()})


async def ingest(api, *events) -> None:
    response = await api.post("/api/v1/events", json=list(events))
    assert response.status_code == 202, response.text


async def test_rules_are_checked_against_the_catalog_and_the_kpi_direction(api):
    bad = {
        "no_kpi": ({"kpi": "nope", "levels": {"alert": {"enter": 1}}}, 404, "unknown_kpi"),
        "dimension": ({"kpi": "calls_missed", "by": "sector", "levels": {"alert": {"enter": 1}}}, 422,
                      "unsupported_dimension"),
        # calls_missed is lower-is-better: leaving an alert must need fewer misses than entering it
        "backwards": ({"kpi": "calls_missed", "levels": {"alert": {"enter": 5, "exit": 8}}}, 422, "invalid_rule"),
        "state_kpi": ({"kpi": "open_deals", "period": "day", "levels": {"alert": {"enter": 1}}}, 422,
                      "invalid_period"),
        "no_levels": ({"kpi": "calls_missed", "levels": {}}, 422, "invalid_rule"),
    }
    for rule_id, (body, status, code) in bad.items():
        response = await api.put(f"/api/v1/rules/{rule_id}", json=body)
        assert response.status_code == status, response.text
        assert response.json()["error"]["code"] == code
    assert (await api.put("/api/v1/rules/bad id!", json=bad["no_kpi"][0])).status_code == 422


def earlier_today(now: datetime, minutes: float, tz: str) -> datetime:
    """`minutes` before `now`, but not before today's first moment in the business time zone: the
    rule watches today's count (a clean-clone run at 00:07 in Paris put two of these calls in
    yesterday, and the alert never escalated)."""
    zone = ZoneInfo(tz)
    return max(now - timedelta(minutes=minutes), datetime.combine(now.astimezone(zone).date(), time.min, tzinfo=zone))


async def test_an_alert_is_raised_escalated_notified_and_resolved(api, alerting, receivers, alertmanager, settings):
    webhook, slack = receivers
    rep, rule_id = unique("rep"), unique("missed")
    rule = {"kpi": "calls_missed", "by": "rep", "key": rep, "period": "day",
            "levels": {"anticipation": {"enter": 2, "exit": 1}, "alert": {"enter": 4, "exit": 3}}}
    response = await api.put(f"/api/v1/rules/{rule_id}", json=rule)
    assert response.status_code == 200, response.text
    assert response.json()["direction"] == "down"

    now = datetime.now(timezone.utc)
    await ingest(api, *(missed_call(rep, earlier_today(now, i, settings.business_timezone)) for i in range(2)))

    async def raised():
        active = (await api.get("/api/v1/alerts", params={"state": "active"})).json()
        mine = [a for a in active if a["rule"] == rule_id]
        assert [(a["state"], a["level"], a["value"]) for a in mine] == [("raised", "anticipation", 2)]
    await eventually(raised, timeout=30)

    await ingest(api, *(missed_call(rep, earlier_today(now, 10 + i, settings.business_timezone)) for i in range(2)))

    async def escalated():
        active = [a for a in (await api.get("/api/v1/alerts")).json() if a["rule"] == rule_id]
        assert [(a["state"], a["level"], a["previous_level"], a["threshold"]) for a in active] == [
            ("level_changed", "alert", "anticipation", 4)]
    await eventually(escalated, timeout=30)

    async def alertmanager_has_the_alert_level_only():  # the anticipation alert was ended
        alerts = httpx.get(f"{alertmanager}/api/v2/alerts", params={"filter": f'key="{rep}"'}).json()
        assert [(a["labels"]["level"], a["labels"]["severity"]) for a in alerts] == [("alert", "critical")]
    await eventually(alertmanager_has_the_alert_level_only, timeout=30)

    assert (await api.delete(f"/api/v1/rules/{rule_id}")).status_code == 204

    async def resolved():
        history = [a for a in (await api.get("/api/v1/alerts", params={"state": "all"})).json()
                   if a["rule"] == rule_id]
        assert [a["state"] for a in history] == ["resolved", "level_changed", "raised"]  # newest first
        assert len({a["alert_id"] for a in history}) == 1  # one alert from raised to resolved
        assert not [a for a in (await api.get("/api/v1/alerts")).json() if a["rule"] == rule_id]
    await eventually(resolved, timeout=30)

    # The webhook got each change once, in order, signed over "{timestamp}.{body}".
    async def webhook_got_all():
        mine = [(h, b) for h, b in webhook.received if orjson.loads(b)["rule"] == rule_id]
        assert [orjson.loads(b)["state"] for _, b in mine] == ["raised", "level_changed", "resolved"]
        for headers, body in mine:
            expected = hmac.new(SECRET.encode(), headers["x-salespulse-timestamp"].encode() + b"." + body,
                                hashlib.sha256).hexdigest()
            assert headers["x-salespulse-signature"] == f"sha256={expected}"
            assert headers["x-salespulse-event-id"] == orjson.loads(body)["id"]
    await eventually(webhook_got_all, timeout=30)

    # Slack refused the first three attempts: retried with backoff, nothing lost, nothing twice.
    async def slack_got_all():
        texts = [json.loads(b)["text"] for _, b in slack.received if rep in json.loads(b)["text"]]
        assert len(texts) == 3 and texts[0].startswith("Anticipation: calls_missed for rep " + rep)
        assert texts[1].startswith("Alert:") and texts[2].startswith("Resolved:")
    await eventually(slack_got_all, timeout=30)
    assert slack.refused == 3

    # Alertmanager saw the alert level end too.
    async def alertmanager_has_it():
        alerts = httpx.get(f"{alertmanager}/api/v2/alerts", params={"active": "true", "inhibited": "true",
                                                                      "silenced": "true", "unprocessed": "true",
                                                                      "filter": f'key="{rep}"'}).json()
        assert alerts == []  # resolved alerts are not active
    await eventually(alertmanager_has_it, timeout=30)


async def test_alertmanager_receives_active_alerts_with_their_severity(api, alerting, alertmanager):
    rep, rule_id = unique("rep"), unique("missed")
    rule = {"kpi": "calls_missed", "by": "rep", "key": "*", "period": "day",
            "levels": {"alert": {"enter": 1, "exit": 0}}}
    await ingest(api, missed_call(rep, datetime.now(timezone.utc)))
    assert (await api.put(f"/api/v1/rules/{rule_id}", json=rule)).status_code == 200

    async def firing():
        alerts = httpx.get(f"{alertmanager}/api/v2/alerts", params={"filter": f'key="{rep}"'}).json()
        assert [(a["labels"]["kpi"], a["labels"]["severity"], a["labels"]["rule"], a["status"]["state"])
                for a in alerts] == [("calls_missed", "critical", rule_id, "active")]
    await eventually(firing, timeout=30)
    assert (await api.delete(f"/api/v1/rules/{rule_id}")).status_code == 204


async def test_an_active_alert_survives_a_restart_and_a_wiped_redis_without_being_raised_again(
        api, alerting, settings):
    rep, rule_id = unique("rep"), unique("missed")
    rule = {"kpi": "calls_missed", "by": "rep", "key": rep, "period": "day", "levels": {"alert": {"enter": 1}}}
    assert (await api.put(f"/api/v1/rules/{rule_id}", json=rule)).status_code == 200
    await ingest(api, missed_call(rep, datetime.now(timezone.utc)))

    async def changes() -> list[str]:
        history = (await api.get("/api/v1/alerts", params={"state": "all"})).json()
        return [a["state"] for a in history if a["rule"] == rule_id]

    async def raised_once():
        assert await changes() == ["raised"]
        assert [a["rule"] for a in (await api.get("/api/v1/alerts")).json()].count(rule_id) == 1
    await eventually(raised_once, timeout=30)

    alerting.stop()
    alerting.start()  # its state comes back from kpi.alerts
    await asyncio.sleep(2)  # several evaluations
    await raised_once()

    store = redis.from_url(settings.redis_url)
    await store.delete("sp:alerts:active", "sp:alerts:history", "sp:alerts:loaded")  # as if Redis restarted empty
    await store.aclose()
    await eventually(raised_once, timeout=30)  # copied back from kpi.alerts, still raised once

    assert (await api.delete(f"/api/v1/rules/{rule_id}")).status_code == 204

    async def resolved():
        assert await changes() == ["resolved", "raised"]
    await eventually(resolved, timeout=30)


async def test_records_of_kpi_alerts_that_are_no_alert_change_are_skipped_not_a_stop(
        api, alerting, receivers, settings):
    """kpi.alerts is open like every topic: a tombstone, a record that is not JSON or a change
    missing its fields must not stop the receivers' deliveries (before: orjson's or a message's
    KeyError ended the delivery task and the service, which met the same record again at each
    start) nor the evaluator's restore (before: it could not start)."""
    webhook, _ = receivers
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        for key, value in [(b"junk/1", b"{not json"), (b"junk/2", None), (b"junk/3", orjson.dumps(["raised"])),
                           (b"junk/4", orjson.dumps({"series": "junk/4", "state": "raised", "level": "alert"}))]:
            await producer.send_and_wait(KPI_ALERTS, value, key=key)
    finally:
        await producer.stop()

    rep, rule_id = unique("rep"), unique("missed")
    rule = {"kpi": "calls_missed", "by": "rep", "key": rep, "period": "day", "levels": {"alert": {"enter": 1}}}
    assert (await api.put(f"/api/v1/rules/{rule_id}", json=rule)).status_code == 200
    await ingest(api, missed_call(rep, datetime.now(timezone.utc)))

    def delivered() -> list[str]:
        return [orjson.loads(b)["state"] for _, b in webhook.received if orjson.loads(b).get("rule") == rule_id]

    async def raised_and_delivered():
        assert delivered() == ["raised"]
        assert [a["rule"] for a in (await api.get("/api/v1/alerts")).json()].count(rule_id) == 1
    await eventually(raised_and_delivered, timeout=30)

    alerting.stop()
    alerting.start()  # restores its state from kpi.alerts, junk included
    await asyncio.sleep(2)  # several evaluations: the alert is known, not raised again
    await raised_and_delivered()
    assert alerting.proc.poll() is None
    history = await api.get("/api/v1/alerts", params={"state": "all"})  # no junk in Redis to fail it
    assert history.status_code == 200, history.text

    assert (await api.delete(f"/api/v1/rules/{rule_id}")).status_code == 204

    async def resolved_and_delivered():
        assert delivered() == ["raised", "resolved"]
    await eventually(resolved_and_delivered, timeout=30)
