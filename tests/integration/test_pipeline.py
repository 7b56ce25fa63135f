"""Events produced to Kafka with a plain producer come out of the API as the right numbers."""

from __future__ import annotations

import asyncio
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import orjson
import pytest

from aiokafka import AIOKafkaProducer

from tests.integration.conftest import (
    cloudevent,
    consume,
    eventually,
    in_process_api,
    send,
    start_processor,
    stop_processor,
    unique,
)

pytestmark = pytest.mark.usefixtures("processor")


async def read(api, kpi: str, *, by: str = "rep", period: str = "day", at: str) -> dict:
    response = await api.get(f"/api/v1/kpis/{kpi}", params={"by": by, "period": period, "at": at})
    assert response.status_code == 200, response.text
    return response.json()


async def expect(api, key: str, at: str, expected: dict, *, by: str = "rep", period: str = "day",
                 timeout: float = 30.0) -> None:
    """Wait until every KPI in `expected` shows that value for `key` (None: no value, Decimal: exact)."""
    async def check():
        for kpi, want in expected.items():
            values = {v["key"]: v["value"] for v in (await read(api, kpi, by=by, period=period, at=at))["values"]}
            got = values.get(key)
            if want is None or got is None:
                assert got == want, f"{kpi}: {got} != {want}"
            elif len(Decimal(str(want)).as_tuple().digits) > 15:  # a ratio such as 1/3: as JSON can carry it
                assert got == float(want), f"{kpi}[{key}] {period} {at}: {got} != {want}"
            else:  # money and counts: the exact decimal text
                assert Decimal(str(got)) == Decimal(str(want)), f"{kpi}[{key}] {period} {at}: {got} != {want}"
    await eventually(check, timeout=timeout)


def call(event_type: str, call_id: str, rep: str, direction: str, started: str, **extra) -> dict:
    return cloudevent(event_type, {"call_id": call_id, "rep_id": rep, "direction": direction,
                                   "started_at": started, **extra})


async def test_calls_become_telephony_kpis_and_a_redelivered_event_counts_once(api, producer):
    rep = unique("rep")
    day = "2025-06-10"
    t = f"{day}T10:00:00+02:00"
    events = [
        call("call.started", "c1", rep, "outbound", t),
        call("call.ended", "c1", rep, "outbound", t, status="answered",
             answered_at=f"{day}T10:00:10+02:00", ended_at=f"{day}T10:02:10+02:00"),
        call("call.ended", "c2", rep, "outbound", t, status="busy", ended_at=f"{day}T10:00:30+02:00"),
        call("call.started", "c3", rep, "inbound", t),
        call("call.answered", "c3", rep, "inbound", t, answered_at=f"{day}T10:00:05+02:00"),
        call("call.ended", "c3", rep, "inbound", t, status="answered",
             answered_at=f"{day}T10:00:05+02:00", ended_at=f"{day}T10:01:05.500+02:00"),
        call("call.ended", "c4", rep, "inbound", t, status="missed", ended_at=f"{day}T10:00:40+02:00"),
        call("call.ended", "c5", rep, "inbound", t, status="voicemail", ended_at=f"{day}T10:00:40+02:00"),
    ]
    for event in events:
        await send(producer, "sales.calls", f"{rep}-{event['data']['call_id']}", event)
    await send(producer, "sales.calls", f"{rep}-c3", events[5])  # the same event again
    await expect(api, rep, day, {
        "calls_outbound": 2, "calls_inbound": 1, "calls_missed": 2,
        "answer_rate": Decimal(1) / Decimal(3), "talk_time": Decimal("180.5"),
        "average_talk_time": Decimal("90.25"),
    })


def order(order_id: str, rep: str, placed_at: str, lines: list[tuple[str, int, str, str]]) -> dict:
    return cloudevent("order.placed", {
        "order_id": order_id, "customer_id": "cust-1", "rep_id": rep, "placed_at": placed_at, "currency": "EUR",
        "lines": [{"product": p, "quantity": q, "unit_price": price, "unit_cost": cost} for p, q, price, cost in lines]})


