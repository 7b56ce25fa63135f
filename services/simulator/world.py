"""The simulated sales organisation and how its day unfolds, as CloudEvents.

Pure: the clock and the random generator come in, events come out, nothing is sent. The
runner (__main__) sends what `due(now)` returns to Kafka.
"""

from __future__ import annotations

import heapq
import itertools
import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from salespulse.domain.directory import CUSTOMERS, REPS, Assignment, CustomerRecord, ProductRecord, RepRecord
from salespulse.domain.directory import PRODUCTS as PRODUCTS_KIND

FIRST_NAMES = ["Camille", "Léa", "Hugo", "Louis", "Chloé", "Jules", "Manon", "Lucas", "Inès", "Nathan",
               "Sarah", "Tom", "Emma", "Noah", "Zoé", "Arthur", "Alice", "Paul", "Jade", "Victor",
               "Lina", "Adam", "Rose", "Gabriel"]
TEAMS = [("paris-hunters", "ile-de-france"), ("paris-farmers", "ile-de-france"),
         ("lyon", "auvergne-rhone-alpes"), ("lille", "hauts-de-france")]
SECTORS = ["retail", "industry", "services", "public", "health"]
CATEGORIES = {"crm-seat": "software", "crm-seat-pro": "software", "analytics-addon": "software",
              "telephony-line": "telephony", "headset": "hardware", "wallboard-screen": "hardware",
              "onboarding-day": "services", "support-premium": "services"}
PRODUCTS = [  # (id, unit price, unit cost) in EUR
    ("crm-seat", Decimal("49.00"), Decimal("9.50")),
    ("crm-seat-pro", Decimal("89.00"), Decimal("16.00")),
    ("telephony-line", Decimal("25.00"), Decimal("11.00")),
    ("wallboard-screen", Decimal("390.00"), Decimal("240.00")),
    ("onboarding-day", Decimal("950.00"), Decimal("520.00")),
    ("analytics-addon", Decimal("19.90"), Decimal("3.10")),
    ("support-premium", Decimal("1200.00"), Decimal("310.00")),
    ("headset", Decimal("79.90"), Decimal("41.20")),
]
LOSS_REASONS = ["price", "competitor", "timing", "no_budget", "no_decision"]
LEAD_SOURCES = ["website", "trade_show", "referral", "cold_call", "partner", "webinar"]
STAGES = ["lead", "qualified", "proposal", "negotiation"]
CALL_OUTCOMES_UNANSWERED = ["missed", "busy", "voicemail", "failed"]


@dataclass(frozen=True)
class Rep:
    rep_id: str
    name: str
    team: str
    region: str
    extension: str


@dataclass
class Deal:
    deal_id: str
    rep_id: str
    customer_id: str
    product: str
    amount: Decimal
    created_at: datetime
    stage: str = "lead"
    source: str = "website"


@dataclass(order=True)
class Scheduled:
    due: datetime
    seq: int
    topic: str = field(compare=False)
    key: str = field(compare=False)
    event: dict = field(compare=False)


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


