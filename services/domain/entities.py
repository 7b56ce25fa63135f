"""Calls, deals and orders as state: how each event changes one, and what one contributes.

A measure is never incremented blindly. Each entity's contribution to the measures is a pure
function of its current state, and an event's effect is contribution(new) - contribution(old).
So a re-delivered event, a stale deal update or a cancellation that overtakes its order all
give the right totals by construction.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from salespulse.domain.directory import Directory
from salespulse.domain.events import (
    CallAnswered,
    CallEnded,
    CallStarted,
    DealChanged,
    OrderCancelled,
    OrderPlaced,
)
from salespulse.domain.money import CurrencyConverter, to_cents

SEEN_IDS_KEPT = 8  # event ids remembered per entity to recognise a re-sent event

# Win probability in basis points when a deal.changed carries none.
STAGE_PROBABILITY_BP: dict[str, int] = {
    "lead": 1_000, "qualified": 2_000, "proposal": 5_000, "negotiation": 7_500, "won": 10_000, "lost": 0,
}
CLOSED_STAGES = frozenset({"won", "lost"})

APPLIED, DUPLICATE, STALE = "applied", "duplicate", "stale"
UNKNOWN = "unknown"  # the dimension value of an attribute the event did not carry


@dataclass(frozen=True, slots=True)
class Contribution:
    """Measures an entity adds to every dimension value in `dims`.

    `at` is the business instant whose period buckets receive them; None means the
    measures describe current state (the `now` pseudo-period), such as open pipeline.
    """

    at: datetime | None
    dims: tuple[tuple[str, str], ...]
    measures: tuple[tuple[str, int], ...]


Dims = tuple[tuple[str, str], ...]


def rep_dims(rep_id: str, team: str | None, region: str | None) -> Dims:
    """The company, the rep, and the team and region the rep belonged to for this entity."""
    return (("all", "all"), ("rep", rep_id), ("team", team or UNKNOWN), ("region", region or UNKNOWN))


def _remember(seen: tuple[str, ...], event_id: str) -> tuple[str, ...]:
    return (seen + (event_id,))[-SEEN_IDS_KEPT:]


# --- calls -------------------------------------------------------------------------------

CALL_STAGE_RANK = {CallStarted: 1, CallAnswered: 2, CallEnded: 3}


@dataclass(frozen=True, slots=True)
class CallState:
    rep_id: str
    direction: str
    started_at: datetime
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    status: str | None = None
    rank: int = 0  # latest lifecycle stage seen: 1 started, 2 answered, 3 ended
    seen: tuple[str, ...] = ()
    team: str | None = None  # the rep's, when the call started (from the directory)
    region: str | None = None

    @property
    def answered(self) -> bool:
        if self.status is not None:
            return self.status == "answered"
        return self.answered_at is not None


def next_call_state(state: CallState | None, event_id: str, event) -> tuple[CallState | None, str]:
    """Merge a call event into the call's state; a later lifecycle stage is authoritative."""
    if state is not None and event_id in state.seen:
        return state, DUPLICATE
    rank = CALL_STAGE_RANK[type(event)]
    known = {
        "rep_id": event.rep_id,
        "direction": event.direction,
        "started_at": event.started_at,
        "answered_at": getattr(event, "answered_at", None),
        "ended_at": getattr(event, "ended_at", None),
        "status": getattr(event, "status", None),
    }
    if state is None:
        return CallState(**known, rank=rank, seen=(event_id,)), APPLIED
    if rank >= state.rank:
        merged = {k: v for k, v in known.items() if v is not None}
        new = replace(state, **merged, rank=rank)
    else:  # an earlier stage arriving late only fills what is still unknown
        merged = {k: v for k, v in known.items() if v is not None and getattr(state, k) is None}
        new = replace(state, **merged)
    return replace(new, seen=_remember(state.seen, event_id)), APPLIED


def call_contributions(state: CallState | None) -> list[Contribution]:
    if state is None:
        return []
    measures: dict[str, int] = {}
    ended = state.rank >= 3
    if state.direction == "outbound":
        measures["calls_outbound"] = 1
        if state.answered:
            measures["outbound_answered"] = 1
    elif state.answered:
        measures["inbound_answered"] = 1
    elif ended:
        measures["inbound_missed"] = 1
    if ended and state.answered and state.answered_at is not None and state.ended_at is not None:
        talk_ms = int((state.ended_at - state.answered_at).total_seconds() * 1000)
        measures["talk_ms"] = max(0, talk_ms)
        measures["talked_calls"] = 1
    if not measures:
        return []
    dims = rep_dims(state.rep_id, state.team, state.region)
    return [Contribution(state.started_at, dims, tuple(measures.items()))]