async def test_orders_give_exact_revenue_and_margin_and_a_cancellation_subtracts_when_it_happens(api, producer):
    rep = unique("rep")
    o1, o2 = unique("ord"), unique("ord")
    await send(producer, "sales.orders", "cust-1", order(o1, rep, "2025-03-05T11:00:00+01:00",
                                                   [("crm-seat", 3, "19.99", "7.50"), ("headset", 1, 0.1, 0.05)]))
    await send(producer, "sales.orders", "cust-1", order(o2, rep, "2025-03-20T16:00:00+01:00",
                                                   [("onboarding-day", 2, "950.00", "520.00")]))
    await expect(api, rep, "2025-03-01", {
        "revenue": Decimal("1960.07"), "orders": 2, "average_order_value": Decimal("980.035"),
        "gross_margin": Decimal("1960.07") - Decimal("1062.55"),
    }, period="month")
    cancel = cloudevent("order.cancelled", {"order_id": o1, "customer_id": "cust-1",
                                            "cancelled_at": "2025-04-02T09:00:00+02:00"})
    await send(producer, "sales.orders", "cust-1", cancel)
    await expect(api, rep, "2025-04-01", {"revenue": Decimal("-60.07"), "orders": -1}, period="month")
    await expect(api, rep, "2025-03-01", {"revenue": Decimal("1960.07"), "orders": 2}, period="month")
    await expect(api, rep, "2025-01-01", {"revenue": Decimal("1900.00"), "orders": 1,
                                          "margin_rate": Decimal("0.4526315789473684210526315789")},
                 period="year")


async def test_a_late_event_lands_in_the_month_it_belongs_to(api, producer):
    rep = unique("rep")
    current, late = unique("ord"), unique("ord")
    await send(producer, "sales.orders", "cust-1", order(current, rep, "2025-05-02T10:00:00+02:00",
                                                        [("crm-seat", 1, "100", "10")]))
    await expect(api, rep, "2025-05-01", {"revenue": 100}, period="month")
    await send(producer, "sales.orders", "cust-1", order(late, rep, "2025-04-30T15:00:00+02:00",
                                                     [("crm-seat", 1, "40", "10")]))
    await expect(api, rep, "2025-04-01", {"revenue": 40}, period="month")
    await expect(api, rep, "2025-05-01", {"revenue": 100}, period="month")
    await expect(api, rep, "2025-04-28", {"revenue": 140}, period="week")


def deal(deal_id: str, rep: str, stage: str, updated_at: str, amount: str = "5000", **extra) -> dict:
    return cloudevent("deal.changed", {
        "deal_id": deal_id, "rep_id": rep, "stage": stage, "amount": amount, "currency": "EUR",
        "created_at": "2025-02-01T09:00:00+01:00", "updated_at": updated_at, **extra})


async def test_an_out_of_order_deal_update_is_ignored(api, producer):
    rep, d1, d2 = unique("rep"), unique("deal"), unique("deal")
    await send(producer, "sales.deals", d2, deal(d2, rep, "negotiation", "2025-02-03T10:00:00+01:00", "2000"))
    await send(producer, "sales.deals", d1, deal(d1, rep, "won", "2025-02-10T10:00:00+01:00",
                                                 closed_at="2025-02-10T10:00:00+01:00"))
    await send(producer, "sales.deals", d1, deal(d1, rep, "proposal", "2025-02-05T10:00:00+01:00"))  # older
    await expect(api, rep, "2025-02-10", {"deals_won": 1, "win_rate": 1, "average_won_deal_size": 5000},
                 period="month")
    await expect(api, rep, "2025-02-10", {"open_deals": 1, "pipeline_value": 2000, "weighted_pipeline": 1500})
    await send(producer, "sales.deals", d2, deal(d2, rep, "lost", "2025-02-12T10:00:00+01:00", "2000",
                                                 loss_reason="price", closed_at="2025-02-12T10:00:00+01:00"))
    await expect(api, rep, "2025-02-10", {"deals_won": 1, "deals_lost": 1, "win_rate": Decimal("0.5")},
                 period="month")
    await expect(api, rep, "2025-02-10", {"open_deals": 0, "pipeline_value": 0})


