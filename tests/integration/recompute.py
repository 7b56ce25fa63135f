"""An independent batch computation of the KPIs, for checking the live pipeline.

Written from the KPI definitions in the README, not from the processor: it imports nothing
from salespulse. It reads the whole event log at once and derives each entity's final state
directly (the newest deal update, the call's known facts, an order and its cancellation).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

PERIODS = ("day", "week", "month", "quarter", "year")
PEOPLE = ("all", "rep", "team", "region")
DIMENSIONS = {"calls": PEOPLE, "deals": PEOPLE + ("product", "customer", "sector", "source"),
              "orders": PEOPLE + ("product", "category", "customer", "sector", "channel")}
FAMILY = {kpi: family for family, kpis in {
    "calls": ("calls_outbound", "calls_inbound", "calls_missed", "answer_rate", "talk_time", "average_talk_time"),
    "deals": ("pipeline_value", "weighted_pipeline", "open_deals", "deals_won", "deals_lost", "win_rate",
              "average_won_deal_size"),
    "orders": ("revenue", "orders", "average_order_value", "gross_margin", "margin_rate"),
}.items() for kpi in kpis}
PROBABILITY = {"lead": Decimal("0.1"), "qualified": Decimal("0.2"), "proposal": Decimal("0.5"),
               "negotiation": Decimal("0.75")}


def buckets(moment: datetime, tz: ZoneInfo) -> list[tuple[str, date]]:
    d = moment.astimezone(tz).date()
    return [("day", d), ("week", d - timedelta(days=d.weekday())), ("month", d.replace(day=1)),
            ("quarter", date(d.year, (d.month - 1) // 3 * 3 + 1, 1)), ("year", date(d.year, 1, 1))]


def t(text: str) -> datetime:
    return datetime.fromisoformat(text)


def cents(amount) -> Decimal:
    return Decimal(str(amount)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def team_and_region(directory: dict, rep: str, at: datetime) -> tuple[str, str]:
    """The rep's assignment at `at`: the latest one begun by then, else the first one."""
    assignments = directory["reps"].get(rep)
    if not assignments:
        return "unassigned", "unassigned"
    begun = [a for a in assignments if a[0] is None or a[0] <= at]
    _, team, region = begun[-1] if begun else assignments[0]
    return team, region


