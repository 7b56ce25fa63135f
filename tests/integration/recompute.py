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


def compute(events: list[dict], tz: ZoneInfo) -> dict[tuple[str, str, str, str, str], Decimal | None]:
    """{(kpi, by, key, period, period_start or ""): value} for every bucket an event touched."""
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

    def add(at: datetime | None, rep: str, **measures) -> None:
        cells = [("now", "")] if at is None else [(p, s.isoformat()) for p, s in buckets(at, tz)]
        for period, start in cells:
            for by, key in (("all", "all"), ("rep", rep)):
                for name, value in measures.items():
                    sums[period, start, by, key][name] += value

    for evs in calls.values():
        first = evs[0]["data"]
        ended = next((e["data"] for e in evs if e["type"] == "call.ended"), None)
        answered_at = next((e["data"]["answered_at"] for e in evs if e["data"].get("answered_at")), None)
        answered = ended["status"] == "answered" if ended else answered_at is not None
        started = t(first["started_at"])
        if first["direction"] == "outbound":
            add(started, first["rep_id"], outbound=1)
        elif answered:
            add(started, first["rep_id"], inbound_answered=1)
        elif ended:
            add(started, first["rep_id"], inbound_missed=1)
        if ended and answered:
            talk = (t(ended["ended_at"]) - t(ended.get("answered_at") or answered_at)).total_seconds()
            add(started, first["rep_id"], talk=Decimal(str(talk)), talked=1)

    for updates in deals.values():
        d = max(updates, key=lambda u: t(u["updated_at"]))
        amount = cents(d["amount"])
        if d["stage"] == "won":
            add(t(d.get("closed_at") or d["updated_at"]), d["rep_id"], won=1, won_amount=amount)
        elif d["stage"] == "lost":
            add(t(d.get("closed_at") or d["updated_at"]), d["rep_id"], lost=1)
        else:
            p = Decimal(str(d["probability"])) if d.get("probability") is not None else PROBABILITY[d["stage"]]
            add(None, d["rep_id"], open=1, open_amount=amount, weighted=amount * p)

    for evs in orders.values():
        placed = next((e["data"] for e in evs if e["type"] == "order.placed"), None)
        if placed is None:
            continue
        revenue = cents(sum(Decimal(str(l["quantity"])) * Decimal(str(l["unit_price"])) for l in placed["lines"]))
        cost = cents(sum(Decimal(str(l["quantity"])) * Decimal(str(l["unit_cost"])) for l in placed["lines"]))
        add(t(placed["placed_at"]), placed["rep_id"], orders=1, revenue=revenue, cost=cost)
        cancel = next((e["data"] for e in evs if e["type"] == "order.cancelled"), None)
        if cancel:
            add(t(cancel["cancelled_at"]), placed["rep_id"], orders=-1, revenue=-revenue, cost=-cost)

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
            out[kpi, by, key, period, start] = value
    return out
