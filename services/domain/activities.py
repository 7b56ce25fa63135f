"""Activities, survey answers, invoices and acquisition spend as state, and what each contributes.

Same contract as entities.py: an event moves a state, and the measures are the difference
between what the new and the old state contribute.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from salespulse.domain.entities import (
    APPLIED,
    DUPLICATE,
    STALE,
    UNKNOWN,
    WINDOW_PERIODS,
    Contribution,
    Dims,
    remember,
    rep_dims,
)
from salespulse.domain.events import (
    ActivityLogged,
    InvoiceIssued,
    PaymentReceived,
    SpendRecorded,
    SurveyAnswered,
)
from salespulse.domain.money import CurrencyConverter
from salespulse.domain.records import evolve

MEETING_KINDS = frozenset({"meeting", "visit"})
CONVERTING_RESULTS = frozenset({"deal", "order"})
NPS_PROMOTER, NPS_DETRACTOR = 9, 6  # 9-10 promote, 0-6 detract


def _customer_dims(customer_id: str | None, sector: str | None) -> Dims:
    return (("customer", customer_id or UNKNOWN), ("sector", sector or UNKNOWN))


# --- activities (meetings, visits, emails) ----------------------------------------------

@dataclass(frozen=True, slots=True)
class ActivityState:
    rep_id: str
    kind: str
    party: str
    occurred_at: datetime
    updated_at: datetime
    customer_id: str | None = None
    with_others: bool = False  # other reps took part
    converted: bool = False  # a deal or an order followed
    report_complete: bool = False
    seen: tuple[str, ...] = ()
    team: str | None = None
    region: str | None = None
    sector: str | None = None


def next_activity_state(state: ActivityState | None, event_id: str, event: ActivityLogged):
    """An activity.logged carries the whole activity; a newer version (an edited report) replaces it."""
    if state is not None and event_id in state.seen:
        return state, DUPLICATE
    if state is not None and event.updated_at <= state.updated_at:
        return state, STALE
    new = ActivityState(
        rep_id=event.rep_id, kind=event.kind, party=event.party, occurred_at=event.occurred_at,
        updated_at=event.updated_at,
        customer_id=event.customer_id, with_others=bool(event.participants),
        converted=event.result in CONVERTING_RESULTS,
        report_complete=bool(event.notes and event.next_step and event.result),
        seen=remember(state.seen if state else (), event_id),
    )
    return new, APPLIED


def activity_contributions(state: ActivityState | None) -> list[Contribution]:
    if state is None:
        return []
    measures = {"activities": 1}
    if state.party == "prospect":
        measures["activities_prospect"] = 1
    if state.kind in MEETING_KINDS:
        measures["meetings_team" if state.with_others else "meetings_solo"] = 1
    if state.kind == "visit":
        measures["visits"] = 1
    if state.converted:
        measures["activities_converted"] = 1
    if state.report_complete:
        measures["reports_complete"] = 1
    dims = rep_dims(state.rep_id, state.team, state.region) + _customer_dims(state.customer_id, state.sector) + (
        ("channel", state.kind),)  # for activities, the channel is the sales method
    return [Contribution(state.occurred_at, dims, tuple(measures.items()))]


# --- survey answers ----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SurveyState:
    customer_id: str
    kind: str
    score: int
    answered_at: datetime
    rep_id: str | None = None
    seen: tuple[str, ...] = ()
    team: str | None = None
    region: str | None = None
    sector: str | None = None


def next_survey_state(state: SurveyState | None, event_id: str, event: SurveyAnswered):
    """A survey is answered once: another answer under the same survey_id is a duplicate."""
    if state is not None:
        return state, DUPLICATE
    return SurveyState(event.customer_id, event.kind, event.score, event.answered_at, event.rep_id,
                       seen=(event_id,)), APPLIED


def survey_contributions(state: SurveyState | None) -> list[Contribution]:
    if state is None:
        return []
    if state.kind == "csat":
        measures = {"csat_answers": 1, "csat_points": state.score}
    elif state.kind == "nps":
        measures = {"nps_answers": 1}
        if state.score >= NPS_PROMOTER:
            measures["nps_promoters"] = 1
        elif state.score <= NPS_DETRACTOR:
            measures["nps_detractors"] = 1
    else:
        measures = {"reviews": 1, "review_points": state.score}
    dims = rep_dims(state.rep_id or UNKNOWN, state.team, state.region) + _customer_dims(state.customer_id, state.sector)
    return [Contribution(state.answered_at, dims, tuple(measures.items()))]


# --- invoices and payments ---------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Payment:
    payment_id: str
    cents: int
    received_at: datetime


@dataclass(frozen=True, slots=True)
class InvoiceState:
    customer_id: str
    issued_at: datetime | None = None  # None: only payments seen so far
    due_at: datetime | None = None
    amount_cents: int = 0
    rep_id: str | None = None
    payments: tuple[Payment, ...] = ()
    seen: tuple[str, ...] = ()
    team: str | None = None
    region: str | None = None
    sector: str | None = None

    @property
    def outstanding_cents(self) -> int:
        return self.amount_cents - sum(p.cents for p in self.payments)


def next_invoice_state(state: InvoiceState | None, event_id: str, event: InvoiceIssued | PaymentReceived,
                       converter: CurrencyConverter):
    """An invoice is issued once and paid by any number of payments, in any order."""
    current = state or InvoiceState(event.customer_id)
    if event_id in current.seen:
        return state, DUPLICATE
    if isinstance(event, InvoiceIssued):
        if current.issued_at is not None:
            return state, DUPLICATE  # issued again under another event id
        new = evolve(current, customer_id=event.customer_id, issued_at=event.issued_at, due_at=event.due_at,
                      amount_cents=converter.cents(event.amount, event.currency), rep_id=event.rep_id)
    else:
        if any(p.payment_id == event.payment_id for p in current.payments):
            return state, DUPLICATE
        payment = Payment(event.payment_id, converter.cents(event.amount, event.currency), event.received_at)
        new = evolve(current, payments=current.payments + (payment,))
    return evolve(new, seen=remember(current.seen, event_id)), APPLIED


def invoice_contributions(state: InvoiceState | None) -> list[Contribution]:
    """Invoiced and paid amounts in their periods; what is still owed now, and from when it is due.

    Payments count once their invoice is known: a payment for an unknown invoice waits for it.
    `due_cents`, booked on the due date, lets a window sum the part that is overdue today.
    """
    if state is None or state.issued_at is None:
        return []
    dims = rep_dims(state.rep_id or UNKNOWN, state.team, state.region) + _customer_dims(state.customer_id, state.sector)
    out = [Contribution(state.issued_at, dims, (("invoiced_cents", state.amount_cents), ("invoices", 1)))]
    out += [Contribution(p.received_at, dims, (("paid_cents", p.cents),)) for p in state.payments]
    owed = state.outstanding_cents
    if owed:
        out.append(Contribution(None, dims, (("receivable_cents", owed), ("open_invoices", 1 if owed > 0 else 0))))
        if owed > 0:
            out.append(Contribution(state.due_at, dims, (("due_cents", owed),), WINDOW_PERIODS))
    return out


# --- acquisition spend -------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SpendState:
    campaign: str
    cents: int
    spent_at: datetime
    source: str | None = None
    seen: tuple[str, ...] = ()


def next_spend_state(state: SpendState | None, event_id: str, event: SpendRecorded, converter: CurrencyConverter):
    """Spend is recorded once per spend_id."""
    if state is not None:
        return state, DUPLICATE
    return SpendState(event.campaign, converter.cents(event.amount, event.currency), event.spent_at, event.source,
                      seen=(event_id,)), APPLIED


def spend_contributions(state: SpendState | None) -> list[Contribution]:
    if state is None:
        return []
    dims = (("all", "all"), ("source", state.source or UNKNOWN))
    return [Contribution(state.spent_at, dims, (("spend_cents", state.cents),))]
