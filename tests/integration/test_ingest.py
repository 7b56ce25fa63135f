"""POST /api/v1/events: valid events land in their Kafka topic; invalid ones get a clear 4xx."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import orjson
import pytest

from tests.integration.conftest import cloudevent, consume, eventually, in_process_api, unique


def ended_call(rep: str, call_id: str, **overrides) -> dict:
    data = {"call_id": call_id, "rep_id": rep, "direction": "inbound", "status": "answered",
            "started_at": "2025-11-03T09:00:00+01:00", "answered_at": "2025-11-03T09:00:04+01:00",
            "ended_at": "2025-11-03T09:03:04+01:00"}
    return cloudevent("call.ended", {**data, **overrides})


async def test_a_batch_is_produced_to_its_topics_keyed_by_entity(api, kafka_bootstrap):
    """Calls by call, orders by customer (so a customer's orders share a partition)."""
    rep, customer = unique("rep"), unique("cust")
    order_id = unique("ord")
    batch = [
        ended_call(rep, unique("c")),
        cloudevent("order.placed", {"order_id": order_id, "customer_id": customer, "rep_id": rep,
                                    "placed_at": "2025-11-03T10:00:00+01:00", "currency": "EUR",
                                    "lines": [{"product": "p", "quantity": 1, "unit_price": 10, "unit_cost": 1}]}),
    ]
    response = await api.post("/api/v1/events", json=batch)
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["accepted"] == 2
    assert [(e["id"], e["topic"]) for e in body["events"]] == [
        (batch[0]["id"], "sales.calls"), (batch[1]["id"], "sales.orders")]
    records = await consume(kafka_bootstrap, "sales.orders", lambda r: r.key == customer.encode())
    assert [(r.partition, r.offset) for r in records] == [(body["events"][1]["partition"], body["events"][1]["offset"])]
    assert orjson.loads(records[0].value) == batch[1]


@pytest.mark.usefixtures("processor")
async def test_an_ingested_event_reaches_the_kpis(api):
    rep = unique("rep")
    assert (await api.post("/api/v1/events", json=ended_call(rep, unique("c")))).status_code == 202

    async def counted():
        values = (await api.get("/api/v1/kpis/calls_inbound", params={"by": "rep", "at": "2025-11-03"})).json()["values"]
        assert {v["key"]: v["value"] for v in values}.get(rep) == 1
    await eventually(counted)


async def test_one_invalid_event_rejects_the_batch_with_every_reason(api, kafka_bootstrap):
    rep = unique("rep")
    good = ended_call(rep, unique("c"))
    batch = [good, ended_call(rep, "c", status="teleported"), {"not": "an event"}, ended_call(rep, "c", ended_at="yesterday")]
    response = await api.post("/api/v1/events", json=batch)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_event"
    assert error["message"] == "3 of 4 events are invalid; none was accepted"
    reasons = {d["index"]: d["reason"] for d in error["details"]}
    assert set(reasons) == {1, 2, 3}
    assert "status must be one of" in reasons[1]
    assert "must contain" in reasons[2]
    assert "ended_at must be an RFC 3339 date-time" in reasons[3]
    nothing = await consume(kafka_bootstrap, "sales.calls", lambda r: r.value and good["id"].encode() in r.value, timeout=3)
    assert nothing == []


@pytest.mark.parametrize("body, status, code", [
    (b"{truncated", 422, "invalid_request"),
    (b"{\"id\": \"\x80\x81\"}", 422, "invalid_request"),  # not UTF-8: FastAPI's own 400, made a 422 like the rest
    (b"42", 422, "invalid_request"),
    (b"[]", 422, "invalid_request"),
])
async def test_malformed_bodies_get_a_json_error(api, body, status, code):
    response = await api.post("/api/v1/events", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


async def test_an_event_the_processor_would_refuse_for_its_size_is_refused_here(api, kafka_bootstrap):
    # 1,000 lines of a 200-character product: valid by the schema, but over the 256 KB a message
    # may be (contracts.events.MAX_EVENT_BYTES); it was answered 202, then dead-lettered.
    order_id = unique("ord")
    big = cloudevent("order.placed", {
        "order_id": order_id, "customer_id": unique("cust"), "rep_id": unique("rep"),
        "placed_at": "2025-11-03T10:00:00+01:00", "currency": "EUR",
        "lines": [{"product": f"{i:04d}" + "p" * 196, "quantity": 1, "unit_price": "10.00", "unit_cost": "1.00"}
                  for i in range(1000)]})
    response = await api.post("/api/v1/events", json=big)
    assert response.status_code == 422
    assert "over the 262144-byte limit" in response.json()["error"]["message"]
    nothing = await consume(kafka_bootstrap, "sales.orders", lambda r: r.value and order_id.encode() in r.value,
                            timeout=3)
    assert nothing == []


async def test_an_amount_in_a_currency_with_no_exchange_rate_is_refused_not_dead_lettered(api, kafka_bootstrap):
    order_id = unique("ord")
    order = cloudevent("order.placed", {
        "order_id": order_id, "customer_id": unique("cust"), "rep_id": unique("rep"),
        "placed_at": "2025-11-03T10:00:00+01:00", "currency": "XXX",
        "lines": [{"product": "p", "quantity": 1, "unit_price": "10.00", "unit_cost": "1.00"}]})
    response = await api.post("/api/v1/events", json=[ended_call(unique("rep"), unique("c")), order])
    assert response.status_code == 422
    assert response.json()["error"]["details"] == [{"index": 1, "id": order["id"], "reason": (
        'event.data.currency: no exchange rate from XXX to EUR; set FX_RATES, e.g. {"XXX": "1.0"}')}]
    nothing = await consume(kafka_bootstrap, "sales.orders", lambda r: r.value and order_id.encode() in r.value,
                            timeout=3)
    assert nothing == []


async def test_an_event_older_than_the_entity_retention_is_refused_with_the_processors_reason(settings):
    # The processor dead-letters such an event (it could not be told from a re-sent one); the
    # API, with the same ENTITY_RETENTION_DAYS, says so at once. (The `api` fixture keeps all.)
    async with in_process_api(settings.model_copy(update={"entity_retention_days": 400})) as api:
        old = ended_call(unique("rep"), unique("c"), started_at="2021-03-01T09:00:00+01:00",
                         answered_at="2021-03-01T09:00:04+01:00", ended_at="2021-03-01T09:03:04+01:00")
        response = await api.post("/api/v1/events", json=old)
        assert response.status_code == 422
        assert response.json()["error"]["message"].startswith(
            "event.data.started_at 2021-03-01T09:00:00+01:00 is older than the 400-day retention")
        recent = datetime.now(timezone.utc) - timedelta(days=3)
        fresh = ended_call(unique("rep"), unique("c"), started_at=recent.isoformat(),
                           answered_at=(recent + timedelta(seconds=4)).isoformat(),
                           ended_at=(recent + timedelta(minutes=3)).isoformat())
        assert (await api.post("/api/v1/events", json=fresh)).status_code == 202


async def test_a_body_too_large_is_refused_before_it_is_read(api):
    event = orjson.dumps(ended_call(unique("rep"), unique("c")))
    huge = b"[" + b",".join([event] * (9 * 1024 * 1024 // len(event))) + b"]"  # over the 8 MiB of /events
    declared = await api.post("/api/v1/events", content=huge, headers={"content-type": "application/json"})

    async def chunks():  # no Content-Length: the body is counted as it comes
        for i in range(0, len(huge), 65536):
            yield huge[i:i + 65536]

    streamed = await api.post("/api/v1/events", content=chunks(), headers={"content-type": "application/json"})
    webhook = await api.post("/api/v1/webhooks/twilio", content=b"x" * (1024 * 1024 + 1))  # no key needed there
    for response in (declared, streamed, webhook):
        assert response.status_code == 413, response.text
        assert response.json()["error"]["code"] == "body_too_large"


async def test_an_oversized_batch_is_refused(api):
    event = ended_call("rep", "c")
    response = await api.post("/api/v1/events", json=[event] * 1001)
    assert response.status_code == 413
    assert response.json()["error"] == {"code": "batch_too_large", "message": "1001 events; at most 1000 per request"}
