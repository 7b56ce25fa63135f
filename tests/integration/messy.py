"""A messy event log for a dozen reps over four months of 2023, and its comparison with an
independent batch computation (recompute.py) through the API.

The log has calls whose events arrive in any order, redeliveries, deals updated out of order,
cancellations before and after their orders, late events and times a few minutes either side
of midnight in Paris. The directory puts reps in teams and regions (two move team mid-week),
products in categories and customers in sectors, leaving some unassigned. Activities with
edited reports, survey answers, invoices paid in part or before they are issued, churns and
acquisition spend come too. Each rep has a monthly revenue target.
"""

from __future__ import annotations

import asyncio
import random
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

from tests.integration.conftest import unique
from tests.integration.recompute import FAMILY, WINDOWED, compute

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


def reference(tag: str) -> dict:
    """The directory the test sets through the API: 11 of 12 reps in three teams and two
    regions, two of them moving team mid-week; 7 of 8 products with a category; 60 of 80
    customers with a sector. The rest are unassigned."""
    team = lambda i: f"{tag}-team-{i % 3}"  # noqa: E731
    region = lambda i: f"{tag}-region-{i % 2}"  # noqa: E731
    reps = {f"{tag}-rep-{i}": [(None, team(i), region(i))] for i in range(11)}
    reps[f"{tag}-rep-1"].append((datetime(2023, 2, 15, 14, 30, tzinfo=PARIS), team(2), region(0)))
    reps[f"{tag}-rep-4"].append((datetime(2023, 3, 8, 0, 0, tzinfo=PARIS), team(0), region(1)))
    return {"reps": reps,
            "products": {f"{tag}-p{i}": f"{tag}-cat-{i % 3}" for i in range(1, 8)},
            "customers": {f"{tag}-cust-{i}": f"{tag}-sector-{i % 4}" for i in range(1, 61)}}


