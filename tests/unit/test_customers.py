"""A customer's life from its orders and churn: new, active spells, lost, repeat buyers, revenue kinds."""

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from salespulse.domain.customers import CustomerState, customer_contributions, with_churn, with_order
from salespulse.domain.entities import OrderState
from salespulse.domain.periods import period_start

TZ = ZoneInfo("Europe/Paris")
T0 = datetime(2025, 1, 15, 10, 0, tzinfo=timezone.utc)


def order(days: float, cents: int = 10_000, rep: str = "rep-1", cancelled: bool = False) -> OrderState:
    placed = T0 + timedelta(days=days)
    return OrderState(placed_at=placed, rep_id=rep, customer_id="c", revenue_cents=cents,
                      cancelled_at=placed + timedelta(days=1) if cancelled else None)


def customer(*orders: tuple[str, OrderState], churned_at=None) -> CustomerState:
    state = None
    for order_id, o in orders:
        state = with_order(state, order_id, o)
    if churned_at is not None:
        state, _ = with_churn(state, "churn-1", churned_at)
    return state


def booked(state, measure, period=None, horizon=365):
    """{(period, bucket start): total} of one measure, for the day/month/year kinds it reaches."""
    out = {}
    for c in customer_contributions("c", state, TZ, horizon):
        for name, value in c.measures:
            if name != measure:
                continue
            kinds = c.periods or ("day", "week", "month", "quarter", "year")
            for kind in kinds:
                if period is not None and kind != period:
                    continue
                day = c.at.astimezone(TZ).date()
                key = (kind, period_start(kind, day))
                if ("all", "all") in c.dims:
                    out[key] = out.get(key, 0) + value
    return {k: v for k, v in out.items() if v}


def test_a_first_order_makes_a_new_customer_active_until_the_horizon_runs_out():
    state = customer(("o1", order(0)))
    assert sum(booked(state, "new_customers", "day").values()) == 1
    assert booked(state, "activations", "day") == {("day", T0.date()): 1}
    assert booked(state, "losses", "day") == {("day", (T0 + timedelta(days=365)).astimezone(TZ).date()): 1}


def test_an_order_within_the_horizon_extends_the_spell_one_after_it_starts_another():
    state = customer(("o1", order(0)), ("o2", order(100)), ("o3", order(100 + 400)))
    assert sum(booked(state, "activations", "day").values()) == 2
    losses = booked(state, "losses", "day")
    assert sorted(losses) == [("day", (T0 + timedelta(days=465)).date()), ("day", (T0 + timedelta(days=865)).date())]
    # the first spell lasted from the first order to the second: 100 days
    lifetimes = booked(state, "lost_lifetime_s", "day")
    assert lifetimes[("day", (T0 + timedelta(days=465)).date())] == 100 * 86_400
    assert sum(booked(state, "new_customers", "day").values()) == 1  # new once, whatever comes back


def test_churn_ends_the_spell_early_unless_the_customer_orders_again():
    churned = T0 + timedelta(days=30)
    state = customer(("o1", order(0)), churned_at=churned)
    assert booked(state, "losses", "day") == {("day", churned.date()): 1}
    back = with_order(state, "o2", order(60))
    assert booked(back, "losses", "day") == {("day", churned.date()): 1,
                                               ("day", (T0 + timedelta(days=425)).date()): 1}
    assert sum(booked(back, "activations", "day").values()) == 2


def test_a_churn_between_two_orders_ends_one_spell_and_the_next_order_starts_another():
    state = customer(("o1", order(0)), ("o2", order(60)), churned_at=T0 + timedelta(days=30))
    assert sum(booked(state, "losses", "day").values()) == 2
    later = customer(("o1", order(0)), ("o2", order(60)), churned_at=T0 + timedelta(days=10))
    resent, changed = with_churn(later, "churn-1", T0 + timedelta(days=10))
    assert not changed and resent == later


def test_a_cancelled_order_leaves_the_customer_figures():
    state = customer(("o1", order(0)), ("o2", order(3)))
    assert booked(state, "repeat_buyers", "month") == {("month", T0.date().replace(day=1)): 1}
    state = with_order(state, "o2", order(3, cancelled=True))
    assert booked(state, "repeat_buyers", "month") == {}
    assert booked(state, "buyers", "month") == {("month", T0.date().replace(day=1)): 1}
    assert with_order(state, "o1", order(0, cancelled=True)).orders == ()


def test_new_revenue_is_per_period_kind_and_recurring_revenue_follows_an_order_within_the_horizon():
    # first order on 15 Jan, second on 20 Feb: by month only January's is new revenue, by year both
    # are; the second is recurring (an order 36 days before it), the third came after a lapse
    state = customer(("o1", order(0, 1_000)), ("o2", order(36, 2_000)), ("o3", order(36 + 400, 4_000)))
    assert booked(state, "new_revenue_cents", "month") == {("month", T0.date().replace(day=1)): 1_000}
    assert booked(state, "new_revenue_cents", "year") == {("year", T0.date().replace(month=1, day=1)): 3_000}
    assert sum(booked(state, "recurring_revenue_cents", "year").values()) == 2_000


def test_upsell_counts_a_customer_once_per_bucket():
    state = customer(("o1", order(0)), ("o2", order(1)), ("o3", order(2)), ("o4", order(40)))
    months = booked(state, "buyers", "month")
    assert sum(months.values()) == 2  # January and February
    assert sum(booked(state, "repeat_buyers", "month").values()) == 1  # January only
    assert sum(booked(state, "repeat_buyers", "year").values()) == 1
