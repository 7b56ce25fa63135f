"""Thousands of messy events through the real pipeline match an independent batch computation.

The log spans four months of 2023 (a year no other test uses) with a dozen reps: calls whose
events arrive in any order, redeliveries, deals updated out of order, cancellations before
and after their orders, late events and times a few minutes either side of midnight in Paris.
Every KPI, for `all` and every rep, for every bucket touched, must match exactly.
"""

from __future__ import annotations

import asyncio
import random
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from salespulse.contracts.topics import partitions_of
from tests.integration.conftest import eventually, unique
from tests.integration.recompute import compute

pytestmark = pytest.mark.usefixtures("processor")

PARIS = ZoneInfo("Europe/Paris")
START = datetime(2023, 1, 1, tzinfo=timezone.utc)
SPAN = timedelta(days=120)


def moment(rng: random.Random) -> datetime:
    if rng.random() < 0.15:  # a few minutes either side of midnight in Paris
        day = (START + timedelta(days=rng.randrange(SPAN.days))).astimezone(PARIS).replace(hour=0, minute=0, second=0)
        return (day + timedelta(minutes=rng.randint(-9, 9))).astimezone(timezone.utc)
    return START + timedelta(seconds=rng.randrange(int(SPAN.total_seconds())))


def iso(at: datetime) -> str:
    # Offsets vary like real senders: UTC, Paris local, or New York local.
    zone = random.Random(at.timestamp()).choice([timezone.utc, PARIS, ZoneInfo("America/New_York")])
    return at.astimezone(zone).isoformat()


