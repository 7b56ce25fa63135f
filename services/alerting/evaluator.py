"""Evaluates the alert rules against the KPI values the API serves, and records alert changes.

Rules come from the compacted kpi.rules topic, which this service follows, so a rule set
through the API is in force at the next evaluation. Every ALERT_EVAL_SECONDS each rule's KPI
is read for the current bucket (the same reading as GET /api/v1/kpis/{kpi}: every KPI,
including those computed when read, and values that change at midnight without an event);
each series steps through domain/alerts.py. A change is produced to kpi.alerts (acks=all)
before the series' state moves on, so a failure repeats the change later instead of losing it;
then it is copied to Redis for GET /api/v1/alerts. kpi.alerts is the durable record: on start
(and when Redis comes back empty) the alert state is rebuilt from it.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import defaultdict
from datetime import datetime, timezone
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from salespulse.alerting import metrics
from salespulse.api.reading import Readings
from salespulse.alerting.records import alert_of
from salespulse.api.documents import checked_rule
from salespulse.contracts.topics import KPI_ALERTS, KPI_RULES, read_compacted_records
from salespulse.domain.alerts import LEVELS, Change, Rule, SeriesState, measure_of, step
from salespulse.readmodel import ReadModel
from salespulse.settings import Settings

log = logging.getLogger(__name__)


def rule_of(rule_id: str, value: bytes) -> Rule | None:
    """The rule of a kpi.rules record, or None (logged) if it is not one: anything may write
    there, not only the API, and one bad record must not stop the alerting service."""
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        log.warning("rule %s is not JSON (%s): ignored", rule_id, exc)
        return None
    try:
        return checked_rule(rule_id, doc)[1]  # what GET /rules would list: one not listed is not evaluated
    except ValueError as exc:
        log.warning("rule %s is invalid (%s): ignored", rule_id, exc)
        return None


def _start(reading: dict) -> str | None:
    start = reading.get("period_start")
    return None if start is None else str(start)


def alert_event(rule: Rule, key: str, change: Change, state: SeriesState, raised_at: datetime,
                reading: dict, value: dict | None, measured, now: datetime) -> dict[str, Any]:
    def num(x):
        return None if x is None else float(x)

    series = rule.series(key)
    return {
        "id": uuid.uuid4().hex, "alert_id": f"{series}@{raised_at.isoformat()}", "series": series,
        "rule": rule.id, "kpi": rule.kpi, "by": rule.by, "key": key, "period": rule.period,
        "period_start": _start(reading), "state": change.state, "level": change.level,
        "previous_level": change.previous, "measure": rule.measure, "measured": num(measured),
        "value": None if value is None else value.get("value"), "threshold": num(change.threshold),
        "unit": reading.get("unit", ""), "at": now.isoformat(), "raised_at": raised_at.isoformat(),
    }


class Evaluator:
    def __init__(self, settings: Settings, readings: Readings, readmodel: ReadModel,
                 producer: AIOKafkaProducer) -> None:
        self.settings = settings
        self.readings = readings
        self.readmodel = readmodel
        self.producer = producer
        self.rules: dict[str, Rule] = {}
        self.states: dict[str, SeriesState] = {}  # series -> state
        self.raised: dict[str, dict] = {}  # series -> its latest event while active
        self._rules_consumer: AIOKafkaConsumer | None = None

    # --- rules ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._rules_consumer = AIOKafkaConsumer(**self.settings.kafka_options(),
                                                enable_auto_commit=False, auto_offset_reset="earliest")
        await self._rules_consumer.start()
        partition = TopicPartition(KPI_RULES, 0)
        self._rules_consumer.assign([partition])
        await self._rules_consumer.seek_to_beginning(partition)
        end = (await self._rules_consumer.end_offsets([partition]))[partition]
        while await self._rules_consumer.position(partition) < end:
            await self.follow_rules(timeout_ms=1000)
        await self.restore()

    async def stop(self) -> None:
        if self._rules_consumer is not None:
            await self._rules_consumer.stop()

    async def follow_rules(self, timeout_ms: int = 0) -> None:
        batches = await self._rules_consumer.getmany(timeout_ms=timeout_ms)
        for records in batches.values():
            for record in records:
                rule_id = record.key.decode("utf-8", "replace")
                rule = None if record.value is None else rule_of(rule_id, record.value)
                if rule is None:
                    self.rules.pop(rule_id, None)
                else:
                    self.rules[rule_id] = rule
        metrics.RULES.set(len(self.rules))

    # --- alert state -------------------------------------------------------------------

    async def restore(self) -> None:
        """The alert state from the whole kpi.alerts log, into memory and Redis."""
        events: list[dict] = []

        async def collect(record: ConsumerRecord) -> None:
            event = alert_of(record.offset, record.value)
            if event is not None:
                events.append(event)

        await read_compacted_records(self.settings.kafka_bootstrap_servers, KPI_ALERTS, collect)
        self.states, self.raised = {}, {}
        for event in events:
            if event["state"] == "resolved":
                self.states.pop(event["series"], None)
                self.raised.pop(event["series"], None)
            else:
                self.states[event["series"]] = SeriesState(event["level"], datetime.fromisoformat(event["raised_at"]))
                self.raised[event["series"]] = event
        await self.readmodel.replace_alerts(events, self.settings.alert_history_size)
        self._count_active()
        log.info("alert state restored from %d kpi.alerts records: %d active", len(events), len(self.raised))

    def _count_active(self) -> None:
        counts = defaultdict(int)
        for event in self.raised.values():
            counts[event["level"]] += 1
        for level in LEVELS:
            metrics.ACTIVE.labels(level).set(counts[level])

    # --- evaluation --------------------------------------------------------------------

    async def evaluate(self, now: datetime | None = None) -> list[dict]:
        """One pass over every rule in force (follow_rules brings them up to date); returns the
        alert events it recorded."""
        started = time.perf_counter()
        now = now or datetime.now(timezone.utc)
        if not await self.readmodel.alerts_known():
            await self.restore()
        groups: dict[tuple[str, str, str], list[Rule]] = defaultdict(list)
        for rule in self.rules.values():
            groups[rule.kpi, rule.by, "day" if rule.period == "now" else rule.period].append(rule)
        recorded = []
        for (kpi, by, period), rules in sorted(groups.items()):
            # Series alerting now are read even without a row: a new day has none for a rep yet.
            raised = {e["key"] for e in self.raised.values() if e["rule"] in {r.id for r in rules}}
            try:
                reading = await self.readings.reading(kpi, by, period, None, keys=raised)
            except Exception as exc:  # noqa: BLE001 - one bad group must not stop the others
                metrics.EVALUATION_ERRORS.inc()
                log.warning("could not read %s by %s for %s: %s", kpi, by, period, exc)
                continue
            for rule in rules:
                for value in reading["values"]:
                    if rule.key in ("*", value["key"]):
                        recorded += await self._observe(rule, value["key"], reading, value, now)
        recorded += await self._resolve_orphans(now)
        if recorded:
            await self.readmodel.record_alerts(recorded, self.settings.alert_history_size)
            self._count_active()
        metrics.EVALUATION.observe(time.perf_counter() - started)
        return recorded

    async def _observe(self, rule: Rule, key: str, reading: dict, value: dict, now: datetime) -> list[dict]:
        series = rule.series(key)
        state = self.states.get(series, SeriesState())
        measured = measure_of(rule, value)
        new, change = step(rule, state, measured, now)
        raised = self.raised.get(series)
        if measured is None and raised is not None and raised["period_start"] != _start(reading):
            # The bucket it was raised in is over and the new one has no value: nothing to alert on.
            new, change = SeriesState(), Change("resolved", None, state.level, None)
        if change is None:
            self.states[series] = new
            return []
        event = alert_event(rule, key, change, new, new.raised_at or state.raised_at, reading, value, measured, now)
        await self._produce(event)
        self.states[series] = new  # only once the change is durable
        return [event]

    async def _resolve_orphans(self, now: datetime) -> list[dict]:
        """Alerts whose rule was deleted (or changed its key, dimension or period) are resolved."""
        out = []
        for series, last in list(self.raised.items()):
            rule = self.rules.get(last["rule"])
            if rule is not None and rule.series(last["key"]) == series:
                continue
            event = {**last, "id": uuid.uuid4().hex, "state": "resolved", "previous_level": last["level"],
                     "level": None, "threshold": None, "at": now.isoformat()}
            await self._produce(event)
            self.states.pop(series, None)
            out.append(event)
        return out

    async def _produce(self, event: dict) -> None:
        await self.producer.send_and_wait(KPI_ALERTS, orjson.dumps(event), key=event["series"].encode())
        metrics.ALERT_CHANGES.labels(event["state"], event["level"] or event["previous_level"] or "").inc()
        if event["state"] == "resolved":
            self.raised.pop(event["series"], None)
        else:
            self.raised[event["series"]] = event
