"""A customer's life from its orders and churn: new, active spells, lost, repeat buyers, revenue kinds."""

from collections import defaultdict
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from salespulse.domain.aggregation import Aggregator, expand
from salespulse.domain import customers
from salespulse.domain.customers import CustomerState, customer_contributions, freeze, with_churn, with_order
from salespulse.domain.entities import OrderState
from salespulse.domain.money import CurrencyConverter
from salespulse.domain.periods import period_start

TZ = ZoneInfo("Europe/Paris")
T0 = datetime(2025, 1, 15, 10, 0, tzinfo=timezone.utc)


def order(days: float, cents: int = 10_000, rep: str = "rep-1", cancelled: bool = False) -> OrderState:
    placed = T0 + timedelta(days=days)
    return OrderState(placed_at=placed, rep_id=rep, customer_id="c", revenue_cents=cents,
                      cancelled_at=placed + timedelta(days=1) if cancelled else None)


def customer(*orders: tuple[str, OrderState], churned_at=()) -> CustomerState:
    state = None
    for order_id, o in orders:
        state = with_order(state, order_id, o)
    for moment in churned_at if isinstance(churned_at, tuple) else (churned_at,):
        state, _ = with_churn(state, moment)
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
    resent, changed = with_churn(later, T0 + timedelta(days=10))
    assert not changed and resent == later


def test_every_churn_counts_a_customer_lost_won_back_and_lost_again_is_lost_twice():
    first, second = T0 + timedelta(days=30), T0 + timedelta(days=90)
    state = customer(("o1", order(0)), ("o2", order(60)), churned_at=(second, first))
    assert booked(state, "losses", "day") == {("day", first.date()): 1, ("day", second.date()): 1}
    assert sum(booked(state, "activations", "day").values()) == 2


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


# --- freezing old orders changes no figure ------------------------------------------------

DELAY = timedelta(days=20)  # the latest an event arrives after its business time


