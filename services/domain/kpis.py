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
from decimal import ROUND_CEILING, Decimal

from salespulse.domain.windows import ORIGIN, PERIOD_END, PERIOD_START, TODAY, TOMORROW, Window

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
    unit: str  # count | currency | ratio | seconds | days | score
    direction: str  # up | down: which way is good
    description: str
    sources: tuple[str, ...]  # the topics whose measures it reads (merged in one row)
    formula: Formula
    cumulative: bool = False  # adds up over the period, so pace = target x elapsed share
    snapshot: bool = False  # current state (period `now`), not per period
    dimensions: tuple[str, ...] = ()  # when not given: those every one of its sources is kept by
    attainment_of: str | None = None  # value = that KPI's value / that KPI's target
    gap_of: str | None = None  # value = ceil((that KPI's target - its value) / formula(m)), >= 0
    windows: tuple[Window, ...] = ()  # date-window sums the formula reads by name (windows.py)
    share: bool = False  # value = formula(row) / formula(the `all` row of the same bucket)
    projection: bool = False  # value = formula(row) / elapsed share of the period (run rate)
    top: int | None = None  # a reading keeps only the best `top` values above zero

    @property
    def live(self) -> bool:
        """Pushed on kpi.updates when its row changes. The others depend on other rows (date
        windows, the company total) or on the clock, and are computed when read."""
        return not self.windows and not self.share and not self.projection and self.top is None

    def describe(self, currency: str) -> dict:
        return {
            "id": self.id, "name": self.name, "unit": self.unit,
            "currency": currency if self.unit == "currency" else None,
            "direction": self.direction, "description": self.description,
            "dimensions": list(self.dimensions),
            "periods": ["now"] if self.snapshot else ["day", "week", "month", "quarter", "year"],
            "cumulative": self.cumulative, "live": self.live, "top": self.top,
        }


CALLS, DEALS, ORDERS = "sales.calls", "sales.deals", "sales.orders"
ACTIVITIES, CUSTOMERS, SPEND = "sales.activities", "sales.customers", "sales.spend"
SOURCES = (CALLS, DEALS, ORDERS, ACTIVITIES, CUSTOMERS, SPEND)

# The dimensions each source's measures are kept by (entities.py, activities.py, customers.py).
_REP_DIMS = ("all", "rep", "team", "region")
DIMENSIONS: dict[str, tuple[str, ...]] = {
    CALLS: _REP_DIMS,
    DEALS: _REP_DIMS + ("product", "customer", "sector", "source"),
    ORDERS: _REP_DIMS + ("product", "category", "customer", "sector", "channel"),
    ACTIVITIES: _REP_DIMS + ("customer", "sector", "channel"),  # channel: the activity's kind
    CUSTOMERS: _REP_DIMS + ("customer", "sector"),
    SPEND: ("all", "source"),
}
LIFECYCLE_DIMS = ("all", "sector")  # a customer's life is the customer's, not one rep's
NEW_CUSTOMER_DIMS = _REP_DIMS + ("sector", "channel")  # the first order's rep and channel
CUSTOMER_REVENUE_DIMS = _REP_DIMS + ("customer", "sector", "channel")
DAY = Decimal(86_400)


def _days(name: str) -> Formula:
    return lambda m: Decimal(m.get(name, 0)) / DAY


def _active_at(at: str) -> tuple[Window, Window]:
    """Customers active at the start of day `at`: every activation minus every loss before it."""
    return (Window(f"activations_before_{at}", "activations", ORIGIN, at),
            Window(f"losses_before_{at}", "losses", ORIGIN, at))


def _active(at: str) -> Formula:
    return _diff(_m(f"activations_before_{at}"), _m(f"losses_before_{at}"))


def _nps(m: Measures) -> Decimal | None:
    answers = m.get("nps_answers", 0)
    if not answers:
        return None
    return Decimal(100 * (m.get("nps_promoters", 0) - m.get("nps_detractors", 0))) / answers