async def test_an_event_near_midnight_is_bucketed_in_the_business_time_zone(api, producer):
    rep = unique("rep")
    # 23:30 UTC on 31 October is 00:30 on 1 November in Paris.
    event = call("call.started", unique("c"), rep, "outbound", "2026-10-31T23:30:00Z")
    await send(producer, "sales.calls", event["data"]["call_id"], event)
    await expect(api, rep, "2026-11-01", {"calls_outbound": 1})
    await expect(api, rep, "2026-11-01", {"calls_outbound": 1}, period="month")
    await expect(api, rep, "2026-10-31", {"calls_outbound": None})
    await expect(api, rep, "2026-10-01", {"calls_outbound": None}, period="month")


async def test_the_company_total_sums_every_rep(api, producer):
    year_day = "2019-07-15"  # a day no other test uses: `all` is shared by every test
    reps = sorted(unique("rep") for _ in range(3))
    for quantity, rep in zip([1, 2, 2], reps):
        o = unique("ord")
        await send(producer, "sales.orders", "cust-1", order(o, rep, f"{year_day}T12:00:00+02:00",
                                                      [("crm-seat", quantity, "10.10", "1")]))
    await expect(api, "all", year_day, {"revenue": Decimal("50.50"), "orders": 3}, by="all")
    await expect(api, reps[1], year_day, {"revenue": Decimal("20.20")})
    board = await api.get("/api/v1/leaderboards/revenue", params={"period": "day", "at": year_day})
    # Ties share a rank; the next one skips: 1, 1, 3.
    assert [(e["rank"], e["key"]) for e in board.json()["entries"]] == [(1, reps[1]), (1, reps[2]), (3, reps[0])]


async def test_invalid_events_go_to_the_deadletter_topic_with_their_reason(api, producer, kafka_bootstrap):
    rep, tag = unique("rep"), unique("bad")
    bad = {
        f"{tag}-json": (b"{not json", "not valid JSON"),
        f"{tag}-schema": (orjson.dumps(call("call.ended", "c", rep, "outbound", "2025-01-01T10:00:00Z")),
                          "event.data must contain"),
        f"{tag}-topic": (orjson.dumps(order("o", rep, "2025-01-01T10:00:00Z", [("p", 1, "1", "1")])),
                         "order.placed belongs on sales.orders, not sales.calls"),
    }
    for key, (value, _) in bad.items():
        await send(producer, "sales.calls", key, value)
    gbp = order(unique("ord"), rep, "2025-01-01T10:00:00Z", [("p", 1, "1", "1")])
    gbp["data"]["currency"] = "GBP"
    await send(producer, "sales.orders", f"{tag}-fx", gbp)
    bad[f"{tag}-fx"] = (orjson.dumps(gbp), "no exchange rate from GBP to EUR")

    records = await consume(kafka_bootstrap, "sales.deadletter", lambda r: r.key and r.key.decode().startswith(tag),
                            count=len(bad))
    by_key = {r.key.decode(): r for r in records}
    assert set(by_key) == set(bad)
    for key, (value, reason) in bad.items():
        headers = dict(by_key[key].headers)
        assert by_key[key].value == value
        assert reason in headers["salespulse.reason"].decode()
        assert headers["salespulse.source.topic"] in (b"sales.calls", b"sales.orders")
        assert int(headers["salespulse.source.offset"]) >= 0