# --- deals -------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class DealState:
    rep_id: str
    stage: str
    amount_cents: int
    probability_bp: int
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None = None
    seen: tuple[str, ...] = ()
    product: str | None = None
    customer_id: str | None = None
    source: str | None = None
    lead_score: float | None = None
    loss_reason: str | None = None
    team: str | None = None  # the rep's when the deal last changed (from the directory)
    region: str | None = None
    sector: str | None = None  # the customer's


def next_deal_state(
    state: DealState | None, event_id: str, event: DealChanged, converter: CurrencyConverter
) -> tuple[DealState | None, str]:
    """A deal.changed carries the full deal; one not newer than the state seen is ignored."""
    if state is not None and event_id in state.seen:
        return state, DUPLICATE
    if state is not None and event.updated_at <= state.updated_at:
        return state, STALE
    if event.probability is not None:
        probability_bp = round(event.probability * 10_000)
    else:
        probability_bp = STAGE_PROBABILITY_BP[event.stage]
    new = DealState(
        rep_id=event.rep_id,
        stage=event.stage,
        amount_cents=converter.cents(event.amount, event.currency),
        probability_bp=probability_bp,
        created_at=event.created_at,
        updated_at=event.updated_at,
        closed_at=event.closed_at,
        seen=_remember(state.seen if state else (), event_id),
        product=event.product,
        customer_id=event.customer_id,
        source=event.source,
        lead_score=event.lead_score,
        loss_reason=event.loss_reason,
    )
    return new, APPLIED


def deal_contributions(state: DealState | None) -> list[Contribution]:
    if state is None:
        return []
    dims = rep_dims(state.rep_id, state.team, state.region) + (
        ("product", state.product or UNKNOWN), ("customer", state.customer_id or UNKNOWN),
        ("sector", state.sector or UNKNOWN), ("source", state.source or UNKNOWN))
    if state.stage not in CLOSED_STAGES:
        measures = (
            ("open_deals", 1),
            ("open_cents", state.amount_cents),
            ("weighted_cents_bp", state.amount_cents * state.probability_bp),
        )
        return [Contribution(None, dims, measures)]
    closed_at = state.closed_at or state.updated_at
    if state.stage == "won":
        return [Contribution(closed_at, dims, (("deals_won", 1), ("won_cents", state.amount_cents)))]
    return [Contribution(closed_at, dims, (("deals_lost", 1), ("lost_cents", state.amount_cents)))]


# --- orders ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ProductLine:
    """An order's lines of one product, in reporting-currency cents."""

    product: str
    revenue_cents: int
    cost_cents: int
    category: str | None = None  # from the product catalog


@dataclass(frozen=True, slots=True)
class OrderState:
    placed_at: datetime | None = None
    rep_id: str | None = None
    customer_id: str | None = None
    revenue_cents: int = 0  # the sum of its products' revenue
    cost_cents: int = 0
    cancelled_at: datetime | None = None
    seen: tuple[str, ...] = ()
    channel: str | None = None
    products: tuple[ProductLine, ...] = ()
    team: str | None = None  # the rep's when the order was placed (from the directory)
    region: str | None = None
    sector: str | None = None  # the customer's


def next_order_state(
    state: OrderState | None, event_id: str, event: OrderPlaced | OrderCancelled,
    converter: CurrencyConverter,
) -> tuple[OrderState | None, str]:
    """An order is placed once and cancelled once; either may arrive first."""
    current = state or OrderState()
    if event_id in current.seen:
        return state, DUPLICATE
    if isinstance(event, OrderPlaced):
        if current.placed_at is not None:
            return state, DUPLICATE  # the same order placed again under another event id
        products = product_lines(event, converter)
        new = replace(
            current,
            placed_at=event.placed_at,
            rep_id=event.rep_id,
            customer_id=event.customer_id,
            channel=event.channel,
            products=products,
            revenue_cents=sum(p.revenue_cents for p in products),
            cost_cents=sum(p.cost_cents for p in products),
        )
    else:
        if current.cancelled_at is not None:
            return state, DUPLICATE
        new = replace(current, cancelled_at=event.cancelled_at)
    return replace(new, seen=_remember(current.seen, event_id)), APPLIED