def generate(rng: random.Random, tag: str) -> list[tuple[str, str, dict]]:
    reps = [f"{tag}-rep-{i}" for i in range(12)]
    log: list[tuple[str, str, dict]] = []

    def event(topic, key, event_type, data):
        log.append((topic, key, {"specversion": "1.0", "id": unique("evt"), "source": "recompute",
                                 "type": event_type, "data": data}))

    for n in range(700):
        call_id, rep, started = f"{tag}-call-{n}", rng.choice(reps), moment(rng)
        base = {"call_id": call_id, "rep_id": rep, "direction": rng.choice(["inbound", "outbound"]),
                "started_at": iso(started)}
        event("sales.calls", call_id, "call.started", dict(base))
        answered = rng.random() < 0.7
        answered_at = started + timedelta(seconds=rng.randint(1, 30))
        if answered:
            event("sales.calls", call_id, "call.answered", {**base, "answered_at": iso(answered_at)})
        if rng.random() < 0.9:  # some calls are still going on
            ended = {**base, "status": "answered" if answered else rng.choice(["missed", "busy", "voicemail", "failed"]),
                     "ended_at": iso((answered_at if answered else started) + timedelta(seconds=rng.randint(1, 900) + rng.choice([0, 0.5])))}
            if answered:
                ended["answered_at"] = iso(answered_at)
            event("sales.calls", call_id, "call.ended", ended)

    stages = ["lead", "qualified", "proposal", "negotiation"]
    for n in range(150):
        deal_id, created = f"{tag}-deal-{n}", moment(rng)
        amount = f"{rng.randint(100, 500_000)}.{rng.randint(0, 99):02d}"
        at, history = created, []
        for step in range(rng.randint(1, 5)):
            at += timedelta(hours=rng.randint(1, 400))
            stage = rng.choice(stages + ["won", "lost"]) if step else "lead"
            data = {"deal_id": deal_id, "rep_id": rng.choice(reps), "stage": stage, "amount": amount,
                    "currency": "EUR", "created_at": iso(created), "updated_at": iso(at)}
            if rng.random() < 0.3:
                data["probability"] = round(rng.random(), 4)
            if stage in ("won", "lost") and rng.random() < 0.8:
                data["closed_at"] = iso(at)
            history.append(data)
        if len(history) > 2 and rng.random() < 0.4:  # an older update arrives after a newer one
            history[-1], history[-2] = history[-2], history[-1]
        for data in history:
            event("sales.deals", deal_id, "deal.changed", data)

    for n in range(800):
        order_id, placed = f"{tag}-order-{n}", moment(rng)
        lines = [{"product": f"p{rng.randint(1, 8)}", "quantity": rng.choice([1, 2, 3, 10, 2.5]),
                  "unit_price": rng.choice([f"{rng.randint(1, 2000)}.{rng.randint(0, 99):02d}", round(rng.uniform(1, 500), 2), "0.005"]),
                  "unit_cost": f"{rng.randint(0, 900)}.{rng.randint(0, 99):02d}"} for _ in range(rng.randint(1, 4))]
        placed_event = ("sales.orders", order_id, "order.placed", {
            "order_id": order_id, "customer_id": f"cust-{rng.randint(1, 80)}", "rep_id": rng.choice(reps),
            "placed_at": iso(placed), "currency": "EUR", "lines": lines})
        cancel = None
        if rng.random() < 0.1:
            cancel = ("sales.orders", order_id, "order.cancelled",
                      {"order_id": order_id, "cancelled_at": iso(placed + timedelta(days=rng.randint(0, 45)))})
        if cancel and rng.random() < 0.3:  # the cancellation overtakes its order
            event(*cancel)
            event(*placed_event)
        else:
            event(*placed_event)
            if cancel:
                event(*cancel)

    # Arrival order: each entity's events stay in generation order within their key (as Kafka keeps
    # them), entities interleave at random, and about 10 % of events are delivered twice.
    rng.shuffle(log)
    by_key: dict[str, list] = {}
    for item in log:
        by_key.setdefault(item[1], []).append(item)
    arrival = []
    queues = [list(v) for v in by_key.values()]
    while queues:
        q = rng.choice(queues)
        arrival.append(q.pop(0))
        if not q:
            queues.remove(q)
    return arrival + [rng.choice(arrival) for _ in range(len(arrival) // 10)]


async def drained(settings) -> None:
    """The processor's committed offsets reached the end of every source topic."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(settings.processor_app_id)
    finally:
        await admin.close()
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for topic in ("sales.calls", "sales.deals", "sales.orders")
               for p in await partitions_of(settings.kafka_bootstrap_servers, topic)]
        ends = await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
    behind = {tp: ends[tp] - (committed[tp].offset if tp in committed else 0) for tp in tps}
    assert all(lag == 0 for lag in behind.values()), {str(tp): lag for tp, lag in behind.items() if lag}


async def test_the_live_kpis_match_an_independent_recomputation(api, producer, settings):
    rng = random.Random(20230101)
    tag = unique("rc")
    log = generate(rng, tag)
    assert len(log) > 3000
    for topic, key, event in log:
        await producer.send(topic, orjson.dumps(event), key=key.encode())
    await producer.flush()
    await eventually(lambda: drained(settings), timeout=180, interval=1)

    expected = compute([event for _, _, event in log], PARIS)
    requests: dict[tuple, dict[str, Decimal | None]] = {}
    for (kpi, by, key, period, start), value in expected.items():
        if by == "all" or key.startswith(tag):
            requests.setdefault((kpi, by, period, start), {})[key] = value
    differences, compared = [], 0
    for (kpi, by, period, start), wanted in sorted(requests.items()):
        params = {"by": by, "period": "day" if period == "now" else period}
        if start:
            params["at"] = start
        body = (await api.get(f"/api/v1/kpis/{kpi}", params=params)).json()
        served = {v["key"]: v["value"] for v in body["values"]}
        for key, want in wanted.items():
            compared += 1
            if not same(served.get(key), want):
                differences.append((kpi, by, key, period, start, served.get(key), want))
    assert compared > 10_000
    assert differences == [], f"{len(differences)} of {compared} values differ, e.g. {differences[:5]}"


def same(got: float | None, want: Decimal | None) -> bool:
    if want is None or got is None:
        return got == want or (got == 0 and want == 0)
    if len(want.normalize().as_tuple().digits) <= 15:  # money and counts: exactly the same decimal
        return Decimal(str(got)) == want
    return got == float(want)  # a ratio: as close as JSON's double carries it
