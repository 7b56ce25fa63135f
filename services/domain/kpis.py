"""The KPI catalog: each KPI is an expression over additive measures, never a stored average.

A KPI value also carries its target, attainment, pace (where a cumulative value should be
by now, given how much of the period has elapsed) and level:

- up-is-good KPIs: value >= pace -> balance; >= pace x alert_at (default 0.8) ->
  anticipation (the run-rate misses the target); below -> alert.
- down-is-good KPIs: value <= pace -> balance; <= pace x alert_at (default 1.2) ->
  anticipation; above -> alert.

For ratio and state KPIs the pace is the target itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal

Measures = Mapping[str, int]
Formula = Callable[[Measures], Decimal | None]

LEVELS = ("anticipation", "balance", "alert")
DEFAULT_ALERT_AT = {"up": Decimal("0.8"), "down": Decimal("1.2")}
CENTS = Decimal(100)


def _m(name: str) -> Formula:
    return lambda m: Decimal(m.get(name, 0))


def _money(name: str) -> Formula:
    return lambda m: Decimal(m.get(name, 0)) / CENTS


def _ratio(numerator: Formula, denominator: Formula) -> Formula:
    def formula(m: Measures) -> Decimal | None:
        d = denominator(m)
        return None if not d else numerator(m) / d
    return formula


def _sum(*parts: Formula) -> Formula:
    return lambda m: sum((p(m) for p in parts), start=Decimal(0))


def _diff(a: Formula, b: Formula) -> Formula:
    return lambda m: a(m) - b(m)


@dataclass(frozen=True)
class Kpi:
    id: str
    name: str
    unit: str  # count | currency | ratio | seconds
    direction: str  # up | down: which way is good
    description: str
    source: str  # the topic whose measures it reads
    formula: Formula
    cumulative: bool = False  # adds up over the period, so pace = target x elapsed share
    snapshot: bool = False  # current state (period `now`), not per period
    dimensions: tuple[str, ...] = ()  # from its source when not given: see DIMENSIONS
    attainment_of: str | None = None  # value = that KPI's value / that KPI's target

    def describe(self, currency: str) -> dict:
        return {
            "id": self.id, "name": self.name, "unit": self.unit,
            "currency": currency if self.unit == "currency" else None,
            "direction": self.direction, "description": self.description,
            "dimensions": list(self.dimensions),
            "periods": ["now"] if self.snapshot else ["day", "week", "month", "quarter", "year"],
            "cumulative": self.cumulative,
        }


CALLS, DEALS, ORDERS = "sales.calls", "sales.deals", "sales.orders"

# The dimensions each source's measures are kept by (entities.py builds the rows).
_REP_DIMS = ("all", "rep", "team", "region")
DIMENSIONS: dict[str, tuple[str, ...]] = {
    CALLS: _REP_DIMS,
    DEALS: _REP_DIMS + ("product", "customer", "sector", "source"),
    ORDERS: _REP_DIMS + ("product", "category", "customer", "sector", "channel"),
}

_revenue = _money("revenue_cents")
_won = _m("deals_won")
_inbound_answered = _m("inbound_answered")

_KPIS: list[Kpi] = [
    # Telephony
    Kpi("calls_outbound", "Outbound calls", "count", "up",
        "Calls placed by reps, counted in the period the call started.", CALLS,
        _m("calls_outbound"), cumulative=True),
    Kpi("calls_inbound", "Inbound calls answered", "count", "up",
        "Calls received and answered.", CALLS, _inbound_answered, cumulative=True),
    Kpi("calls_missed", "Inbound calls missed", "count", "down",
        "Calls received and not answered (missed, busy, failed, voicemail).", CALLS,
        _m("inbound_missed"), cumulative=True),
    Kpi("answer_rate", "Answer rate", "ratio", "up",
        "Answered inbound calls / inbound calls whose outcome is known.", CALLS,
        _ratio(_inbound_answered, _sum(_inbound_answered, _m("inbound_missed")))),
    Kpi("talk_time", "Talk time", "seconds", "up",
        "Total seconds from answer to hang-up of ended calls.", CALLS,
        lambda m: Decimal(m.get("talk_ms", 0)) / 1000, cumulative=True),
    Kpi("average_talk_time", "Average talk time", "seconds", "up",
        "Talk time / answered calls that ended.", CALLS,
        _ratio(lambda m: Decimal(m.get("talk_ms", 0)) / 1000, _m("talked_calls"))),
    # Pipeline
    Kpi("pipeline_value", "Pipeline value", "currency", "up",
        "Sum of the amounts of open deals, now.", DEALS, _money("open_cents"), snapshot=True),
    Kpi("weighted_pipeline", "Weighted pipeline", "currency", "up",
        "Sum of amount x win probability (the deal's, else its stage default) of open deals, now.",
        DEALS, lambda m: Decimal(m.get("weighted_cents_bp", 0)) / CENTS / 10_000, snapshot=True),
    Kpi("open_deals", "Open deals", "count", "up",
        "Deals not yet won or lost, now.", DEALS, _m("open_deals"), snapshot=True),
    Kpi("deals_won", "Deals won", "count", "up",
        "Deals closed won in the period (closed_at, else the update that won them).", DEALS,
        _won, cumulative=True),
    Kpi("deals_lost", "Deals lost", "count", "down",
        "Deals closed lost in the period.", DEALS, _m("deals_lost"), cumulative=True),
    Kpi("win_rate", "Win rate", "ratio", "up",
        "Won / (won + lost) among deals closed in the period.", DEALS,
        _ratio(_won, _sum(_won, _m("deals_lost")))),
    Kpi("average_won_deal_size", "Average won deal size", "currency", "up",
        "Won amount / deals won in the period.", DEALS, _ratio(_money("won_cents"), _won)),
    # Revenue and margin
    Kpi("revenue", "Revenue", "currency", "up",
        "Net amount of orders placed in the period minus orders cancelled in the period.",
        ORDERS, _revenue, cumulative=True),
    Kpi("orders", "Orders", "count", "up",
        "Orders placed minus orders cancelled in the period.", ORDERS, _m("orders"), cumulative=True),
    Kpi("average_order_value", "Average order value", "currency", "up",
        "Revenue / orders (panier moyen).", ORDERS, _ratio(_revenue, _m("orders"))),
    Kpi("gross_margin", "Gross margin", "currency", "up",
        "Revenue minus cost of goods sold.", ORDERS,
        _diff(_revenue, _money("cost_cents")), cumulative=True),
    Kpi("margin_rate", "Margin rate", "ratio", "up",
        "Gross margin / revenue.", ORDERS,
        _ratio(_diff(_revenue, _money("cost_cents")), _revenue)),
    Kpi("revenue_attainment", "Revenue attainment", "ratio", "up",
        "Revenue / revenue target for the same dimension value and period.", ORDERS,
        _revenue, cumulative=True, attainment_of="revenue"),
]
CATALOG: dict[str, Kpi] = {
    k.id: k if k.dimensions else replace(k, dimensions=DIMENSIONS[k.source]) for k in _KPIS
}

KPIS_BY_SOURCE: dict[str, tuple[Kpi, ...]] = {
    source: tuple(k for k in CATALOG.values() if k.source == source) for source in (CALLS, DEALS, ORDERS)
}


@dataclass(frozen=True)
class Target:
    value: Decimal
    alert_at: Decimal | None = None  # share of pace where anticipation turns to alert


@dataclass(frozen=True)
class KpiValue:
    value: Decimal | None
    target: Decimal | None = None
    attainment: Decimal | None = None
    pace: Decimal | None = None
    level: str | None = None


def level_of(direction: str, value: Decimal, pace: Decimal, alert_at: Decimal | None) -> str:
    alert_at = DEFAULT_ALERT_AT[direction] if alert_at is None else alert_at
    if direction == "up":
        if value >= pace:
            return "balance"
        return "anticipation" if value >= pace * alert_at else "alert"
    if value <= pace:
        return "balance"
    return "anticipation" if value <= pace * alert_at else "alert"


def evaluate(kpi: Kpi, measures: Measures, target: Target | None, progress: float,
             basis_target: Target | None = None) -> KpiValue:
    """The KPI's value for merged measures, with target, attainment, pace and level.

    `progress` is the elapsed share of the period (periods.progress). `basis_target` is the
    target of `kpi.attainment_of` for attainment KPIs (revenue's target for revenue_attainment).
    """
    value = kpi.formula(measures)
    if kpi.attainment_of is not None:
        if basis_target is None or not basis_target.value:
            return KpiValue(None)
        value = value / basis_target.value
        target = target or Target(Decimal(1), basis_target.alert_at)
    if value is None or target is None:
        return KpiValue(value, target.value if target else None)
    attainment = value / target.value if target.value else None
    pace = target.value * Decimal(repr(progress)) if kpi.cumulative else target.value
    return KpiValue(value, target.value, attainment, pace, level_of(kpi.direction, value, pace, target.alert_at))
