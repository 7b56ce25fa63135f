from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from salespulse.domain.kpis import CATALOG, KPIS_BY_SOURCE, Target, evaluate, level_of


def value(kpi_id, measures, **kw):
    return evaluate(CATALOG[kpi_id], measures, kw.pop("target", None), kw.pop("progress", 1.0), **kw).value


def test_every_kpi_has_sources_units_direction_and_dimensions():
    assert {k.id for v in KPIS_BY_SOURCE.values() for k in v} == set(CATALOG)
    for kpi in CATALOG.values():
        assert kpi.sources and all(kpi in KPIS_BY_SOURCE[s] for s in kpi.sources)
        assert kpi.unit in {"count", "currency", "ratio", "seconds", "days", "score"}
        assert kpi.direction in {"up", "down"}
        assert kpi.dimensions, kpi.id


# Means and ratios have nothing to divide by; the gap to a target needs a target.
UNDEFINED_WHEN_EMPTY = {"average_talk_time", "average_won_deal_size", "average_order_value", "sales_cycle_days",
                        "customer_lifetime_days", "csat", "nps", "review_rating", "cac", "deals_needed_to_target"}


def test_the_empty_case_counts_zero_and_leaves_ratios_undefined():
    for kpi in CATALOG.values():
        v = value(kpi.id, {})
        if kpi.unit == "ratio" or kpi.id in UNDEFINED_WHEN_EMPTY:
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
    # KPIS.md, seed 003: 5 of 50 customers bought more than once -> upsell rate 10 %
    ("upsell_rate", {"repeat_buyers": 5, "buyers": 50}, Decimal("0.1")),
    # seed 003: 10 deals won of 50 worked -> close rate 20 % (worked: created before the period's
    # end, 80, minus closed before its start, 30)
    ("close_rate", {"deals_won": 10, "created_before_end": 80, "closed_before_start": 30}, Decimal("0.2")),
    # seed 003: 99 customers at the start, 10 lost and 6 won: churn is 10 / 99 ...
    ("churn_rate", {"losses_in_period": 10, "activations_before_period_start": 120, "losses_before_period_start": 21},
     Decimal(10) / 99),
    ("retention_rate", {"losses_in_period": 10, "activations_before_period_start": 120,
                        "losses_before_period_start": 21}, 1 - Decimal(10) / 99),
    # ... and what the seed calls churn, (99 - 95) / 99 = 4.04 %, is the net change
    ("net_customer_change", {"activations_before_period_start": 120, "losses_before_period_start": 21,
                             "activations_before_period_end": 126, "losses_before_period_end": 31}, Decimal(4) / 99),
    ("active_customers", {"activations_before_tomorrow": 126, "losses_before_tomorrow": 31}, 95),
    # seed 004: 10,000 EUR of acquisition spend for 50 new customers -> CAC 200 EUR
    ("cac", {"spend_cents": 1_000_000, "new_customers": 50}, Decimal("200")),
    # NPS: 6 promoters, 3 passives, 1 detractor of 10 answers -> 60 - 10 = 50
    ("nps", {"nps_answers": 10, "nps_promoters": 6, "nps_detractors": 1}, Decimal(50)),
    ("csat", {"csat_answers": 4, "csat_points": 17}, Decimal("4.25")),
    ("review_rating", {"reviews": 2, "review_points": 9}, Decimal("4.5")),
    # 3 lost customers who had bought for 100, 200 and 300 days
    ("customer_lifetime_days", {"losses_in_period": 3, "lifetime_in_period": 600 * 86_400}, Decimal(200)),
    ("sales_cycle_days", {"deals_won": 2, "won_cycle_s": 45 * 86_400}, Decimal("22.5")),
    ("lead_conversion_rate", {"leads": 40, "leads_converted": 6}, Decimal("0.15")),
    ("lead_qualification_rate", {"leads": 40, "leads_qualified": 30}, Decimal("0.75")),
    ("hunter_ratio", {"activities": 8, "activities_prospect": 2}, Decimal("0.25")),
    ("visits_per_order", {"visits": 12, "orders": 4}, Decimal(3)),
    ("report_completeness", {"activities": 8, "reports_complete": 6}, Decimal("0.75")),
    ("interactions", {"activities": 8, "calls_outbound": 5, "inbound_answered": 3, "inbound_missed": 4}, 16),
    ("outstanding_receivables", {"receivable_cents": 123_456}, Decimal("1234.56")),
    ("overdue_receivables", {"overdue": 50_000}, Decimal(500)),
])
def test_worked_examples(kpi, measures, expected):
    assert value(kpi, measures) == expected


def test_deals_needed_to_target_round_up_and_stop_at_zero():
    """seed 000: 30,000 EUR still to sell at 7,000 EUR a won deal -> 5 more deals (4.3 rounded up)."""
    kpi, m = CATALOG["deals_needed_to_target"], {"revenue_cents": 7_000_000, "deals_won": 3, "won_cents": 2_100_000}
    assert evaluate(kpi, m, None, 0.5, basis_target=Target(Decimal(100_000))).value == 5
    assert evaluate(kpi, m, None, 0.5, basis_target=Target(Decimal(60_000))).value == 0
    assert evaluate(kpi, m, None, 0.5).value is None  # no revenue target: nothing to count towards
    assert evaluate(kpi, {"revenue_cents": 1}, None, 0.5, basis_target=Target(Decimal(1))).value is None


def test_revenue_forecast_projects_the_run_rate_to_the_period_end():
    kpi = CATALOG["revenue_forecast"]
    assert evaluate(kpi, {"revenue_cents": 3_000_000}, Target(Decimal(100_000)), 0.25).value == 120_000
    assert evaluate(kpi, {"revenue_cents": 3_000_000}, None, 0.0).value is None  # the period has not begun
    forecast = evaluate(kpi, {"revenue_cents": 3_000_000}, Target(Decimal(150_000)), 0.25)
    assert forecast.pace == 150_000 and forecast.level == "anticipation"  # the run rate misses it


def test_revenue_share_is_the_row_over_the_company_total():
    kpi = CATALOG["revenue_share_by_product"]
    assert evaluate(kpi, {"revenue_cents": 250}, None, 1.0, total={"revenue_cents": 1000}).value == Decimal("0.25")
    assert evaluate(kpi, {"revenue_cents": 0}, None, 1.0, total={}).value is None


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


def test_the_readme_documents_every_kpi_with_its_unit_and_dimensions():
    from salespulse.settings import REPO_ROOT

    readme = (REPO_ROOT / "README.md").read_text()
    for kpi in CATALOG.values():
        row = f"| `{kpi.id}` | {kpi.unit} | {kpi.direction} | {', '.join(kpi.dimensions)} |"
        assert row in readme, f"README's KPI table lacks or misstates {kpi.id}"