def product_lines(event: OrderPlaced, converter: CurrencyConverter) -> tuple[ProductLine, ...]:
    """The order's lines summed per product, each product's amounts rounded to the cent once."""
    revenue: dict[str, Decimal] = {}
    cost: dict[str, Decimal] = {}
    for line in event.lines:
        revenue[line.product] = revenue.get(line.product, 0) + line.quantity * line.unit_price
        cost[line.product] = cost.get(line.product, 0) + line.quantity * line.unit_cost
    return tuple(
        ProductLine(product, to_cents(converter.to_reporting(revenue[product], event.currency)),
                    to_cents(converter.to_reporting(cost[product], event.currency)))
        for product in sorted(revenue))


def order_contributions(state: OrderState | None) -> list[Contribution]:
    """The whole order by rep, team, region, customer, sector and channel; each product's
    share of it by product and category (an order counts once for each product it holds)."""
    if state is None or state.placed_at is None or state.rep_id is None:
        return []
    order_dims = rep_dims(state.rep_id, state.team, state.region) + (
        ("customer", state.customer_id or UNKNOWN), ("sector", state.sector or UNKNOWN),
        ("channel", state.channel or UNKNOWN))
    parts = [(order_dims, state.revenue_cents, state.cost_cents)]
    parts += [((("product", p.product), ("category", p.category or UNKNOWN)), p.revenue_cents, p.cost_cents)
              for p in state.products]
    out = []
    for dims, revenue, cost in parts:
        placed = (("orders", 1), ("revenue_cents", revenue), ("cost_cents", cost))
        out.append(Contribution(state.placed_at, dims, placed))
        if state.cancelled_at is not None:
            # A cancellation (or full return) is booked when it happens: closed periods stay closed.
            reversed_ = tuple((name, -value) for name, value in placed) + (("orders_cancelled", 1),)
            out.append(Contribution(state.cancelled_at, dims, reversed_))
    return out


# --- reference data ----------------------------------------------------------------------

def enrich(state, directory: Directory):
    """The state with the team, region, sector and categories the directory gives it now.

    Called after every applied event, so an entity's next event also corrects an attribution
    made before its directory record arrived. The rep's team is taken at the entity's own
    business time: when the call started, when the deal last changed, when the order was placed.
    """
    if isinstance(state, CallState):
        team, region = directory.team_region(state.rep_id, state.started_at)
        return replace(state, team=team, region=region)
    if isinstance(state, DealState):
        team, region = directory.team_region(state.rep_id, state.updated_at)
        sector = directory.sector(state.customer_id) if state.customer_id else None  # None: `unknown`
        return replace(state, team=team, region=region, sector=sector)
    if isinstance(state, OrderState) and state.placed_at is not None and state.rep_id is not None:
        team, region = directory.team_region(state.rep_id, state.placed_at)
        products = tuple(replace(p, category=directory.category(p.product)) for p in state.products)
        return replace(state, team=team, region=region, sector=directory.sector(state.customer_id),
                       products=products)
    return state


# --- storage form ------------------------------------------------------------------------

STATE_CLASSES: dict[str, type] = {"call": CallState, "deal": DealState, "order": OrderState}
_KIND_OF = {cls: kind for kind, cls in STATE_CLASSES.items()}


def state_to_json(state) -> dict[str, Any]:
    """A JSON-ready dict; datetimes as ISO strings (every datetime field ends in `_at`)."""
    out: dict[str, Any] = {"kind": _KIND_OF[type(state)]}
    for f in fields(state):
        value = getattr(state, f.name)
        if isinstance(value, datetime):
            value = value.isoformat()
        elif f.name == "products":
            value = [[p.product, p.revenue_cents, p.cost_cents, p.category] for p in value]
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out


def state_from_json(doc: dict[str, Any]):
    cls = STATE_CLASSES[doc["kind"]]
    kwargs = {}
    for f in fields(cls):
        if f.name not in doc:
            continue
        value = doc[f.name]
        if value is not None and f.name.endswith("_at"):
            value = datetime.fromisoformat(value)
        elif f.name == "products":
            value = tuple(ProductLine(*line) for line in value)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[f.name] = value
    return cls(**kwargs)