_revenue = _money("revenue_cents")
_won = _m("deals_won")
_inbound_answered = _m("inbound_answered")
_activities = _m("activities")
_lost = _m("losses_in_period")
_LOST = (Window("losses_in_period", "losses", PERIOD_START, PERIOD_END),)
_CHURN_WINDOWS = _LOST + _active_at(PERIOD_START)
_churn = _ratio(_lost, _active(PERIOD_START))

_KPIS: list[Kpi] = [
    # Telephony
    Kpi("calls_outbound", "Outbound calls", "count", "up",
        "Calls placed by reps, counted in the period the call started.", (CALLS,),
        _m("calls_outbound"), cumulative=True),
    Kpi("calls_inbound", "Inbound calls answered", "count", "up",
        "Calls received and answered.", (CALLS,), _inbound_answered, cumulative=True),
    Kpi("calls_missed", "Inbound calls missed", "count", "down",
        "Calls received and not answered (missed, busy, failed, voicemail).", (CALLS,),
        _m("inbound_missed"), cumulative=True),
    Kpi("answer_rate", "Answer rate", "ratio", "up",
        "Answered inbound calls / inbound calls whose outcome is known.", (CALLS,),
        _ratio(_inbound_answered, _sum(_inbound_answered, _m("inbound_missed")))),
    Kpi("talk_time", "Talk time", "seconds", "up",
        "Total seconds from answer to hang-up of ended calls.", (CALLS,),
        lambda m: Decimal(m.get("talk_ms", 0)) / 1000, cumulative=True),
    Kpi("average_talk_time", "Average talk time", "seconds", "up",
        "Talk time / answered calls that ended.", (CALLS,),
        _ratio(lambda m: Decimal(m.get("talk_ms", 0)) / 1000, _m("talked_calls"))),
    # Activity and engagement
    Kpi("interactions", "Interactions", "count", "up",
        "Meetings, visits and emails logged, plus calls placed and inbound calls answered.",
        (ACTIVITIES, CALLS), _sum(_activities, _m("calls_outbound"), _inbound_answered), cumulative=True),
    Kpi("hunter_ratio", "Hunter ratio", "ratio", "up",
        "Share of logged activities with prospects rather than existing customers (hunting vs farming).",
        (ACTIVITIES,), _ratio(_m("activities_prospect"), _activities)),
    Kpi("visits", "Visits", "count", "up", "Meetings at the customer's site.", (ACTIVITIES,),
        _m("visits"), cumulative=True),
    Kpi("visits_per_order", "Visits per order", "ratio", "down",
        "Visits / orders in the period: the field effort an order costs.", (ACTIVITIES, ORDERS),
        _ratio(_m("visits"), _m("orders")), dimensions=_REP_DIMS + ("customer", "sector")),
    Kpi("meetings_solo", "Meetings alone", "count", "up",
        "Meetings and visits with no other rep taking part.", (ACTIVITIES,), _m("meetings_solo"), cumulative=True),
    Kpi("meetings_team", "Meetings with the team", "count", "up",
        "Meetings and visits with at least one other rep taking part.", (ACTIVITIES,),
        _m("meetings_team"), cumulative=True),
    Kpi("activity_conversion", "Activity conversion", "ratio", "up",
        "Activities followed by a deal or an order / activities; by channel for each activity kind.",
        (ACTIVITIES,), _ratio(_m("activities_converted"), _activities)),
    Kpi("report_completeness", "Report completeness", "ratio", "up",
        "Activities logged with notes, next step and result / activities.", (ACTIVITIES,),
        _ratio(_m("reports_complete"), _activities)),
    # Pipeline
    Kpi("pipeline_value", "Pipeline value", "currency", "up",
        "Sum of the amounts of open deals, now.", (DEALS,), _money("open_cents"), snapshot=True),
    Kpi("weighted_pipeline", "Weighted pipeline", "currency", "up",
        "Sum of amount x win probability (the deal's, else its stage default) of open deals, now.",
        (DEALS,), lambda m: Decimal(m.get("weighted_cents_bp", 0)) / CENTS / 10_000, snapshot=True),
    Kpi("open_deals", "Open deals", "count", "up",
        "Deals not yet won or lost, now.", (DEALS,), _m("open_deals"), snapshot=True),
    Kpi("deals_won", "Deals won", "count", "up",
        "Deals closed won in the period (closed_at, else the update that won them).", (DEALS,),
        _won, cumulative=True),
    Kpi("deals_lost", "Deals lost", "count", "down",
        "Deals closed lost in the period.", (DEALS,), _m("deals_lost"), cumulative=True),
    Kpi("win_rate", "Win rate", "ratio", "up",
        "Won / (won + lost) among deals closed in the period.", (DEALS,),
        _ratio(_won, _sum(_won, _m("deals_lost")))),
    Kpi("close_rate", "Close rate", "ratio", "up",
        "Deals won in the period / deals worked in it (created before its end and not closed "
        "before its start).", (DEALS,),
        _ratio(_won, _diff(_m("created_before_end"), _m("closed_before_start"))),
        windows=(Window("created_before_end", "deals_created", ORIGIN, PERIOD_END),
                 Window("closed_before_start", "deals_closed", ORIGIN, PERIOD_START))),
    Kpi("average_won_deal_size", "Average won deal size", "currency", "up",
        "Won amount / deals won in the period.", (DEALS,), _ratio(_money("won_cents"), _won)),
    Kpi("loss_reasons", "Deals lost by reason", "count", "down",
        "Deals closed lost in the period, by the loss reason the CRM gave (`unknown` when none).",
        (DEALS,), _m("deals_lost"), cumulative=True, dimensions=("reason",)),
    Kpi("lost_deal_amount", "Lost deal amount", "currency", "down",
        "Amount of the deals closed lost in the period; by reason for the loss reasons' weight.",
        (DEALS,), _money("lost_cents"), cumulative=True, dimensions=DIMENSIONS[DEALS] + ("reason",)),
    Kpi("lead_conversion_rate", "Lead conversion rate", "ratio", "up",
        "Leads created in the period that are won now / leads created in the period.", (DEALS,),
        _ratio(_m("leads_converted"), _m("leads"))),
    Kpi("hot_leads_assigned", "Hot leads assigned", "count", "up",
        "Leads created in the period with a score of 70 or more (every lead has a rep).", (DEALS,),
        _m("hot_leads"), cumulative=True),
    Kpi("lead_qualification_rate", "Lead qualification rate", "ratio", "up",
        "Leads created in the period that reached a qualified stage and carry customer, product, "
        "source and score / leads created in the period; by source for the prospecting file's quality.",
        (DEALS,), _ratio(_m("leads_qualified"), _m("leads"))),
    Kpi("sales_cycle_days", "Sales cycle", "days", "down",
        "Mean days from creation to close of the deals won in the period.", (DEALS,),
        _ratio(_days("won_cycle_s"), _won)),
    Kpi("deals_needed_to_target", "Deals needed to target", "count", "down",
        "ceil((revenue target - revenue) / average won deal size) in the period; 0 once the target is met.",
        (DEALS, ORDERS), _ratio(_money("won_cents"), _won), gap_of="revenue",
        dimensions=_REP_DIMS + ("product", "customer", "sector")),
    # Revenue and margin
    Kpi("revenue", "Revenue", "currency", "up",
        "Net amount of orders placed in the period minus orders cancelled in the period.",
        (ORDERS,), _revenue, cumulative=True),
    Kpi("revenue_forecast", "Revenue forecast", "currency", "up",
        "Revenue so far / elapsed share of the period: the run rate projected to the period's end.",
        (ORDERS,), _revenue, projection=True),
    Kpi("revenue_share_by_product", "Revenue share", "ratio", "up",
        "Revenue of the product (or category) / revenue of the company in the period.", (ORDERS,),
        _revenue, share=True, dimensions=("product", "category")),
    Kpi("orders", "Orders", "count", "up",
        "Orders placed minus orders cancelled in the period.", (ORDERS,), _m("orders"), cumulative=True),
    Kpi("average_order_value", "Average order value", "currency", "up",
        "Revenue / orders (panier moyen).", (ORDERS,), _ratio(_revenue, _m("orders"))),
    Kpi("gross_margin", "Gross margin", "currency", "up",
        "Revenue minus cost of goods sold.", (ORDERS,),
        _diff(_revenue, _money("cost_cents")), cumulative=True),
    Kpi("margin_rate", "Margin rate", "ratio", "up",
        "Gross margin / revenue.", (ORDERS,),
        _ratio(_diff(_revenue, _money("cost_cents")), _revenue)),
    Kpi("revenue_attainment", "Revenue attainment", "ratio", "up",
        "Revenue / revenue target for the same dimension value and period.", (ORDERS,),
        _revenue, cumulative=True, attainment_of="revenue"),
    Kpi("top_customers", "Top customers", "currency", "up",
        "The 10 customers with the most revenue in the period (of those with revenue above zero).", (ORDERS,), _revenue,
        dimensions=("customer",), top=10),
    Kpi("new_customers", "New customers", "count", "up",
        "Customers whose first order (not cancelled) was placed in the period; by its rep and channel.",
        (ORDERS,), _m("new_customers"), cumulative=True, dimensions=NEW_CUSTOMER_DIMS),
    Kpi("new_revenue", "New revenue", "currency", "up",
        "Revenue of orders (not cancelled) placed in the period by customers whose first order is in "
        "the period.", (ORDERS,), _money("new_revenue_cents"), cumulative=True, dimensions=CUSTOMER_REVENUE_DIMS),
    Kpi("recurring_revenue", "Recurring revenue", "currency", "up",
        "Revenue of orders (not cancelled) placed in the period by customers who had ordered within "
        "the activity horizon (365 days) before.", (ORDERS,), _money("recurring_revenue_cents"),
        cumulative=True, dimensions=CUSTOMER_REVENUE_DIMS),
    Kpi("upsell_rate", "Upsell rate", "ratio", "up",
        "Customers with more than one order in the period / customers with an order in the period.",
        (ORDERS,), _ratio(_m("repeat_buyers"), _m("buyers")), dimensions=LIFECYCLE_DIMS),
    # Customers
    Kpi("active_customers", "Active customers", "count", "up",
        "Customers with an order within the activity horizon (365 days) and not churned since, now.",
        (ORDERS, CUSTOMERS), _active(TOMORROW), snapshot=True, dimensions=LIFECYCLE_DIMS,
        windows=_active_at(TOMORROW)),
    Kpi("lost_customers", "Lost customers", "count", "down",
        "Customers that became inactive (horizon passed with no order) or were marked churned in the "
        "period, up to today.", (ORDERS, CUSTOMERS), _lost, cumulative=True, dimensions=LIFECYCLE_DIMS,
        windows=_LOST),
    Kpi("churn_rate", "Churn rate", "ratio", "down",
        "Lost customers in the period / customers active at its start.", (ORDERS, CUSTOMERS), _churn,
        dimensions=LIFECYCLE_DIMS, windows=_CHURN_WINDOWS),
    Kpi("net_customer_change", "Net customer change", "ratio", "down",
        "(Active customers at the period's start - at its end, or now) / at its start: what seed 003 "
        "calls churn; gains offset losses.", (ORDERS, CUSTOMERS),
        _ratio(_diff(_active(PERIOD_START), _active(PERIOD_END)), _active(PERIOD_START)),
        dimensions=LIFECYCLE_DIMS, windows=_active_at(PERIOD_START) + _active_at(PERIOD_END)),
    Kpi("retention_rate", "Retention rate", "ratio", "up",
        "1 - churn rate.", (ORDERS, CUSTOMERS),
        lambda m: None if (c := _churn(m)) is None else 1 - c, dimensions=LIFECYCLE_DIMS, windows=_CHURN_WINDOWS),
    Kpi("customer_lifetime_days", "Customer lifetime", "days", "up",
        "Mean days between the first and the last order of the customers lost in the period.",
        (ORDERS, CUSTOMERS), _ratio(_days("lifetime_in_period"), _lost), dimensions=LIFECYCLE_DIMS,
        windows=_LOST + (Window("lifetime_in_period", "lost_lifetime_s", PERIOD_START, PERIOD_END),)),
    Kpi("csat", "Customer satisfaction", "score", "up",
        "Mean satisfaction score (1-5) of the answers in the period.", (CUSTOMERS,),
        _ratio(_m("csat_points"), _m("csat_answers"))),
    Kpi("nps", "Net promoter score", "score", "up",
        "% promoters (9-10) - % detractors (0-6) among the NPS answers in the period.", (CUSTOMERS,), _nps),
    Kpi("reviews", "Reviews", "count", "up", "Customer reviews received in the period.", (CUSTOMERS,),
        _m("reviews"), cumulative=True),
    Kpi("review_rating", "Review rating", "score", "up", "Mean rating (1-5) of the reviews in the period.",
        (CUSTOMERS,), _ratio(_m("review_points"), _m("reviews"))),
    # Finance and acquisition
    Kpi("outstanding_receivables", "Outstanding receivables", "currency", "down",
        "Invoiced and not yet paid, now.", (CUSTOMERS,), _money("receivable_cents"), snapshot=True),
    Kpi("overdue_receivables", "Overdue receivables", "currency", "down",
        "The part of outstanding receivables whose due date is before today.", (CUSTOMERS,),
        _money("overdue"), snapshot=True, windows=(Window("overdue", "due_cents", ORIGIN, TODAY),)),
    Kpi("acquisition_spend", "Acquisition spend", "currency", "down",
        "Money spent on acquiring customers in the period.", (SPEND,), _money("spend_cents"), cumulative=True),
    Kpi("cac", "Customer acquisition cost", "currency", "down",
        "Acquisition spend / new customers in the period.", (SPEND, ORDERS),
        _ratio(_money("spend_cents"), _m("new_customers")), dimensions=("all",)),
]


