"""The rest of the catalog through the real path: events ingested over HTTP into Kafka, processed,
read back from the API. Each test isolates its numbers with unique reps, customers or sectors,
or a day no other test uses."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from tests.integration.conftest import cloudevent, unique
from tests.integration.test_pipeline import expect

pytestmark = pytest.mark.usefixtures("processor")
PARIS = ZoneInfo("Europe/Paris")


async def ingest(api, *events: dict) -> None:
    response = await api.post("/api/v1/events", json=list(events))
    assert response.status_code == 202, response.text


def at(day: date, hour: int = 10) -> str:
    return datetime.combine(day, time(hour), PARIS).isoformat()


async def test_activities_give_engagement_kpis(api):
    rep, day = unique("rep"), "2021-05-04"

    def activity(kind, party, version=1, **extra):
        return {"rep_id": rep, "kind": kind, "party": party, "occurred_at": f"{day}T09:00:00+02:00",
                "updated_at": f"{day}T{8 + version:02d}:30:00+02:00", **extra}
    a1, a2, a3 = unique("act"), unique("act"), unique("act")
    await ingest(api,
                 cloudevent("activity.logged", {"activity_id": a1, **activity("visit", "prospect")}),
                 cloudevent("activity.logged", {"activity_id": a2, **activity("email", "customer")}),
                 cloudevent("activity.logged", {"activity_id": a3, **activity("meeting", "customer",
                                                                            participants=["rep-x"])}),
                 # the visit's report, completed later: replaces the first version
                 cloudevent("activity.logged", {"activity_id": a1, **activity(
                     "visit", "prospect", 2, notes="Met the buyer", next_step="Quote", result="deal")}),
                 cloudevent("call.ended", {"call_id": unique("call"), "rep_id": rep, "direction": "outbound",
                                           "status": "busy", "started_at": f"{day}T11:00:00+02:00",
                                           "ended_at": f"{day}T11:00:20+02:00"}))
    await expect(api, rep, day, {
        "interactions": 4, "hunter_ratio": Decimal(1) / 3, "visits": 1, "meetings_solo": 1, "meetings_team": 1,
        "report_completeness": Decimal(1) / 3, "activity_conversion": Decimal(1) / 3,
    })
    await expect(api, "visit", day, {"activity_conversion": 1}, by="channel")


async def test_surveys_receivables_and_spend(api):
    customer, source = unique("cust"), unique("source")
    today = datetime.now(PARIS).date()
    scores = [("nps", 10), ("nps", 9), ("nps", 3), ("nps", 7), ("csat", 4), ("csat", 5), ("review", 3)]
    day = "2021-06-08"
    await ingest(api, *[cloudevent("survey.answered", {
        "survey_id": unique("srv"), "customer_id": customer, "kind": kind, "score": score,
        "answered_at": f"{day}T10:00:00+02:00"}) for kind, score in scores])
    await expect(api, customer, day, {"nps": 25, "csat": Decimal("4.5"), "reviews": 1, "review_rating": 3},
                 by="customer")

    late, later = unique("inv"), unique("inv")
    await ingest(api,
                 cloudevent("payment.received", {  # before its invoice: waits for it
                     "payment_id": unique("pay"), "invoice_id": late, "customer_id": customer, "amount": "400",
                     "currency": "EUR", "received_at": at(today - timedelta(days=5))}),
                 cloudevent("invoice.issued", {
                     "invoice_id": late, "customer_id": customer, "amount": "1000.00", "currency": "EUR",
                     "issued_at": at(today - timedelta(days=40)), "due_at": at(today - timedelta(days=10))}),
                 cloudevent("invoice.issued", {
                     "invoice_id": later, "customer_id": customer, "amount": "500.50", "currency": "EUR",
                     "issued_at": at(today - timedelta(days=2)), "due_at": at(today + timedelta(days=28))}))
    await expect(api, customer, today.isoformat(), {"outstanding_receivables": Decimal("1100.50"),
                                                     "overdue_receivables": 600}, by="customer")

    await ingest(api, cloudevent("spend.recorded", {
        "spend_id": unique("spd"), "campaign": unique("camp"), "amount": "1234.56", "currency": "EUR",
        "spent_at": f"{day}T10:00:00+02:00", "source": source}))
    await expect(api, source, day, {"acquisition_spend": Decimal("1234.56")}, by="source")


async def test_customer_lifecycle_new_active_lost_churn_upsell(api):
    sector = unique("sector")
    c1, c2 = unique("cust"), unique("cust")
    for c in (c1, c2):
        assert (await api.put(f"/api/v1/directory/customers/{c}", json={"sector": sector})).status_code == 200
    today = datetime.now(PARIS).date()
    month = (today.replace(day=1) - timedelta(days=1)).replace(day=1)  # last month: closed, in the horizon

    def order(customer, day: date, price="100") -> dict:
        return cloudevent("order.placed", {
            "order_id": unique("ord"), "customer_id": customer, "rep_id": unique("rep"), "placed_at": at(day),
            "currency": "EUR", "lines": [{"product": "p", "quantity": 1, "unit_price": price, "unit_cost": "0"}]})
    await ingest(api, order(c1, month + timedelta(days=1)), order(c1, month + timedelta(days=3), "50"),
                 order(c2, month + timedelta(days=9)))
    m = month.isoformat()
    await expect(api, sector, m, {"new_customers": 2, "upsell_rate": Decimal("0.5"), "new_revenue": 250,
                                  "recurring_revenue": 50}, by="sector", period="month")
    await expect(api, sector, today.isoformat(), {"active_customers": 2}, by="sector")

    await ingest(api, cloudevent("customer.churned", {"customer_id": c2, "churned_at": at(today)}))
    now = today.isoformat()
    await expect(api, sector, now, {"active_customers": 1}, by="sector")
    await expect(api, sector, now, {"lost_customers": 1, "churn_rate": Decimal("0.5"),
                                    "retention_rate": Decimal("0.5"), "net_customer_change": Decimal("0.5"),
                                    "customer_lifetime_days": 0}, by="sector", period="month")


async def test_deal_kpis_close_rate_loss_reasons_leads_and_cycle(api):
    rep, reason, source = unique("rep"), unique("reason"), unique("source")

    def deal(deal_id, stage, created, updated, **extra):
        data = {"deal_id": deal_id, "rep_id": rep, "stage": stage, "amount": "1000", "currency": "EUR",
                "created_at": created, "updated_at": updated, "source": source, **extra}
        if stage in ("won", "lost"):
            data["closed_at"] = updated
        return cloudevent("deal.changed", data)
    d1, d2, d3, d4 = (unique("deal") for _ in range(4))
    await ingest(api,
                 deal(d1, "lead", "2021-03-01T10:00:00+01:00", "2021-03-01T10:00:00+01:00", lead_score=80),
                 deal(d1, "won", "2021-03-01T10:00:00+01:00", "2021-03-10T10:00:00+01:00", lead_score=80,
                      customer_id="c", product="p"),
                 deal(d2, "lost", "2021-02-01T10:00:00+01:00", "2021-03-05T10:00:00+01:00", loss_reason=reason),
                 deal(d3, "qualified", "2021-03-02T10:00:00+01:00", "2021-03-03T10:00:00+01:00"),
                 deal(d4, "lost", "2021-01-04T10:00:00+01:00", "2021-02-20T10:00:00+01:00"))  # closed before March
    march = "2021-03-01"
    await expect(api, rep, march, {
        "close_rate": Decimal(1) / 3,  # d1 won of d1, d2, d3 worked in March
        "lead_conversion_rate": Decimal("0.5"), "hot_leads_assigned": 1, "sales_cycle_days": 9,
        "lead_qualification_rate": Decimal("0.5"),  # d1 qualified with all its fields; d3 lacks some
    }, period="month")
    await expect(api, reason, march, {"loss_reasons": 1}, by="reason", period="month")


async def test_revenue_share_top_customers_and_forecast(api):
    day = "2021-07-13"  # no other test sells on this day
    customers = [unique("cust") for _ in range(12)]
    events = [cloudevent("order.placed", {
        "order_id": unique("ord"), "customer_id": c, "rep_id": "rep-share", "placed_at": f"{day}T10:00:00+02:00",
        "currency": "EUR", "lines": [{"product": "share-a", "quantity": i + 1, "unit_price": "10", "unit_cost": "1"},
                                     {"product": "share-b", "quantity": 1, "unit_price": "10", "unit_cost": "1"}]})
        for i, c in enumerate(customers)]
    await ingest(api, *events)
    # share-a sells 10 x (1 + ... + 12) = 780, share-b 12 x 10 = 120
    await expect(api, "share-a", day, {"revenue_share_by_product": Decimal(780) / 900}, by="product")
    await expect(api, "all", day, {"revenue_forecast": 900}, by="all")  # a past day: the run rate is the result
    response = await api.get("/api/v1/kpis/top_customers", params={"by": "customer", "at": day})
    top = response.json()["values"]
    assert [v["key"] for v in top] == customers[::-1][:10]
    assert top[0]["value"] == 130
