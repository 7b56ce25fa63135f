"""Activities, surveys, invoices and spend: what one event contributes, case by case."""

from datetime import datetime, timedelta, timezone
from decimal import Decimal

from salespulse.domain.activities import (
    activity_contributions,
    invoice_contributions,
    next_activity_state,
    next_invoice_state,
    next_survey_state,
    survey_contributions,
)
from salespulse.domain.entities import APPLIED, DUPLICATE, STALE
from salespulse.domain.events import ActivityLogged, InvoiceIssued, PaymentReceived, SurveyAnswered
from salespulse.domain.money import CurrencyConverter

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc)
FX = CurrencyConverter("EUR", {"USD": Decimal("0.5")})


def measures(contributions, at_none=False):
    total = {}
    for c in contributions:
        if (c.at is None) != at_none:
            continue
        for name, v in c.measures:
            total[name] = total.get(name, 0) + v
    return total


def activity(version=1, **kw):
    fields = {"participants": None, "result": None, "notes": None, "next_step": None, **kw}
    return ActivityLogged("a", "rep-1", fields.pop("kind", "visit"), fields.pop("party", "prospect"), T0,
                          T0 + timedelta(hours=version), **fields)


def test_a_visit_alone_with_a_prospect_and_an_incomplete_report():
    state, outcome = next_activity_state(None, "e1", activity())
    assert outcome == APPLIED
    assert measures(activity_contributions(state)) == {
        "activities": 1, "activities_prospect": 1, "meetings_solo": 1, "visits": 1}
    assert dict(activity_contributions(state)[0].dims)["channel"] == "visit"


def test_an_edited_report_replaces_the_activity_and_an_older_version_is_ignored():
    state, _ = next_activity_state(None, "e1", activity())
    edited, _ = next_activity_state(state, "e2", activity(2, participants=("rep-2",), result="order", notes="n",
                                                          next_step="demo"))
    assert measures(activity_contributions(edited)) == {
        "activities": 1, "activities_prospect": 1, "meetings_team": 1, "visits": 1, "activities_converted": 1,
        "reports_complete": 1}
    assert next_activity_state(edited, "e1b", activity(1)) == (edited, STALE)
    assert next_activity_state(edited, "e2", activity(2)) == (edited, DUPLICATE)


def test_an_email_is_an_activity_but_not_a_meeting():
    state, _ = next_activity_state(None, "e1", activity(kind="email", party="customer"))
    assert measures(activity_contributions(state)) == {"activities": 1}


def test_nps_answers_split_into_promoters_passives_and_detractors():
    def nps(score):
        state, _ = next_survey_state(None, "e", SurveyAnswered("s", "c", "nps", score, T0))
        return measures(survey_contributions(state))
    assert nps(9) == {"nps_answers": 1, "nps_promoters": 1}
    assert nps(8) == {"nps_answers": 1}
    assert nps(6) == {"nps_answers": 1, "nps_detractors": 1}
    state, _ = next_survey_state(None, "e1", SurveyAnswered("s", "c", "csat", 4, T0))
    assert next_survey_state(state, "e2", SurveyAnswered("s", "c", "csat", 1, T0)) == (state, DUPLICATE)


def test_an_invoice_is_receivable_until_paid_and_due_from_its_due_date():
    due = T0 + timedelta(days=30)
    # a payment may come first; it waits for its invoice
    state, _ = next_invoice_state(None, "p1", PaymentReceived("pay-1", "i", "c", Decimal("40"), "USD", T0), FX)
    assert invoice_contributions(state) == []
    state, _ = next_invoice_state(state, "i", InvoiceIssued("i", "c", Decimal("100"), "EUR", T0, due), FX)
    assert measures(invoice_contributions(state), at_none=True) == {"receivable_cents": 8_000, "open_invoices": 1}
    assert measures(invoice_contributions(state)) == {
        "invoiced_cents": 10_000, "invoices": 1, "paid_cents": 2_000, "due_cents": 8_000}
    due_part = next(c for c in invoice_contributions(state) if dict(c.measures).get("due_cents"))
    assert due_part.at == due and due_part.periods == ("day", "month", "year")
    resent = next_invoice_state(state, "p1-again", PaymentReceived("pay-1", "i", "c", Decimal("40"), "USD", T0), FX)
    assert resent == (state, DUPLICATE)
    paid, _ = next_invoice_state(state, "p2", PaymentReceived("pay-2", "i", "c", Decimal("80"), "EUR", due), FX)
    assert measures(invoice_contributions(paid), at_none=True) == {}
    assert "due_cents" not in measures(invoice_contributions(paid))