@st.composite
def customer_logs(draw, delay: timedelta = DELAY, freezes: bool = True):
    """A customer's events, each arriving up to `delay` after its business time, and
    boundaries frozen once nothing older can arrive (only when `delay` is DELAY)."""
    hours, late = st.integers(0, 900 * 24), st.integers(0, int(delay.total_seconds() // 3600))
    events = []
    for i, placed in enumerate(draw(st.lists(hours, min_size=1, max_size=10))):
        at = T0 + timedelta(hours=placed)
        events.append((at + timedelta(hours=draw(late)), "order", f"o{i}", at))
        if draw(st.booleans()) and draw(st.booleans()):
            events.append((at + timedelta(hours=draw(late)), "cancel", f"o{i}", at))
    for at in draw(st.lists(hours, max_size=4)):
        moment = T0 + timedelta(hours=at)
        events.append((moment + timedelta(hours=draw(late)), "churn", None, moment))
    boundaries = draw(st.lists(hours, max_size=4)) if freezes else []
    # freezing at B happens once every event older than B has arrived: at B + DELAY
    events += [(T0 + timedelta(hours=b) + DELAY, "freeze", None, T0 + timedelta(hours=b)) for b in boundaries]
    return sorted(events, key=lambda e: (e[0], e[1] != "freeze")), draw(st.integers(30, 400))


def rows_of(contributions, sign, into):
    old, new = ((), contributions) if sign > 0 else (contributions, ())
    Aggregator(TZ, CurrencyConverter("EUR")).rows(old, new, into)


def lived(events, horizon):
    """A customer log as the processor lives it: (kind, state before, state after, moment) per
    event, old orders folded at each freeze."""
    state = None
    orders: dict[str, OrderState] = {}
    for _, kind, order_id, at in events:
        if kind == "freeze":
            new = freeze(state, at, TZ, horizon) if state is not None else None
        elif kind == "churn":
            new, _ = with_churn(state, at)
        else:
            placed = orders.get(order_id) or OrderState(placed_at=at, rep_id="rep-1", customer_id="c",
                                                        revenue_cents=1_000 + len(orders))
            orders[order_id] = replace(placed, cancelled_at=at + timedelta(days=1)) if kind == "cancel" else placed
            new = with_order(state, order_id, orders[order_id])
        yield kind, state, new, at
        state = new


def whole_history(events, horizon) -> dict:
    """The rows of the customer's whole history (nothing folded), computed at once."""
    whole = None
    for _, _, whole, _ in lived([e for e in events if e[1] != "freeze"], horizon):
        pass
    expected: dict = defaultdict(dict)
    rows_of(customer_contributions("c", whole, TZ, horizon), +1, expected)
    return nonzero(expected)


def nonzero(rows) -> dict:
    return {(k, name): v for k, measures in rows.items() for name, v in measures.items() if v}


@settings(max_examples=400)
@given(customer_logs())
def test_freezing_old_orders_changes_no_figure(log):
    """What the processor books (deltas of the state, nothing when it freezes) equals the figures
    of the whole history computed at once, and the frozen state holds only its recent orders."""
    events, horizon = log
    booked_rows: dict = defaultdict(dict)
    for kind, state, new, at in lived(events, horizon):
        if kind == "freeze":
            assert new is None or all(o.placed_at >= at for o in new.orders)
            assert new is None or freeze(new, at, TZ, horizon) == new  # an hourly pass rewrites nothing new
            continue
        rows_of(customer_contributions("c", state, TZ, horizon), -1, booked_rows)
        rows_of(customer_contributions("c", new, TZ, horizon), +1, booked_rows)
    assert nonzero(booked_rows) == whole_history(events, horizon)


@settings(max_examples=400)
@given(customer_logs())
def test_booking_a_new_last_order_by_walking_on_gives_the_figures_of_the_whole_history(log):
    """The aggregator books a customer's next order by walking on from its last state (Walk)
    and anything else (a late order, a cancellation, a churn, a freeze) by netting everything;
    either way the booked figures are those of the whole history computed at once."""
    events, horizon = log
    aggregator = Aggregator(TZ, CurrencyConverter("EUR"), horizon_days=horizon)
    groups: dict = {}
    for kind, state, new, _ in lived(events, horizon):
        if kind != "freeze":
            aggregator.customer_groups("c", state, new, groups)
    booked_rows: dict = defaultdict(dict)
    expand(groups, booked_rows)
    assert nonzero(booked_rows) == whole_history(events, horizon)


def watched_aggregator(monkeypatch, state) -> tuple[Aggregator, dict, list]:
    """An aggregator that has booked `state` whole; (it, its groups, the walks made from now on)."""
    from salespulse.domain import customers

    aggregator, groups = Aggregator(TZ, CurrencyConverter("EUR")), {}
    aggregator.customer_groups("c", None, state, groups)
    walks, walked = [], customers.walked
    monkeypatch.setattr(customers, "walked", lambda *args: walks.append(args) or walked(*args))
    return aggregator, groups, walks


def booked_rows(groups) -> dict:
    rows: dict = defaultdict(dict)
    expand(groups, rows)
    return nonzero(rows)


def whole(state) -> dict:
    rows: dict = defaultdict(dict)
    rows_of(customer_contributions("c", state, TZ, 365), +1, rows)
    return nonzero(rows)


def test_a_churn_after_the_last_order_moves_the_spell_end_without_walking_the_orders_again(monkeypatch):
    """Walking a customer's orders costs more the longer its history; a churn after its last
    order (the usual churn) only ends the open spell, and is booked from the remembered walk."""
    state = customer(*((f"o{i}", order(10 * i)) for i in range(5)))
    aggregator, groups, walks = watched_aggregator(monkeypatch, state)

    churned, _ = with_churn(state, T0 + timedelta(days=45))
    aggregator.customer_groups("c", state, churned, groups)
    assert walks == []
    assert booked_rows(groups) == whole(churned)

    walks.clear()  # whole() walks
    late, _ = with_churn(churned, T0 + timedelta(days=25))  # between two orders: every spell after it changes
    aggregator.customer_groups("c", churned, late, groups)
    assert walks == []  # walked again from the checkpoint before the order it precedes
    assert booked_rows(groups) == whole(late)

    walks.clear()
    resectored = replace(late, sector="retail")  # not a change of orders or churns: everything again
    aggregator.customer_groups("c", late, resectored, groups)
    assert walks
    assert booked_rows(groups) == whole(resectored)


def test_cancelling_the_last_order_goes_back_to_the_walk_before_it_without_walking_again(monkeypatch):
    before = customer(*((f"o{i}", order(10 * i)) for i in range(5)))
    aggregator, groups, walks = watched_aggregator(monkeypatch, before)

    placed = with_order(before, "o5", order(50))
    aggregator.customer_groups("c", before, placed, groups)
    with_placed = booked_rows(groups)
    cancelled = with_order(placed, "o5", order(50, cancelled=True))
    aggregator.customer_groups("c", placed, cancelled, groups)
    assert walks == []
    assert with_placed == whole(placed)  # (whole() walks: after the count)
    assert booked_rows(groups) == whole(before) == whole(cancelled)


@settings(max_examples=300)
@given(st.one_of(customer_logs(), customer_logs(delay=timedelta(days=900), freezes=False)),
       st.integers(1, 3), st.integers(1, 3))
def test_walking_again_from_a_checkpoint_gives_the_figures_of_the_whole_history(log, every, kept):
    """With checkpoints every 1-3 orders, 1-3 of them kept (8 and 16 in production: a customer
    log here has up to 10 orders), late orders, cancellations and late churns are booked by
    walking again from the checkpoint before the first order they change, or everything when
    none is kept before it; the booked figures are still those of the whole history. Half of
    the logs arrive in any order (nothing folded then), so that orders and churns land before
    several later orders."""
    from salespulse.domain import customers

    events, horizon = log
    production = customers.CHECKPOINT_EVERY, customers.CHECKPOINTS_KEPT
    customers.CHECKPOINT_EVERY, customers.CHECKPOINTS_KEPT = every, kept
    try:
        aggregator = Aggregator(TZ, CurrencyConverter("EUR"), horizon_days=horizon)
        groups: dict = {}
        for kind, state, new, _ in lived(events, horizon):
            if kind != "freeze":
                aggregator.customer_groups("c", state, new, groups)
    finally:
        customers.CHECKPOINT_EVERY, customers.CHECKPOINTS_KEPT = production
    assert booked_rows(groups) == whole_history(events, horizon)


def test_a_late_order_an_older_cancellation_or_a_late_churn_walks_the_last_orders_again_not_all(monkeypatch):
    """A customer with a long history: an order placed before its latest ones (arriving late),
    one of its recent orders cancelled, or a churn before its latest orders, is booked without
    walking all of its orders."""
    from salespulse.domain import customers

    state = customer(*((f"o{i}", order(i)) for i in range(100)))
    aggregator, groups, walks = watched_aggregator(monkeypatch, state)
    stepped = []
    step = customers.Walk.step
    monkeypatch.setattr(customers.Walk, "step", lambda self, orders, *rest: stepped.append(len(orders))
                        or step(self, orders, *rest))

    late = with_order(state, "late", order(97.5))
    aggregator.customer_groups("c", state, late, groups)
    cancelled = with_order(late, "o95", order(95, cancelled=True))
    aggregator.customer_groups("c", late, cancelled, groups)
    again = with_order(cancelled, "o101", order(101))
    aggregator.customer_groups("c", cancelled, again, groups)
    churned, _ = with_churn(again, T0 + timedelta(days=96.5))  # before its last five orders
    aggregator.customer_groups("c", again, churned, groups)
    again = with_order(churned, "o102", order(102))
    aggregator.customer_groups("c", churned, again, groups)

    assert walks == []
    assert max(stepped) <= customers.CHECKPOINT_EVERY + 5  # from the checkpoint before the change
    assert booked_rows(groups) == whole(again)


@settings(max_examples=300)
@given(st.lists(st.tuples(st.sampled_from([f"o{i}" for i in range(8)]),  # ids recur: updates, cancels
                          st.integers(0, 5),  # few distinct days: ties on placed_at, ordered by id
                          st.booleans()), max_size=30))
def test_a_customers_orders_are_its_placed_orders_sorted_by_time_then_id(changes):
    state, placed = None, {}
    for order_id, day, cancelled in changes:
        o = order(day, cancelled=cancelled)
        state = with_order(state, order_id, o)
        if cancelled:
            placed.pop(order_id, None)
        else:
            placed[order_id] = o.placed_at
    expected = sorted((at, order_id) for order_id, at in placed.items())
    assert [(o.placed_at, o.order_id) for o in (state.orders if state else ())] == expected


@settings(max_examples=300)
@given(st.lists(st.tuples(st.sampled_from([f"o{i}" for i in range(8)]),
                          st.integers(0, 5),  # an order placed again may move: placed_at changes
                          st.booleans(),  # cancelled
                          st.booleans()),  # without a rep: not counted
                max_size=40))
def test_an_order_found_where_its_previous_state_says_is_the_order_a_scan_finds(changes):
    """with_order told where the order sat (its entity row's previous state, as the aggregator
    does) changes the customer exactly as with a scan of every order."""
    told, scanned, before = None, None, {}
    for order_id, day, cancelled, no_rep in changes:
        o = replace(order(day, cancelled=cancelled), rep_id=None if no_rep else "rep-1")
        old = before.get(order_id)
        previous = None if old is None else (old.placed_at if customers.placed(old) else None)
        told = with_order(told, order_id, o, previous)
        scanned = with_order(scanned, order_id, o)
        assert told == scanned
        before[order_id] = o


def test_an_order_not_where_its_entity_row_says_is_found_by_a_scan():
    state = customer(("o1", order(1)), ("o2", order(2)), ("o3", order(3)))
    moved = with_order(state, "o2", order(2.5, cancelled=True), previous=T0)  # not at T0: scanned
    assert [o.order_id for o in moved.orders] == ["o1", "o3"]