async def test_targets_give_attainment_pace_and_level_and_survive_losing_redis(api, producer, settings):
    rep = unique("rep")
    o = unique("ord")
    await send(producer, "sales.orders", "cust-1", order(o, rep, "2025-09-10T10:00:00+02:00", [("p", 1, "6000", "1")]))
    await expect(api, rep, "2025-09-01", {"revenue": 6000}, period="month")
    response = await api.put(f"/api/v1/targets/revenue/rep/{rep}/2025-09", json={"target": 8000})
    assert response.status_code == 200, response.text
    reading = await read(api, "revenue_attainment", period="month", at="2025-09-01")
    value = next(v for v in reading["values"] if v["key"] == rep)
    # September 2025 is over: pace is the whole target, and 75 % of it is below 80 %: alert.
    assert value.pop("as_of")  # when its order was counted
    assert value == {"key": rep, "value": 0.75, "target": 1.0, "attainment": 0.75, "pace": 1.0, "level": "alert"}
    revenue = next(v for v in (await read(api, "revenue", period="month", at="2025-09-01"))["values"] if v["key"] == rep)
    assert (revenue["target"], revenue["attainment"], revenue["level"]) == (8000.0, 0.75, "alert")

    # Redis loses the targets; a fresh API replays them from the compacted kpi.targets topic.
    import redis.asyncio as aioredis

    from salespulse.api.app import create_app
    client = aioredis.from_url(settings.redis_url)
    await client.delete("sp:targets")
    await client.aclose()
    assert (await api.get("/api/v1/targets")).json() == []
    import httpx

    fresh = create_app(settings)
    async with fresh.router.lifespan_context(fresh):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=fresh), base_url="http://api") as client:
            async def targets_back():
                listed = [t for t in (await client.get("/api/v1/targets")).json() if t["key"] == rep]
                assert [(t["kpi"], t["by"], t["period"], t["target"]) for t in listed] == [
                    ("revenue", "rep", "2025-09", 8000.0)]
            await eventually(targets_back)


async def test_kpi_updates_carry_the_current_buckets_not_closed_ones(api, producer, kafka_bootstrap):
    rep, late, fresh = unique("rep"), unique("ord"), unique("ord")
    now = datetime.now(ZoneInfo("Europe/Paris"))
    await send(producer, "sales.orders", "cust-1", order(late, rep, "2025-08-08T10:00:00+02:00", [("p", 1, "7", "2")]))
    await send(producer, "sales.orders", "cust-1", order(fresh, rep, now.isoformat(), [("p", 2, "12.5", "2")]))
    month = f"revenue/rep/{rep}/month/{now.date().replace(day=1).isoformat()}"
    records = await consume(kafka_bootstrap, "kpi.updates", lambda r: r.key.startswith(f"revenue/rep/{rep}/".encode()))
    docs = {r.key.decode(): orjson.loads(r.value) for r in records}
    assert docs[month]["kpi"] == "revenue" and docs[month]["value"] == 25.0
    # The August 2025 rows changed too (the API reads them), one partition and batch earlier,
    # but a closed bucket is not pushed.
    assert not [key for key in docs if "2025-08" in key]
    month_2025 = await api.get("/api/v1/kpis/revenue", params={"by": "rep", "period": "month", "at": "2025-08-08"})
    assert {v["key"]: v["value"] for v in month_2025.json()["values"]}[rep] == 7.0


async def test_kpi_updates_push_a_busy_row_once_per_interval_and_leave_customer_rows_to_readings(own):
    """Orders 150 ms apart come in batches of their own; with KPI_UPDATES_SECONDS=2 kpi.updates
    carries the rep's row once or twice, ending on its latest value. Per-customer rows are
    read, not pushed. On servers of its own: its processor pushes at its own pace."""
    bootstrap = own.settings.kafka_bootstrap_servers
    processor = start_processor(own.settings, KPI_UPDATES_SECONDS="2")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    rep, customer = unique("rep"), unique("cust")
    now = datetime.now(ZoneInfo("Europe/Paris"))
    try:
        for _ in range(10):
            event = order(unique("ord"), rep, now.isoformat(), [("p", 1, "10", "4")])
            event["data"]["customer_id"] = customer
            await send(producer, "sales.orders", customer, event)
            await asyncio.sleep(0.15)
        day = f"orders/rep/{rep}/day/{now.date().isoformat()}"
        records: list = []

        async def pushed_all() -> None:
            records[:] = await consume(bootstrap, "kpi.updates", lambda r: r.key.decode() == day)
            assert orjson.loads(records[-1].value)["value"] == 10.0

        await eventually(pushed_all)
        assert len(records) <= 3, [orjson.loads(r.value)["value"] for r in records]  # one per batch: 10
        assert await consume(bootstrap, "kpi.updates", lambda r: f"/customer/{customer}/".encode() in r.key,
                             timeout=3) == []
        async with in_process_api(own.settings) as api:
            reading = await api.get("/api/v1/kpis/orders", params={"by": "customer", "period": "day"})
            assert {v["key"]: v["value"] for v in reading.json()["values"]}[customer] == 10.0
    finally:
        await producer.stop()
        stop_processor(processor)


