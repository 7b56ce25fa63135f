"""An independent batch computation of the KPIs, for checking the live pipeline.

Written from the KPI definitions in the README, not from the processor: it imports nothing
from salespulse. It reads the whole event log at once and derives each entity's final state
directly (the newest deal update, the call's known facts, an order and its cancellation).
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

PERIODS = ("day", "week", "month", "quarter", "year")
PEOPLE = ("all", "rep", "team", "region")
DEAL_DIMS = PEOPLE + ("product", "customer", "sector", "source")
DIMENSIONS = {"calls": PEOPLE, "deals": DEAL_DIMS, "orders": PEOPLE + ("product", "category", "customer", "sector", "channel"),
              "activities": PEOPLE + ("customer", "sector", "channel"), "customers": PEOPLE + ("customer", "sector"),
              "visits": PEOPLE + ("customer", "sector"), "reasons": ("reason",), "lost_amount": DEAL_DIMS + ("reason",),
              "life": ("all", "sector"), "new": PEOPLE + ("sector", "channel"),
              "customer_revenue": PEOPLE + ("customer", "sector", "channel"), "spend": ("all", "source"), "cac": ("all",),
              "shares": ("product", "category"), "top": ("customer",)}
DIMENSIONS["orders_only"] = DIMENSIONS["attainment"] = DIMENSIONS["orders"]
DIMENSIONS["needed"] = PEOPLE + ("product", "customer", "sector")
FAMILY = {kpi: family for family, kpis in {
    "calls": ("calls_outbound", "calls_inbound", "calls_missed", "answer_rate", "talk_time", "average_talk_time",
              "interactions"),
    "deals": ("pipeline_value", "weighted_pipeline", "open_deals", "deals_won", "deals_lost", "win_rate",
              "average_won_deal_size", "lead_conversion_rate", "hot_leads_assigned", "lead_qualification_rate",
              "sales_cycle_days", "close_rate"),
    "orders": ("revenue", "orders", "average_order_value", "gross_margin", "margin_rate"),
    "activities": ("hunter_ratio", "visits", "meetings_solo", "meetings_team", "activity_conversion",
                   "report_completeness"),
    "customers": ("csat", "nps", "reviews", "review_rating", "outstanding_receivables", "overdue_receivables"),
    "visits": ("visits_per_order",), "reasons": ("loss_reasons",), "lost_amount": ("lost_deal_amount",),
    "life": ("upsell_rate", "active_customers", "lost_customers", "churn_rate", "net_customer_change",
             "retention_rate", "customer_lifetime_days"),
    "new": ("new_customers",), "customer_revenue": ("new_revenue", "recurring_revenue"),
    "spend": ("acquisition_spend",), "cac": ("cac",), "orders_only": ("revenue_forecast",),
    "shares": ("revenue_share_by_product",), "top": ("top_customers",), "attainment": ("revenue_attainment",),
    "needed": ("deals_needed_to_target",),
}.items() for kpi in kpis}
# Read over date windows reaching before this test's year: compared for this test's own keys only.
WINDOWED = {"close_rate", "active_customers", "lost_customers", "churn_rate", "net_customer_change",
            "retention_rate", "customer_lifetime_days", "overdue_receivables"}
HORIZON = timedelta(days=365)
QUALIFIED = {"qualified", "proposal", "negotiation", "won"}
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


def compute(events: list[dict], tz: ZoneInfo, directory: dict,
            monthly_revenue_targets: dict[str, Decimal]) -> dict[tuple[str, str, str, str, str], Decimal | None]:
    """{(kpi, by, key, period, period_start or ""): value} for every bucket an event touched.

    `monthly_revenue_targets`: {rep: revenue target of each month}, the only targets set.

    `directory`: {"reps": {rep: [(since or None, team, region), ...] in time order},
    "products": {product: category}, "customers": {customer: sector}}.
    """
    seen, calls, deals, orders = set(), defaultdict(list), defaultdict(list), defaultdict(list)
    activities, invoices, payments = defaultdict(list), {}, defaultdict(dict)
    surveys, churned, spends = {}, {}, []
    for e in events:
        if e["id"] in seen:
            continue
        seen.add(e["id"])
        d = e["data"]
        kind = e["type"]
        if kind.startswith("call."):
            calls[d["call_id"]].append(e)
        elif kind == "deal.changed":
            deals[d["deal_id"]].append(d)
        elif kind.startswith("order."):
            orders[d["order_id"]].append(e)
        elif kind == "activity.logged":
            activities[d["activity_id"]].append(d)
        elif kind == "survey.answered":
            surveys.setdefault(d["survey_id"], d)
        elif kind == "invoice.issued":
            invoices.setdefault(d["invoice_id"], d)
        elif kind == "payment.received":
            payments[d["invoice_id"]].setdefault(d["payment_id"], d)
        elif kind == "customer.churned":
            churned.setdefault(d["customer_id"], set()).add(t(d["churned_at"]))
        elif kind == "spend.recorded":
            spends.append(d)

    sums: dict = defaultdict(lambda: defaultdict(Decimal))  # (period, start, by, key) -> measure -> sum

    def add(at: datetime | None, dims: list[tuple[str, str]], kinds=PERIODS, **measures) -> None:
        cells = [("now", "")] if at is None else [(p, s.isoformat()) for p, s in buckets(at, tz) if p in kinds]
        for period, start in cells:
            for by, key in dims:
                for name, value in measures.items():
                    sums[period, start, by, key][name] += value

    def people(rep: str, at: datetime) -> list[tuple[str, str]]:
        team, region = team_and_region(directory, rep, at)
        return [("all", "all"), ("rep", rep), ("team", team), ("region", region)]

    def sector(customer: str | None) -> str:
        return directory["customers"].get(customer, "unassigned") if customer else "unknown"

    def named_rep(rep: str | None, at: datetime) -> list[tuple[str, str]]:
        return people(rep, at) if rep else [("all", "all"), ("rep", "unknown"), ("team", "unknown"), ("region", "unknown")]

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

    deal_spans = []  # (dims, created, closed or None) for close_rate's deals worked
    for updates in deals.values():
        d = max(updates, key=lambda u: t(u["updated_at"]))
        amount = cents(d["amount"])
        # The team of the deal's latest update; what the deal says of product, customer, source.
        dims = people(d["rep_id"], t(d["updated_at"])) + [
            ("product", d.get("product", "unknown")), ("customer", d.get("customer_id", "unknown")),
            ("sector", sector(d.get("customer_id"))), ("source", d.get("source", "unknown"))]
        created, closed = t(d["created_at"]), t(d.get("closed_at") or d["updated_at"])
        complete = all(d.get(f) is not None for f in ("customer_id", "product", "source", "lead_score"))
        add(created, dims, leads=1, leads_won=int(d["stage"] == "won"),
            hot=int(d.get("lead_score") is not None and d["lead_score"] >= 70),
            qualified=int(complete and any(u["stage"] in QUALIFIED for u in updates)))
        deal_spans.append((dims, created, closed if d["stage"] in ("won", "lost") else None))
        if d["stage"] == "won":
            add(closed, dims, won=1, won_amount=amount, cycle=Decimal(max(0, int((closed - created).total_seconds()))))
        elif d["stage"] == "lost":
            add(closed, dims, lost=1, lost_amount=amount)
            add(closed, [("reason", d.get("loss_reason", "unknown"))], lost=1, lost_amount=amount)
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

    for versions in activities.values():
        a = max(versions, key=lambda v: t(v["updated_at"]))
        occurred = t(a["occurred_at"])
        dims = people(a["rep_id"], occurred) + [("customer", a.get("customer_id", "unknown")),
                                                ("sector", sector(a.get("customer_id"))), ("channel", a["kind"])]
        meeting = a["kind"] in ("meeting", "visit")
        add(occurred, dims, activities=1, prospect=int(a["party"] == "prospect"), visits=int(a["kind"] == "visit"),
            solo=int(meeting and not a.get("participants")), with_team=int(meeting and bool(a.get("participants"))),
            converted=int(a.get("result") in ("deal", "order")),
            complete=int(bool(a.get("notes") and a.get("next_step") and a.get("result"))))

    for v in surveys.values():
        dims = named_rep(v.get("rep_id"), t(v["answered_at"])) + [("customer", v["customer_id"]),
                                                                  ("sector", sector(v["customer_id"]))]
        score = v["score"]
        if v["kind"] == "csat":
            add(t(v["answered_at"]), dims, csat_n=1, csat=score)
        elif v["kind"] == "nps":
            add(t(v["answered_at"]), dims, nps_n=1, promoters=int(score >= 9), detractors=int(score <= 6))
        else:
            add(t(v["answered_at"]), dims, reviews=1, review_points=score)

    today = datetime.now(tz).date()
    for invoice_id, inv in invoices.items():
        dims = named_rep(inv.get("rep_id"), t(inv["issued_at"])) + [("customer", inv["customer_id"]),
                                                                    ("sector", sector(inv["customer_id"]))]
        owed = cents(inv["amount"]) - sum(cents(p["amount"]) for p in payments[invoice_id].values())
        add(None, dims, receivable=owed, overdue=owed if owed > 0 and t(inv["due_at"]).astimezone(tz).date() < today else 0)

    for sp in spends:
        add(t(sp["spent_at"]), [("all", "all"), ("source", sp.get("source", "unknown"))], spend=cents(sp["amount"]))

    # Customers: their orders that were not cancelled, in time order.
    kept = defaultdict(list)
    for evs in orders.values():
        placed = next((e["data"] for e in evs if e["type"] == "order.placed"), None)
        if placed and not any(e["type"] == "order.cancelled" for e in evs):
            total = sum(cents(sum((Decimal(str(l["quantity"])) * Decimal(str(l["unit_price"])) for l in placed["lines"]
                                   if l["product"] == p), Decimal(0))) for p in {l["product"] for l in placed["lines"]})
            kept[placed["customer_id"]].append((t(placed["placed_at"]), placed["order_id"], placed, total))
    spells = defaultdict(list)  # sector -> [(start, end, lifetime seconds)]
    for customer, bought in kept.items():
        bought.sort(key=lambda o: (o[0], o[1]))
        life = [("all", "all"), ("sector", sector(customer))]
        first = bought[0]
        add(first[0], life + people(first[2]["rep_id"], first[0])[1:] + [("channel", first[2].get("channel", "unknown"))],
            new_customers=1)
        first_buckets = dict(buckets(first[0], tz))
        per_bucket = defaultdict(int)
        for i, (at, _, placed, total) in enumerate(bought):
            dims = people(placed["rep_id"], at) + [("customer", customer), ("sector", sector(customer)),
                                                    ("channel", placed.get("channel", "unknown"))]
            for kind, start in buckets(at, tz):
                per_bucket[kind, start] += 1
                if first_buckets[kind] == start:
                    add(at, dims, kinds=(kind,), new_revenue=total)
            if i and at - bought[i - 1][0] < HORIZON:
                add(at, dims, recurring_revenue=total)
        for (kind, start), n in per_bucket.items():
            moment = datetime.combine(start, datetime.min.time(), tz) + timedelta(hours=12)
            add(moment, life, kinds=(kind,), buyers=1, repeat_buyers=int(n > 1))
        # Active spells: the union of [order, order + horizon), each cut short at the first churn after it.
        churns = churned.get(customer, set())
        intervals = [(at, min([at + HORIZON] + [c for c in churns if c >= at])) for at, _, _, _ in bought]
        spell_start, last, end = intervals[0][0], intervals[0][0], intervals[0][1]
        for start, stop in intervals[1:] + [(None, None)]:
            if start is not None and start < end:
                last, end = start, stop
                continue
            spells[sector(customer)].append((spell_start, end, (last - spell_start).total_seconds()))
            add(end, life, kinds=("day", "month", "year"), loss_marker=1)
            if start is not None:
                spell_start, last, end = start, start, stop

    def ratio(a, b):
        return None if not b else a / b

    def local(moment: datetime) -> date:
        return moment.astimezone(tz).date()

    def ends(period: str, start: date) -> date:
        if period == "day":
            return start + timedelta(days=1)
        if period == "week":
            return start + timedelta(days=7)
        months = {"month": 1, "quarter": 3, "year": 12}[period]
        index = start.year * 12 + start.month - 1 + months
        return date(index // 12, index % 12 + 1, 1)

    tomorrow = today + timedelta(days=1)

    def active(sector_spells, day: date) -> int:
        return sum(1 for a, b, _ in sector_spells if local(a) < day <= local(b))

    def windowed(period: str, start_text: str, by: str, key: str) -> dict:
        if period == "now":
            if by != "sector":
                return {}
            return {"active_customers": Decimal(active(spells[key], tomorrow))}
        start = date.fromisoformat(start_text)
        end = min(ends(period, start), tomorrow)
        out = {}
        if by in DEAL_DIMS:
            worked = sum(1 for dims, created, closed in deal_spans if (by, key) in dims
                         and local(created) < end and (closed is None or local(closed) >= start))
            out["close_rate"] = ratio(sums[period, start_text, by, key]["won"], worked)
        if by == "sector":
            lost = [s for s in spells[key] if start <= local(s[1]) < end]
            at_start, at_end = active(spells[key], start), active(spells[key], end)
            churn = ratio(Decimal(len(lost)), at_start)
            out.update({"lost_customers": Decimal(len(lost)), "churn_rate": churn,
                        "retention_rate": None if churn is None else 1 - churn,
                        "net_customer_change": ratio(Decimal(at_start - at_end), at_start),
                        "customer_lifetime_days": ratio(sum(Decimal(str(s[2])) for s in lost) / 86_400, len(lost))})
        return out

    out = {}
    for (period, start, by, key), m in sums.items():
        g = m.__getitem__
        if period == "now":
            values = {"pipeline_value": g("open_amount"), "weighted_pipeline": g("weighted"),
                      "open_deals": g("open"), "outstanding_receivables": g("receivable"),
                      "overdue_receivables": g("overdue")}
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
                "interactions": g("activities") + g("outbound") + g("inbound_answered"),
                "hunter_ratio": ratio(g("prospect"), g("activities")), "visits": g("visits"),
                "meetings_solo": g("solo"), "meetings_team": g("with_team"),
                "activity_conversion": ratio(g("converted"), g("activities")),
                "report_completeness": ratio(g("complete"), g("activities")),
                "visits_per_order": ratio(g("visits"), g("orders")),
                "csat": ratio(g("csat"), g("csat_n")), "reviews": g("reviews"),
                "nps": ratio(100 * (g("promoters") - g("detractors")), g("nps_n")),
                "review_rating": ratio(g("review_points"), g("reviews")),
                "loss_reasons": g("lost"), "lost_deal_amount": g("lost_amount"),
                "lead_conversion_rate": ratio(g("leads_won"), g("leads")), "hot_leads_assigned": g("hot"),
                "lead_qualification_rate": ratio(g("qualified"), g("leads")),
                "sales_cycle_days": ratio(g("cycle") / 86_400, g("won")),
                "new_customers": g("new_customers"), "new_revenue": g("new_revenue"),
                "recurring_revenue": g("recurring_revenue"), "upsell_rate": ratio(g("repeat_buyers"), g("buyers")),
                "acquisition_spend": g("spend"), "cac": ratio(g("spend"), g("new_customers")),
                "revenue_forecast": g("revenue"),  # every bucket of the log is over: the run rate is the result
                "revenue_attainment": None, "deals_needed_to_target": None,  # no target, no value
                "revenue_share_by_product": ratio(g("revenue"), sums[period, start, "all", "all"]["revenue"]),
            }
        values.update(windowed(period, start, by, key))
        target = monthly_revenue_targets.get(key) if (by, period) == ("rep", "month") else None
        if target is not None:
            values["revenue_attainment"] = g("revenue") / target
            missing, won_size = target - g("revenue"), ratio(g("won_amount"), g("won"))
            values["deals_needed_to_target"] = (Decimal(0) if missing <= 0 else
                                                None if won_size is None else Decimal(math.ceil(missing / won_size)))
        for kpi, value in values.items():
            if by in DIMENSIONS[FAMILY[kpi]]:
                out[kpi, by, key, period, start] = value
    # The 10 customers with the most revenue (above zero) in each bucket, ties by customer id.
    by_bucket = defaultdict(list)
    for (kpi, by, key, period, start), value in out.items():
        if kpi == "revenue" and by == "customer" and value > 0:
            by_bucket[period, start].append((-value, key))
    for (period, start), ranked in by_bucket.items():
        for minus_value, key in sorted(ranked)[:10]:
            out["top_customers", "customer", key, period, start] = -minus_value
    return out
