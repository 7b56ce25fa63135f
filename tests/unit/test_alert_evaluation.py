"""The alerting service's evaluation pass with the I/O around it faked: which series it
observes, what it produces, and that an alert does not outlive the bucket it was raised in;
what its notifications send, and which of a receiver's answers are retried."""

from datetime import datetime, timezone
from decimal import Decimal

import httpx
import orjson
from prometheus_client import REGISTRY

from salespulse.alerting import notifier
from salespulse.alerting.evaluator import Evaluator
from salespulse.alerting.notifier import slack_message
from salespulse.domain.alerts import Rule, Threshold
from salespulse.settings import Settings


class FakeReadings:
    """Serves one reading per call; `keys` without a row get what an empty row gives."""

    def __init__(self) -> None:
        self.period_start, self.values, self.empty = "2026-11-23", {}, 0.0

    async def reading(self, kpi, by, period, at, keys=()):
        values = [{"key": k, "value": v} for k, v in self.values.items()]
        values += [{"key": k, "value": self.empty} for k in keys if k not in self.values]
        return {"kpi": kpi, "by": by, "period": period, "period_start": self.period_start, "unit": "count",
                "values": values}


class FakeReadModel:
    async def alerts_known(self):
        return True

    async def record_alerts(self, events, size):
        pass


class FakeProducer:
    def __init__(self) -> None:
        self.sent = []

    async def send_and_wait(self, topic, value, key):
        self.sent.append((topic, key))


def evaluator(readings, direction="down", kpi="calls_missed"):
    ev = Evaluator(Settings(), readings, FakeReadModel(), FakeProducer())
    ev.rules = {"r": Rule("r", kpi, "rep", "*", "day", direction, {"alert": Threshold(Decimal(5), Decimal(5))})}
    return ev


NOW = datetime(2026, 11, 23, 12, tzinfo=timezone.utc)


async def test_an_alert_resolves_when_the_next_day_starts_without_a_row_for_its_rep():
    readings = FakeReadings()
    ev = evaluator(readings)
    readings.values = {"rep-x": 12.0, "rep-y": 1.0}
    assert [(e["key"], e["state"]) for e in await ev.evaluate(NOW)] == [("rep-x", "raised")]
    readings.period_start, readings.values = "2026-11-24", {"rep-y": 2.0}  # rep-x has no row yet today
    assert [(e["key"], e["state"]) for e in await ev.evaluate(NOW)] == [("rep-x", "resolved")]


async def test_a_ratio_with_no_value_keeps_its_alert_within_the_bucket_and_drops_it_after():
    readings = FakeReadings()
    readings.empty = None  # a ratio over nothing is undefined
    ev = evaluator(readings, direction="up", kpi="answer_rate")
    ev.rules = {"r": Rule("r", "answer_rate", "rep", "*", "day", "up",
                          {"alert": Threshold(Decimal("0.5"), Decimal("0.6"))})}
    readings.values = {"rep-x": 0.2}
    assert [e["state"] for e in await ev.evaluate(NOW)] == ["raised"]
    readings.values = {}
    assert await ev.evaluate(NOW) == []  # same day, no value: nothing changes
    readings.period_start = "2026-11-24"
    assert [e["state"] for e in await ev.evaluate(NOW)] == ["resolved"]


def test_a_slack_message_escapes_what_slack_would_read_as_markup():
    event = {"kpi": "revenue", "by": "team", "key": "R&D <!channel> <http://evil|x>", "period": "day",
             "period_start": "2026-12-07", "state": "raised", "level": "alert", "previous_level": None,
             "measure": "value", "measured": 5.0, "threshold": 10.0}
    message = slack_message(event, "http://wall.example/?board=sales")
    assert message["text"] == ("Alert: revenue for team R&amp;D &lt;!channel&gt; &lt;http://evil|x&gt; "
                               "(day 2026-12-07) raised: value 5 crossed 10.")
    assert message["blocks"][0]["text"]["text"] == message["text"] + "\n<http://wall.example/?board=sales|Wallboard>"


async def test_a_change_the_receiver_refuses_is_not_sent_again_and_one_it_could_not_take_is(monkeypatch):
    # The receiver is an outside service: faked here by httpx's transport, answering in turn.
    answers, seen, waits = iter([503, 429, 404, 200, 400, 422, 200]), [], []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(orjson.loads(request.content)["id"])
        return httpx.Response(next(answers), text="invalid_payload")

    async def wait(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(notifier.asyncio, "sleep", wait)
    def refused() -> float:
        return REGISTRY.get_sample_value("salespulse_notifications_total",
                                         {"receiver": "webhook", "outcome": "refused"}) or 0.0

    before = refused()
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        delivery = notifier.Delivery(Settings(notify_max_backoff_seconds=1.5),
                                     notifier.WebhookReceiver("http://receiver.example/hook", "s3cret"), client)
        try:
            for event_id in ("down-then-taken", "refused", "refused-too", "next"):
                await delivery.deliver({"id": event_id, "kpi": "revenue"})
        finally:
            await delivery.consumer.stop()  # never started: no broker here
    assert seen == ["down-then-taken"] * 4 + ["refused", "refused-too", "next"]
    assert waits == [0.5, 1.0, 1.5]  # 503, 429, 404 retried with backoff; 400 and 422 not
    assert refused() - before == 2