class World:
    """Reps, customers and open deals; schedules the events of every kind the catalog reads."""

    def __init__(self, rng: random.Random, tz: ZoneInfo, reps: int = 24, customers: int = 400) -> None:
        self.rng = rng
        self.tz = tz
        self.reps = [
            Rep(f"rep-{i + 1:02d}", FIRST_NAMES[i % len(FIRST_NAMES)], *TEAMS[i % len(TEAMS)], f"{201 + i}")
            for i in range(reps)
        ]
        # A few reps sell much more than others: real leaderboards are skewed.
        self.rep_weights = [rng.lognormvariate(0, 0.5) for _ in self.reps]
        self.customers = [f"cust-{i + 1:04d}" for i in range(customers)]
        self.open_deals: dict[str, Deal] = {}
        self.pending: list[Scheduled] = []
        self.seq = itertools.count()

    # --- reference data -----------------------------------------------------------------

    def directory_records(self) -> dict[str, list[tuple[str, dict]]]:
        """The directory of this world, by kind: its reps' teams, product categories, customer sectors."""
        reps = [(r.rep_id, RepRecord(r.rep_id, (Assignment(r.team, r.region),), r.name, r.extension).to_doc())
                for r in self.reps]
        products = [(p, ProductRecord(p, CATEGORIES[p]).to_doc()) for p, _, _ in PRODUCTS]
        customers = [(c, CustomerRecord(c, SECTORS[i % len(SECTORS)], self.reps[i % len(self.reps)].region).to_doc())
                     for i, c in enumerate(self.customers)]
        return {REPS: reps, PRODUCTS_KIND: products, CUSTOMERS: customers}

    # --- scheduling ---------------------------------------------------------------------

    def _event(self, event_type: str, source: str, at: datetime, data: dict) -> dict:
        return {"specversion": "1.0", "id": str(uuid.UUID(int=self.rng.getrandbits(128))),
                "source": source, "type": event_type, "time": iso(at),
                "datacontenttype": "application/json", "data": data}

    def _schedule(self, at: datetime, topic: str, key: str, event: dict) -> None:
        heapq.heappush(self.pending, Scheduled(at, next(self.seq), topic, key, event))

    def due(self, now: datetime) -> list[tuple[str, str, dict]]:
        out = []
        while self.pending and self.pending[0].due <= now:
            item = heapq.heappop(self.pending)
            out.append((item.topic, item.key, item.event))
        return out

    def activity(self, now: datetime) -> float:
        """How busy the floor is: full in working hours, a trickle at night and week-ends."""
        local = now.astimezone(self.tz)
        if local.weekday() >= 5:
            return 0.15
        return 1.0 if 8 <= local.hour < 19 else 0.25

    def pick_rep(self) -> Rep:
        return self.rng.choices(self.reps, weights=self.rep_weights)[0]

    # --- what happens -------------------------------------------------------------------

    def start_something(self, now: datetime) -> None:
        roll = self.rng.random()
        if roll < 0.50:
            self.start_call(now)
        elif roll < 0.65:
            self.advance_deal(now)
        elif roll < 0.80:
            self.place_order(now, self.pick_rep(), self.rng.choice(self.customers))
        elif roll < 0.90:
            self.log_activity(now)
        elif roll < 0.95:
            self.survey(now)
        elif roll < 0.985:
            self.invoice(now)
        elif roll < 0.995:
            self.spend(now)
        else:
            self.churn(now)

    def _id(self, prefix: str) -> str:
        return f"{prefix}-{uuid.UUID(int=self.rng.getrandbits(128)).hex[:10]}"

    def log_activity(self, now: datetime) -> None:
        """A meeting, visit or email; half the reports are completed an hour later."""
        rng, rep = self.rng, self.pick_rep()
        activity_id = self._id("act")
        kind = rng.choices(["meeting", "visit", "email"], weights=[3, 2, 5])[0]
        data = {"activity_id": activity_id, "rep_id": rep.rep_id, "kind": kind,
                "party": "prospect" if rng.random() < 0.4 else "customer", "occurred_at": iso(now),
                "updated_at": iso(now), "customer_id": rng.choice(self.customers)}
        if kind != "email" and rng.random() < 0.3:
            data["participants"] = [self.pick_rep().rep_id for _ in range(rng.randint(1, 2))]
            data["participants"] = sorted(set(data["participants"]) - {rep.rep_id}) or [self.reps[0].rep_id]
        self._schedule(now, "sales.activities", activity_id, self._event("activity.logged", "crm/activities", now, data))
        if rng.random() < 0.5:
            later = now + timedelta(hours=1)
            report = {**data, "updated_at": iso(later), "notes": "Discussed needs and budget.",
                      "next_step": "Send a proposal", "result": rng.choice(["none", "follow_up", "deal", "order"])}
            self._schedule(later, "sales.activities", activity_id,
                           self._event("activity.logged", "crm/activities", later, report))

    def survey(self, now: datetime) -> None:
        rng = self.rng
        kind = rng.choice(["csat", "nps", "review"])
        score = min(10, max(0, round(rng.gauss(8, 2)))) if kind == "nps" else rng.choices([1, 2, 3, 4, 5], [1, 1, 3, 6, 5])[0]
        customer = rng.choice(self.customers)
        data = {"survey_id": self._id("srv"), "customer_id": customer, "kind": kind, "score": score,
                "answered_at": iso(now), "rep_id": self.pick_rep().rep_id}
        self._schedule(now, "sales.customers", customer, self._event("survey.answered", "survey/typeform", now, data))

    def invoice(self, now: datetime) -> None:
        """An invoice due in 30 days; most are paid, some late, some in two instalments."""
        rng = self.rng
        customer, invoice_id = rng.choice(self.customers), self._id("inv")
        amount = Decimal(rng.randint(200, 20_000))
        due = now + timedelta(days=30)
        self._schedule(now, "sales.customers", customer, self._event("invoice.issued", "erp/billing", now, {
            "invoice_id": invoice_id, "customer_id": customer, "amount": str(amount), "currency": "EUR",
            "issued_at": iso(now), "due_at": iso(due), "rep_id": self.pick_rep().rep_id}))
        parts = [amount] if rng.random() < 0.7 else [amount / 2, amount / 2]
        for i, part in enumerate(parts if rng.random() < 0.85 else parts[:-1]):
            paid = now + timedelta(minutes=rng.randint(1, 120) * (i + 1))
            self._schedule(paid, "sales.customers", customer, self._event("payment.received", "erp/billing", paid, {
                "payment_id": f"{invoice_id}-{i}", "invoice_id": invoice_id, "customer_id": customer,
                "amount": str(part), "currency": "EUR", "received_at": iso(paid)}))

    def spend(self, now: datetime) -> None:
        rng = self.rng
        source = rng.choice(LEAD_SOURCES)
        campaign = f"{source}-{now.astimezone(self.tz):%Y-%m}"
        self._schedule(now, "sales.spend", campaign, self._event("spend.recorded", "marketing/ads", now, {
            "spend_id": self._id("spd"), "campaign": campaign, "amount": str(rng.randint(50, 2_000)),
            "currency": "EUR", "spent_at": iso(now), "source": source}))

    def churn(self, now: datetime) -> None:
        customer = self.rng.choice(self.customers)
        self._schedule(now, "sales.customers", customer, self._event("customer.churned", "crm/accounts", now, {
            "customer_id": customer, "churned_at": iso(now), "reason": self.rng.choice(["price", "service", "closed"])}))

    def start_call(self, now: datetime) -> None:
        rng, rep = self.rng, self.pick_rep()
        call_id = f"call-{uuid.UUID(int=rng.getrandbits(128)).hex[:12]}"
        direction = "outbound" if rng.random() < 0.55 else "inbound"
        base = {"call_id": call_id, "rep_id": rep.rep_id, "direction": direction, "started_at": iso(now),
                "customer_id": rng.choice(self.customers)}
        if direction == "inbound":
            base["queue"] = "sales"
        source = f"pbx/{rep.region}"
        self._schedule(now, "sales.calls", call_id, self._event("call.started", source, now, dict(base)))
        answered = rng.random() < (0.82 if direction == "inbound" else 0.5)
        if answered:
            answered_at = now + timedelta(seconds=rng.randint(3, 25))
            ended_at = answered_at + timedelta(seconds=int(rng.lognormvariate(4.3, 0.7)))
            self._schedule(answered_at, "sales.calls", call_id,
                           self._event("call.answered", source, answered_at, {**base, "answered_at": iso(answered_at)}))
            self._schedule(ended_at, "sales.calls", call_id, self._event("call.ended", source, ended_at, {
                **base, "status": "answered", "answered_at": iso(answered_at), "ended_at": iso(ended_at)}))
        else:
            ended_at = now + timedelta(seconds=rng.randint(10, 40))
            status = rng.choice(CALL_OUTCOMES_UNANSWERED)
            self._schedule(ended_at, "sales.calls", call_id, self._event("call.ended", source, ended_at, {
                **base, "status": status, "ended_at": iso(ended_at)}))

    def _deal_event(self, deal: Deal, now: datetime, loss_reason: str | None = None) -> None:
        data = {"deal_id": deal.deal_id, "rep_id": deal.rep_id, "stage": deal.stage,
                "amount": str(deal.amount), "currency": "EUR", "created_at": iso(deal.created_at),
                "updated_at": iso(now), "product": deal.product, "customer_id": deal.customer_id,
                "source": deal.source, "lead_score": self.rng.randint(10, 99)}
        if deal.stage in ("won", "lost"):
            data["closed_at"] = iso(now)
        if loss_reason:
            data["loss_reason"] = loss_reason
        self._schedule(now, "sales.deals", deal.deal_id, self._event("deal.changed", "crm/salesforce", now, data))

    def advance_deal(self, now: datetime) -> None:
        rng = self.rng
        if len(self.open_deals) < 30 or rng.random() < 0.3:
            product, price, _ = rng.choice(PRODUCTS)
            quantity = rng.choice([1, 2, 5, 10, 20, 50])
            deal = Deal(f"deal-{uuid.UUID(int=rng.getrandbits(128)).hex[:10]}", self.pick_rep().rep_id,
                        rng.choice(self.customers), product, price * quantity, now,
                        source=rng.choice(LEAD_SOURCES))
            self.open_deals[deal.deal_id] = deal
            self._deal_event(deal, now)
            return
        deal = rng.choice(list(self.open_deals.values()))
        if rng.random() < 0.22:
            deal.stage = "lost"
            del self.open_deals[deal.deal_id]
            self._deal_event(deal, now, rng.choice(LOSS_REASONS))
            return
        index = STAGES.index(deal.stage)
        if index + 1 < len(STAGES):
            deal.stage = STAGES[index + 1]
            self._deal_event(deal, now)
            return
        deal.stage = "won"
        del self.open_deals[deal.deal_id]
        self._deal_event(deal, now)
        rep = next(r for r in self.reps if r.rep_id == deal.rep_id)
        product = next(p for p in PRODUCTS if p[0] == deal.product)
        self.place_order(now + timedelta(seconds=5), rep, deal.customer_id,
                         [(product, max(1, int(deal.amount / product[1])))])

    def place_order(self, now: datetime, rep: Rep, customer_id: str, lines=None) -> None:
        rng = self.rng
        if lines is None:
            lines = [(rng.choice(PRODUCTS), rng.choice([1, 1, 2, 3, 5, 10])) for _ in range(rng.randint(1, 3))]
        order_id = f"ord-{uuid.UUID(int=rng.getrandbits(128)).hex[:10]}"
        data = {"order_id": order_id, "customer_id": customer_id, "rep_id": rep.rep_id, "placed_at": iso(now),
                "currency": "EUR", "channel": rng.choice(["field", "phone", "web"]),
                "lines": [{"product": p[0], "quantity": q, "unit_price": str(p[1]), "unit_cost": str(p[2])}
                          for p, q in lines]}
        self._schedule(now, "sales.orders", customer_id, self._event("order.placed", "erp/orders", now, data))
        if rng.random() < 0.04:
            cancelled_at = now + timedelta(seconds=rng.randint(20, 300))
            self._schedule(cancelled_at, "sales.orders", customer_id, self._event(
                "order.cancelled", "erp/orders", cancelled_at,
                {"order_id": order_id, "customer_id": customer_id, "cancelled_at": iso(cancelled_at),
                 "reason": "customer_request"}))
