"""Provider events in, canonical events out: the I/O around salespulse.webhooks.

For each provider event, in order: skip it if its id was taken before (dedupe), merge it
into the call's or deal's state in Redis, build the canonical event from the merged state,
and produce it to its sales.* topic. An event whose person or stage maps to nothing goes to
sales.deadletter with the reason (and the provider's payload) and is counted; an event that
leaves its deal incomplete is held in the merged state until the missing fields arrive.

Ids are marked as taken only once Kafka has the event, so a request that failed half way is
retried whole: merging the same event again changes nothing, and the event is built again.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from salespulse.api.metrics import WEBHOOK_EVENTS
from salespulse.api.admission import Admission
from salespulse.contracts.events import InvalidEvent, route_of
from salespulse.contracts.topics import DEADLETTER
from salespulse.domain.directory import REPS, RepRecord, identity_index
from salespulse.readmodel import ReadModel
from salespulse.settings import Settings
from salespulse.webhooks.core import Change, Context, Ignored, Known, Parsed, build, merge
from salespulse.webhooks.providers import Provider, stages_of

log = logging.getLogger(__name__)


@dataclass
class Result:
    id: str
    outcome: str  # accepted | duplicate | held | unmapped | invalid | ignored
    event_id: str | None = None
    reason: str | None = None

    def to_doc(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


class Intake:
    def __init__(self, settings: Settings, readmodel: ReadModel, producer: AIOKafkaProducer,
                 admission: Admission) -> None:
        self.settings, self.readmodel, self.producer, self.admission = settings, readmodel, producer, admission
        days = settings.entity_retention_days
        self.state_ttl = days * 86400 if days else None  # a call or deal untouched this long is forgotten

    async def take(self, provider: Provider, parsed: list[Parsed]) -> list[Result]:
        reps = {k: RepRecord.from_doc(d) for k, d in (await self.readmodel.records(REPS)).items()}
        index = identity_index(reps)
        context = Context(provider.name, lambda native: index.get((provider.name, native)),
                          stages_of(provider, self.settings),
                          self.settings.webhook_currency or self.settings.reporting_currency)
        seen = await self.readmodel.webhook_seen(provider.name, {p.native_id for p in parsed})
        results, sends, taken = [], [], []
        for item in parsed:
            if item.native_id in seen:
                results.append(Result(item.native_id, "duplicate"))
            elif isinstance(item, Ignored):
                results.append(Result(item.native_id, "ignored", reason=item.reason))
            else:
                result, send = await self._one(item, context)
                results.append(result)
                if send is not None:
                    sends.append(send)
                if result.outcome in ("accepted", "held"):
                    taken.append(item.native_id)
            seen.add(item.native_id)  # the same id twice in one request counts once
        await asyncio.gather(*sends)  # KafkaError propagates: nothing is marked taken
        await self.readmodel.mark_webhook_seen(provider.name, taken, self.settings.webhook_dedupe_seconds)
        for result in results:
            WEBHOOK_EVENTS.labels(provider.name, result.outcome).inc()
        return results

    async def _one(self, change: Change, context: Context) -> tuple[Result, Any]:
        def update(doc: dict[str, Any] | None) -> dict[str, Any]:
            return merge(Known.from_doc(doc), change).to_doc()

        known = Known.from_doc(await self.readmodel.update_webhook_state(
            change.kind, change.entity_id, update, self.state_ttl))
        built = build(known, change, context)
        if built.unmapped is not None:
            return (Result(change.native_id, "unmapped", reason=built.unmapped),
                    await self._dead_letter(context.provider, change, built.unmapped, None))
        if built.event is None:
            return Result(change.native_id, "held", reason="waiting for " + ", ".join(built.missing)), None
        try:
            envelope, value = self.admission.admit(built.event, datetime.now(timezone.utc))
        except InvalidEvent as exc:
            reason = f"the translated event is invalid: {exc}"
            return (Result(change.native_id, "invalid", reason=reason),
                    await self._dead_letter(context.provider, change, reason, built.event))
        topic, key = route_of(envelope)
        send = await self.producer.send(topic, value, key=key.encode())
        return Result(change.native_id, "accepted", event_id=envelope.id), send

    async def _dead_letter(self, provider: str, change: Change, reason: str, event: dict | None):
        """Keep what could not be counted, with why: fix the directory or stage map, then re-send."""
        log.warning("webhooks/%s event %s dead-lettered: %s", provider, change.native_id, reason)
        value = orjson.dumps({"provider": provider, "id": change.native_id, "reason": reason,
                              "payload": change.payload, "event": event}, default=str)
        return await self.producer.send(DEADLETTER, value, key=change.entity_id.encode(), headers=[
            ("salespulse.reason", reason.encode()), ("salespulse.source.topic", f"webhooks/{provider}".encode())])
