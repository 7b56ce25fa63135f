"""Ingest: CloudEvents over HTTP, validated against schemas/, produced to their sales.* topic."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from typing import Annotated, Any

from aiokafka.errors import KafkaError
from fastapi import APIRouter, Body, Request
from pydantic import Field

from salespulse.api.dependencies import ProducerDep
from salespulse.api.errors import ApiError
from salespulse.api.metrics import INGESTED
from salespulse.api.models import IngestResult, errors
from salespulse.contracts.events import InvalidEvent, route_of

router = APIRouter(prefix="/events", tags=["ingest"])

MAX_BATCH = 1000
MAX_BODY_BYTES = 8 * 1024 * 1024  # (app.py's BodyLimit)

EXAMPLE = {
    "specversion": "1.0", "id": "evt-0001", "source": "pbx/paris-1", "type": "call.ended",
    "time": "2026-11-22T09:14:03+01:00", "datacontenttype": "application/json",
    "data": {"call_id": "c-1", "rep_id": "rep-7", "direction": "outbound", "status": "answered",
             "started_at": "2026-11-22T09:10:00+01:00", "answered_at": "2026-11-22T09:10:09+01:00",
             "ended_at": "2026-11-22T09:14:03+01:00"},
}

EventsBody = Annotated[
    dict[str, Any] | Annotated[list[dict[str, Any]], Field(min_length=1)],
    Body(description=f"One CloudEvent, or a JSON array of up to {MAX_BATCH}.", examples=[EXAMPLE]),
]


def limit(request: Request, count: int) -> None:
    """INGEST_RATE_LIMIT events/s per API key (per client address when no key is configured)."""
    principal = request.state.principal
    who = principal.name if principal.name != "anonymous" else (request.client.host if request.client else "?")
    wait = request.app.state.ingest_limiter.take(who, count)
    if wait == float("inf"):
        raise ApiError(413, "batch_too_large", f"{count} events is over INGEST_BURST; send smaller batches")
    if wait:
        INGESTED.labels("rate_limited").inc(count)
        raise ApiError(429, "rate_limited", f"over {request.app.state.ingest_limiter.rate:g} events/s for {who}; "
                       f"retry in {wait:.1f}s", headers={"Retry-After": str(max(1, round(wait + 0.5)))})


@router.post("", status_code=202, response_model=IngestResult, summary="Send events", responses=errors(
    413, 422, 429, 503, e413=f"Over {MAX_BATCH} events in one request or over INGEST_BURST (`batch_too_large`), "
         f"or a body over {MAX_BODY_BYTES} bytes (`body_too_large`).",
    e422="An event is invalid (`invalid_event`): `details` gives each bad event's index, id and reason; "
         "none was accepted.", e503="Kafka did not take the events (`kafka_unavailable`): send them again, "
         "re-sending the same event ids is safe."))
async def create_events(body: EventsBody, producer: ProducerDep, request: Request) -> dict:
    """Validate every event; if all are valid produce them and answer once Kafka has them.

    A batch is all or nothing: one invalid event rejects the batch with each event's reason,
    so a sender never has to work out which part went through.
    """
    docs = body if isinstance(body, list) else [body]  # a batch holds one event at least (schema)
    if len(docs) > MAX_BATCH:
        raise ApiError(413, "batch_too_large", f"{len(docs)} events; at most {MAX_BATCH} per request")
    limit(request, len(docs))
    admission, now = request.app.state.admission, datetime.now(timezone.utc)
    envelopes, values, problems = [], [], []
    for index, doc in enumerate(docs):
        try:
            envelope, value = admission.admit(doc, now)
            envelopes.append(envelope)
            values.append(value)
        except InvalidEvent as exc:
            problems.append({"index": index, "id": doc.get("id") if isinstance(doc, dict) else None,
                             "reason": str(exc)})
    if problems:
        INGESTED.labels("rejected").inc(len(docs))
        message = (problems[0]["reason"] if len(docs) == 1 else
                   f"{len(problems)} of {len(docs)} events are invalid; none was accepted")
        raise ApiError(422, "invalid_event", message, problems)
    try:
        sends = []
        for value, envelope in zip(values, envelopes):
            topic, key = route_of(envelope)
            sends.append(await producer.send(topic, value, key=key.encode()))
        metadata = await asyncio.gather(*sends)
    except KafkaError as exc:
        INGESTED.labels("failed").inc(len(docs))
        raise ApiError(503, "kafka_unavailable",
                       f"Kafka did not take the events ({exc.__class__.__name__}); retry: "
                       "re-sending the same event ids is safe") from None
    INGESTED.labels("accepted").inc(len(docs))
    return {"accepted": len(docs), "events": [
        {"id": e.id, "type": e.type, "topic": m.topic, "partition": m.partition, "offset": m.offset}
        for e, m in zip(envelopes, metadata)
    ]}