def generate(rng: random.Random, tag: str) -> list[tuple[str, str, dict]]:
    reps = [f"{tag}-rep-{i}" for i in range(12)]
    products = [f"{tag}-p{i}" for i in range(1, 9)]
    customers = [f"{tag}-cust-{i}" for i in range(1, 81)]
    sources = [f"{tag}-{s}" for s in ("web", "fair", "referral")]
    channels = [f"{tag}-{c}" for c in ("web", "shop", "phone")]
    reasons = [f"{tag}-{r}" for r in ("price", "competitor", "timing")]
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
            for name, values in (("product", products), ("customer_id", customers), ("source", sources)):
                if rng.random() < 0.8:  # else the deal does not say: `unknown`
                    data[name] = rng.choice(values)
            if rng.random() < 0.3:
                data["probability"] = round(rng.random(), 4)
            if rng.random() < 0.7:
                data["lead_score"] = rng.choice([12, 55, 69.5, 70, 88])
            if stage == "lost" and rng.random() < 0.8:
                data["loss_reason"] = rng.choice(reasons)
            if stage in ("won", "lost") and rng.random() < 0.8:
                data["closed_at"] = iso(at)
            history.append(data)
        if len(history) > 2 and rng.random() < 0.4:  # an older update arrives after a newer one
            history[-1], history[-2] = history[-2], history[-1]
        for data in history:
            event("sales.deals", deal_id, "deal.changed", data)

    for n in range(800):
        order_id, placed = f"{tag}-order-{n}", moment(rng)
        lines = [{"product": rng.choice(products), "quantity": rng.choice([1, 2, 3, 10, 2.5]),
                  "unit_price": rng.choice([f"{rng.randint(1, 2000)}.{rng.randint(0, 99):02d}", round(rng.uniform(1, 500), 2), "0.005"]),
                  "unit_cost": f"{rng.randint(0, 900)}.{rng.randint(0, 99):02d}"} for _ in range(rng.randint(1, 4))]
        customer = rng.choice(customers)
        placed_event = ("sales.orders", customer, "order.placed", {
            "order_id": order_id, "customer_id": customer, "rep_id": rng.choice(reps),
            "placed_at": iso(placed), "currency": "EUR", "lines": lines})
        if rng.random() < 0.7:
            placed_event[3]["channel"] = rng.choice(channels)
        cancel = None
        if rng.random() < 0.1:
            cancel = ("sales.orders", customer, "order.cancelled",
                      {"order_id": order_id, "customer_id": customer,
                       "cancelled_at": iso(placed + timedelta(days=rng.randint(0, 45)))})
        if cancel and rng.random() < 0.3:  # the cancellation overtakes its order
            event(*cancel)
            event(*placed_event)
        else:
            event(*placed_event)
            if cancel:
                event(*cancel)

    for n in range(400):  # activities, some edited later (a newer version of the report)
        activity_id, occurred = f"{tag}-act-{n}", moment(rng)
        data = {"activity_id": activity_id, "rep_id": rng.choice(reps), "kind": rng.choice(["meeting", "visit", "email"]),
                "party": rng.choice(["prospect", "customer"]), "occurred_at": iso(occurred), "updated_at": iso(occurred)}
        if rng.random() < 0.7:
            data["customer_id"] = rng.choice(customers)
        if rng.random() < 0.3:
            data["participants"] = [rng.choice(reps)]
        for name, value in (("notes", "n"), ("next_step", "s"), ("result", rng.choice(["none", "deal", "order"]))):
            if rng.random() < 0.6:
                data[name] = value
        event("sales.activities", activity_id, "activity.logged", data)
        if rng.random() < 0.3:
            edited = {**data, "updated_at": iso(occurred + timedelta(hours=2)), "notes": "n", "next_step": "s",
                      "result": rng.choice(["follow_up", "order"])}
            event("sales.activities", activity_id, "activity.logged", edited)

    for n in range(300):  # survey answers, about a rep or not
        customer, kind = rng.choice(customers), rng.choice(["csat", "nps", "review"])
        data = {"survey_id": f"{tag}-srv-{n}", "customer_id": customer, "kind": kind,
                "score": rng.randint(0, 10) if kind == "nps" else rng.randint(1, 5), "answered_at": iso(moment(rng))}
        if rng.random() < 0.6:
            data["rep_id"] = rng.choice(reps)
        event("sales.customers", customer, "survey.answered", data)

    for n in range(150):  # invoices, paid in full, in part, not at all; a payment may come first
        customer, invoice_id, issued = rng.choice(customers), f"{tag}-inv-{n}", moment(rng)
        amount = rng.randint(100, 90_000)
        invoice = ("sales.customers", customer, "invoice.issued", {
            "invoice_id": invoice_id, "customer_id": customer, "amount": f"{amount}.{rng.randint(0, 99):02d}",
            "currency": "EUR", "issued_at": iso(issued), "due_at": iso(issued + timedelta(days=rng.choice([0, 30, 45])))})
        payments = [("sales.customers", customer, "payment.received", {
            "payment_id": f"{invoice_id}-pay-{k}", "invoice_id": invoice_id, "customer_id": customer,
            "amount": str(rng.randint(1, amount // 2)), "currency": "EUR",
            "received_at": iso(issued + timedelta(days=rng.randint(0, 40)))}) for k in range(rng.choice([0, 1, 2]))]
        if payments and rng.random() < 0.2:
            event(*payments[0])
            event(*invoice)
            for p in payments[1:]:
                event(*p)
        else:
            for e in [invoice] + payments:
                event(*e)

    for n, customer in enumerate(rng.sample(customers, 15)):  # churned customers, some of which order again
        for _ in range(1 + (n < 5)):  # and churn again: every churn counts
            event("sales.customers", customer, "customer.churned",
                  {"customer_id": customer, "churned_at": iso(moment(rng))})

    for n in range(60):
        campaign = f"{tag}-campaign-{n % 7}"
        event("sales.spend", campaign, "spend.recorded", {
            "spend_id": f"{tag}-spd-{n}", "campaign": campaign, "amount": f"{rng.randint(10, 5000)}.{rng.randint(0, 99):02d}",
            "currency": "EUR", "spent_at": iso(moment(rng)), "source": rng.choice(sources)})

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


async def put_directory(api, directory: dict) -> None:
    for rep, assignments in directory["reps"].items():
        for since, team, region in assignments:
            body = {"team": team, "region": region, "since": since.isoformat() if since else None}
            assert (await api.put(f"/api/v1/directory/reps/{rep}", json=body)).status_code == 200
    for product, category in directory["products"].items():
        assert (await api.put(f"/api/v1/directory/products/{product}", json={"category": category})).status_code == 200
    for customer, sector in directory["customers"].items():
        assert (await api.put(f"/api/v1/directory/customers/{customer}", json={"sector": sector})).status_code == 200


def compared_buckets(by: str, period: str, start: str, sampled_days: set[str]) -> bool:
    """Which (dimension, bucket) pairs the test reads back: every bucket of the company total,
    weeks and longer (plus 30 sampled days) per rep, weeks and longer per team and region,
    months and longer for the other dimensions. Reading all of them would take minutes."""
    if by == "all" or period == "now":
        return True
    if by == "rep":
        return period != "day" or start in sampled_days
    if by in ("team", "region"):
        return period != "day"
    return period in ("month", "quarter", "year")



async def put_targets(api, rng: random.Random, tag: str) -> dict[str, Decimal]:
    """A monthly revenue target for each of the dozen reps, set through the API."""
    targets = {f"{tag}-rep-{i}": Decimal(rng.randint(5, 80) * 10_000) for i in range(12)}
    for rep, target in targets.items():
        response = await api.put(f"/api/v1/targets/revenue/rep/{rep}/month", json={"target": int(target)})
        assert response.status_code == 200, response.text
    return targets


async def compare(api, log: list[tuple[str, str, dict]], directory: dict, targets: dict[str, Decimal], tag: str,
                  rng: random.Random) -> tuple[int, list[tuple]]:
    """Read back what the API serves for every KPI the recomputation knows, by every dimension,
    in the buckets `compared_buckets` picks: (values compared, the differences)."""
    expected = compute([event for _, _, event in log], PARIS, directory, targets)
    days = sorted({start for (_, _, _, period, start) in expected if period == "day"})
    sampled_days = set(rng.sample(days, 30))
    requests: dict[tuple, dict[str, Decimal | None]] = {}
    for (kpi, by, key, period, start), value in expected.items():
        if not key.startswith(tag) and (kpi in WINDOWED or not start.startswith("2023")):
            # Keys shared with other tests (`all`, `unknown`, `unassigned`): only in 2023, which is
            # this log's alone (customers lapse into 2024), and never through date windows,
            # which reach back to other tests' years.
            continue
        if compared_buckets(by, period, start, sampled_days):
            requests.setdefault((kpi, by, period, start), {})[key] = value
    assert {by for (_, by, _, _) in requests} == {"all", "rep", "team", "region", "product", "category",
                                                  "customer", "sector", "source", "channel", "reason"}
    assert {kpi for (kpi, _, _, _) in requests} == set(FAMILY), "every KPI the recomputation knows is compared"
    differences, compared = [], 0
    gate = asyncio.Semaphore(16)  # concurrent reads: some 15,000 requests

    async def check(kpi, by, period, start, wanted) -> None:
        nonlocal compared
        params = {"by": by, "period": "day" if period == "now" else period}
        if start:
            params["at"] = start
        async with gate:
            body = (await api.get(f"/api/v1/kpis/{kpi}", params=params)).json()
        served = {v["key"]: v["value"] for v in body["values"]}
        for key, want in wanted.items():
            compared += 1
            if not same(served.get(key), want):
                differences.append((kpi, by, key, period, start, served.get(key), want))
    await asyncio.gather(*(check(*request, wanted) for request, wanted in sorted(requests.items())))
    return compared, differences


def same(got: float | None, want: Decimal | None) -> bool:
    if want is None or got is None:
        return got == want or (got == 0 and want == 0)
    if len(want.normalize().as_tuple().digits) <= 15:  # money and counts: exactly the same decimal
        return Decimal(str(got)) == want
    return got == float(want)  # a ratio: as close as JSON's double carries it