def _dimensions(kpi: Kpi) -> tuple[str, ...]:
    if kpi.dimensions:
        return kpi.dimensions
    common = [d for d in DIMENSIONS[kpi.sources[0]] if all(d in DIMENSIONS[s] for s in kpi.sources)]
    return tuple(common)


CATALOG: dict[str, Kpi] = {k.id: replace(k, dimensions=_dimensions(k)) for k in _KPIS}

KPIS_BY_SOURCE: dict[str, tuple[Kpi, ...]] = {
    source: tuple(k for k in CATALOG.values() if source in k.sources) for source in SOURCES
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
             basis_target: Target | None = None, total: Measures | None = None) -> KpiValue:
    """The KPI's value for merged measures, with target, attainment, pace and level.

    `progress` is the elapsed share of the period (periods.progress). `basis_target` is the
    target of `kpi.attainment_of` or `kpi.gap_of` (revenue's target for revenue_attainment).
    `total` is the `all` row of the same bucket, for share KPIs. Window sums are in `measures`.
    """
    value = kpi.formula(measures)
    if kpi.attainment_of is not None:
        if basis_target is None or not basis_target.value:
            return KpiValue(None)
        value = value / basis_target.value
        target = target or Target(Decimal(1), basis_target.alert_at)
    elif kpi.gap_of is not None:
        value = _gap(CATALOG[kpi.gap_of].formula(measures), basis_target, value)
    elif kpi.share:
        whole = kpi.formula(total or {})
        value = value / whole if value is not None and whole else None
    elif kpi.projection and value is not None:
        value = value / Decimal(repr(progress)) if progress > 0 else None
    if value is None or target is None:
        return KpiValue(value, target.value if target else None)
    attainment = value / target.value if target.value else None
    pace = target.value * Decimal(repr(progress)) if kpi.cumulative else target.value
    return KpiValue(value, target.value, attainment, pace, level_of(kpi.direction, value, pace, target.alert_at))


def _gap(done: Decimal | None, basis_target: Target | None, unit: Decimal | None) -> Decimal | None:
    """Units of size `unit` still needed to go from `done` to the target; 0 once it is met."""
    if basis_target is None or done is None:
        return None
    missing = basis_target.value - done
    if missing <= 0:
        return Decimal(0)
    if not unit:
        return None  # no won deal yet: no size to count in
    return (missing / unit).to_integral_value(rounding=ROUND_CEILING)
