from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from salespulse.domain.kpis import CATALOG, KPIS_BY_SOURCE, Target, evaluate, level_of


def value(kpi_id, measures, **kw):
    return evaluate(CATALOG[kpi_id], measures, kw.pop("target", None), kw.pop("progress", 1.0), **kw).value


def test_every_kpi_has_a_source_unit_and_direction():
    assert sum(len(v) for v in KPIS_BY_SOURCE.values()) == len(CATALOG)
    for kpi in CATALOG.values():
        assert kpi.unit in {"count", "currency", "ratio", "seconds"}
        assert kpi.direction in {"up", "down"}


def test_the_empty_case_counts_zero_and_leaves_ratios_undefined():
    for kpi in CATALOG.values():
        v = value(kpi.id, {})
        if kpi.unit == "ratio" or kpi.id.startswith("average"):
            assert v is None, kpi.id
        else:
            assert v == 0, kpi.id


@pytest.mark.parametrize("kpi, measures, expected", [
    # 3 of 4 answered inbound calls: answer rate 75 %
    ("answer_rate", {"inbound_answered": 3, "inbound_missed": 1}, Decimal("0.75")),
    ("calls_inbound", {"inbound_answered": 3, "inbound_missed": 1}, 3),
    ("talk_time", {"talk_ms": 125_500, "talked_calls": 2}, Decimal("125.5")),
    ("average_talk_time", {"talk_ms": 125_500, "talked_calls": 2}, Decimal("62.75")),
    # taux de signature: 10 won, 30 lost -> 25 %
    ("win_rate", {"deals_won": 10, "deals_lost": 30}, Decimal("0.25")),
    ("average_won_deal_size", {"deals_won": 4, "won_cents": 1_000_000}, Decimal("2500")),
    # montant pondéré: a 1,000.00 EUR deal at 75 % weighs 750 EUR
    ("weighted_pipeline", {"weighted_cents_bp": 100_000 * 7_500}, Decimal("750")),
    # panier moyen: 12,000.00 EUR over 48 orders = 250 EUR
    ("average_order_value", {"revenue_cents": 1_200_000, "orders": 48}, Decimal("250")),
    ("gross_margin", {"revenue_cents": 1_200_000, "cost_cents": 780_000}, Decimal("4200")),
    ("margin_rate", {"revenue_cents": 1_200_000, "cost_cents": 780_000}, Decimal("0.35")),
])
def test_worked_examples(kpi, measures, expected):
    assert value(kpi, measures) == expected


@given(st.integers(0, 10**6), st.integers(0, 10**6))
def test_rates_stay_within_zero_and_one(a, b):
    for kpi, m in [("answer_rate", {"inbound_answered": a, "inbound_missed": b}),
                   ("win_rate", {"deals_won": a, "deals_lost": b})]:
        v = value(kpi, m)
        assert v is None if a + b == 0 else Decimal(0) <= v <= 1


def test_revenue_attainment_is_revenue_over_its_target_with_pace():
    halfway = evaluate(CATALOG["revenue_attainment"], {"revenue_cents": 4_000_000}, None, 0.5,
                       basis_target=Target(Decimal("100000")))
    assert halfway.value == Decimal("0.4")
    assert halfway.pace == Decimal("0.5")
    assert halfway.level == "anticipation"  # 0.4 >= 0.8 x 0.5: behind, not yet alarming
    assert evaluate(CATALOG["revenue_attainment"], {"revenue_cents": 1}, None, 0.5).value is None


@pytest.mark.parametrize("direction, value, pace, alert_at, level", [
    ("up", 100, 100, None, "balance"),
    ("up", 85, 100, None, "anticipation"),
    ("up", 79, 100, None, "alert"),
    ("up", 60, 100, Decimal("0.5"), "anticipation"),
    ("down", 100, 100, None, "balance"),
    ("down", 115, 100, None, "anticipation"),
    ("down", 121, 100, None, "alert"),
])
def test_levels_are_direction_aware(direction, value, pace, alert_at, level):
    assert level_of(direction, Decimal(value), Decimal(pace), alert_at) == level


def test_cumulative_kpis_are_judged_against_pace_and_ratios_against_the_target():
    revenue = evaluate(CATALOG["revenue"], {"revenue_cents": 5_000_000}, Target(Decimal(100_000)), 0.5)
    assert (revenue.pace, revenue.attainment, revenue.level) == (Decimal(50_000), Decimal("0.5"), "balance")
    win = evaluate(CATALOG["win_rate"], {"deals_won": 1, "deals_lost": 3}, Target(Decimal("0.3")), 0.5)
    assert win.pace == Decimal("0.3") and win.level == "anticipation"