async def test_the_processor_counts_outcomes_on_its_metrics_endpoint(api, producer, settings):
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    def families() -> list:
        return list(text_string_to_metric_families(
            httpx.get(f"http://127.0.0.1:{settings.processor_metrics_port}/metrics").text))

    def samples() -> dict:
        return {(s.labels.get("topic"), s.labels.get("outcome")): s.value
                for family in families() for s in family.samples if s.name == "salespulse_processor_events_total"}

    def batch_figures() -> dict:
        """Batches timed per phase, the measure rows they wrote, and changelog records."""
        return {s.labels.get("phase", s.name): s.value for family in families() for s in family.samples
                if s.name in ("salespulse_processor_batch_phase_seconds_count", "salespulse_processor_batch_rows_sum",
                              "salespulse_processor_changelog_records_total")}

    before, figures_before = samples(), batch_figures()
    rep = unique("rep")
    event = call("call.started", unique("c"), rep, "outbound", "2025-06-11T10:00:00+02:00")
    await send(producer, "sales.calls", event["data"]["call_id"], event)
    await send(producer, "sales.calls", event["data"]["call_id"], event)
    await send(producer, "sales.orders", unique("bad"), b"[]")

    async def counted():
        after = samples()
        for label, delta in {("sales.calls", "applied"): 1, ("sales.calls", "duplicate"): 1,
                             ("sales.orders", "deadlettered"): 1}.items():
            assert after[label] - before.get(label, 0) == delta, label
    await eventually(counted)
    figures = batch_figures()
    for phase in ("fetch", "fresh", "decode", "directory", "aggregate", "changelog", "redis", "durable"):
        assert figures[phase] > figures_before[phase], phase  # every batch times each phase
    assert figures["salespulse_processor_batch_rows_sum"] > figures_before["salespulse_processor_batch_rows_sum"]

    async def flushed():  # within PROCESSOR_FLUSH_SECONDS: the rows written, the offsets committed
        figures = batch_figures()
        assert figures["commit"] > figures_before["commit"]
        assert (figures["salespulse_processor_changelog_records_total"]
                > figures_before["salespulse_processor_changelog_records_total"])
    await eventually(flushed, timeout=10)


async def test_a_copy_of_the_targets_read_before_a_put_does_not_undo_it(api, settings):
    """An API copies kpi.targets to Redis (at start, or after Redis restarted empty) while a PUT
    of the same target lands between its read of the topic and its write: the copy, older,
    must not win. It did: the target stayed at its old value in every reading until the next
    copy."""
    from salespulse.api.kafka import replay_targets
    from salespulse.readmodel import ReadModel

    rep = unique("rep")
    path = f"/api/v1/targets/revenue/rep/{rep}/month"
    assert (await api.put(path, json={"target": 100})).status_code == 200
    readmodel = ReadModel.from_url(settings.redis_url)
    replace = readmodel.replace_copies

    async def put_meanwhile(copies, docs, read_up_to):
        assert (await api.put(path, json={"target": 200})).status_code == 200
        return await replace(copies, docs, read_up_to)

    readmodel.replace_copies = put_meanwhile
    try:
        await replay_targets(settings.kafka_bootstrap_servers, readmodel)
    finally:
        await readmodel.close()
    listed = [t["target"] for t in (await api.get("/api/v1/targets")).json() if t["key"] == rep]
    assert listed == [200.0]