def compute(events: list[dict], tz: ZoneInfo, directory: dict) -> dict[tuple[str, str, str, str, str], Decimal | None]:
    """{(kpi, by, key, period, period_start or ""): value} for every bucket an event touched.

    `directory`: {"reps": {rep: [(since or None, team, region), ...] in time order},
    "products": {product: category}, "customers": {customer: sector}}.
    """
    seen, calls, deals, orders = set(), defaultdict(list), defaultdict(list), defaultdict(list)
    for e in events:
        if e["id"] in seen:
            continue
        seen.add(e["id"])
        d = e["data"]
        if e["type"].startswith("call."):
            calls[d["call_id"]].append(e)
        elif e["type"] == "deal.changed":
            deals[d["deal_id"]].append(d)
        else:
            orders[d["order_id"]].append(e)

    sums: dict = defaultdict(lambda: defaultdict(Decimal))  # (period, start, by, key) -> measure -> sum

    def add(at: datetime | None, dims: list[tuple[str, str]], **measures) -> None:
        cells = [("now", "")] if at is None else [(p, s.isoformat()) for p, s in buckets(at, tz)]
        for period, start in cells:
            for by, key in dims:
                for name, value in measures.items():
                    sums[period, start, by, key][name] += value

    def people(rep: str, at: datetime) -> list[tuple[str, str]]:
        team, region = team_and_region(directory, rep, at)
        return [("all", "all"), ("rep", rep), ("team", team), ("region", region)]

    def sector(customer: str | None) -> str:
        return directory["customers"].get(customer, "unassigned") if customer else "unknown"

    for evs in calls.values():
        first = evs[0]["data"]
        ended = next((e["data"] for e in evs if e["type"] == "call.ended"), None)
        answered_at = next((e["data"]["answered_at"] for e in evs if e["data"].get("answered_at")), None)
        answered = ended["status"] == "answered" if ended else answered_at is not None
        started = t(first["started_at"])
        dims = people(first["rep_id"], started)
        if first["direction"] == "outbound":
            add(started, dims, outbound=1)
        elif answered:
            add(started, dims, inbound_answered=1)
        elif ended:
            add(started, dims, inbound_missed=1)
        if ended and answered:
            talk = (t(ended["ended_at"]) - t(ended.get("answered_at") or answered_at)).total_seconds()
            add(started, dims, talk=Decimal(str(talk)), talked=1)

    for updates in deals.values():
        d = max(updates, key=lambda u: t(u["updated_at"]))
        amount = cents(d["amount"])
        # The team of the deal's latest update; what the deal says of product, customer, source.
        dims = people(d["rep_id"], t(d["updated_at"])) + [
            ("product", d.get("product", "unknown")), ("customer", d.get("customer_id", "unknown")),
            ("sector", sector(d.get("customer_id"))), ("source", d.get("source", "unknown"))]
        if d["stage"] == "won":
            add(t(d.get("closed_at") or d["updated_at"]), dims, won=1, won_amount=amount)
        elif d["stage"] == "lost":
            add(t(d.get("closed_at") or d["updated_at"]), dims, lost=1)
        else:
            p = Decimal(str(d["probability"])) if d.get("probability") is not None else PROBABILITY[d["stage"]]
            add(None, dims, open=1, open_amount=amount, weighted=amount * p)

    for evs in orders.values():
        placed = next((e["data"] for e in evs if e["type"] == "order.placed"), None)
        if placed is None:
            continue
        # Each product's lines are summed, then rounded to the cent; the order is their sum.
        by_product = defaultdict(lambda: [Decimal(0), Decimal(0)])
        for line in placed["lines"]:
            quantity = Decimal(str(line["quantity"]))
            by_product[line["product"]][0] += quantity * Decimal(str(line["unit_price"]))
            by_product[line["product"]][1] += quantity * Decimal(str(line["unit_cost"]))
        parts = [([("product", p), ("category", directory["products"].get(p, "unassigned"))], cents(r), cents(c))
                 for p, (r, c) in by_product.items()]
        whole = people(placed["rep_id"], t(placed["placed_at"])) + [
            ("customer", placed["customer_id"]), ("sector", sector(placed["customer_id"])),
            ("channel", placed.get("channel", "unknown"))]
        parts.append((whole, sum(r for _, r, _ in parts), sum(c for _, _, c in parts)))
        cancel = next((e["data"] for e in evs if e["type"] == "order.cancelled"), None)
        for dims, revenue, cost in parts:
            add(t(placed["placed_at"]), dims, orders=1, revenue=revenue, cost=cost)
            if cancel:
                add(t(cancel["cancelled_at"]), dims, orders=-1, revenue=-revenue, cost=-cost)

    def ratio(a, b):
        return None if not b else a / b

    out = {}
    for (period, start, by, key), m in sums.items():
        g = m.__getitem__
        if period == "now":
            values = {"pipeline_value": g("open_amount"), "weighted_pipeline": g("weighted"),
                      "open_deals": g("open")}
        else:
            values = {
                "calls_outbound": g("outbound"), "calls_inbound": g("inbound_answered"),
                "calls_missed": g("inbound_missed"),
                "answer_rate": ratio(g("inbound_answered"), g("inbound_answered") + g("inbound_missed")),
                "talk_time": g("talk"), "average_talk_time": ratio(g("talk"), g("talked")),
                "deals_won": g("won"), "deals_lost": g("lost"), "win_rate": ratio(g("won"), g("won") + g("lost")),
                "average_won_deal_size": ratio(g("won_amount"), g("won")),
                "revenue": g("revenue"), "orders": g("orders"), "average_order_value": ratio(g("revenue"), g("orders")),
                "gross_margin": g("revenue") - g("cost"), "margin_rate": ratio(g("revenue") - g("cost"), g("revenue")),
            }
        for kpi, value in values.items():
            if by in DIMENSIONS[FAMILY[kpi]]:
                out[kpi, by, key, period, start] = value
    return out
