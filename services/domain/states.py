"""Every kind of entity state: its transitions, its contributions, its directory attributes and
its storage form, looked up by kind so the aggregator treats them alike."""

from __future__ import annotations

from dataclasses import dataclass, fields, is_dataclass
from datetime import datetime
from itertools import compress, count
from operator import is_not
from typing import Any, Callable

from salespulse.domain import activities, customers, entities
from salespulse.domain.directory import Directory
from salespulse.domain.records import evolve


@dataclass(frozen=True)
class Kind:
    """How one kind of entity moves and what it contributes."""

    state: type
    transition: Callable  # (state, event_id, event, converter) -> (state, outcome)
    contributions: Callable  # (state) -> list[Contribution]


KINDS: dict[str, Kind] = {
    "call": Kind(entities.CallState, lambda s, i, e, fx: entities.next_call_state(s, i, e),
                 entities.call_contributions),
    "deal": Kind(entities.DealState, entities.next_deal_state, entities.deal_contributions),
    "order": Kind(entities.OrderState, entities.next_order_state, entities.order_contributions),
    "activity": Kind(activities.ActivityState, lambda s, i, e, fx: activities.next_activity_state(s, i, e),
                     activities.activity_contributions),
    "survey": Kind(activities.SurveyState, lambda s, i, e, fx: activities.next_survey_state(s, i, e),
                   activities.survey_contributions),
    "invoice": Kind(activities.InvoiceState, activities.next_invoice_state, activities.invoice_contributions),
    "spend": Kind(activities.SpendState, activities.next_spend_state, activities.spend_contributions),
}


def enrich(state, directory: Directory):
    """The state with the team, region, sector and categories the directory gives it now.

    Called after every applied event, so an entity's next event also corrects an attribution
    made before its directory record arrived. The rep's team is taken at the entity's own
    business time: when the call started, when the deal last changed, when the order was
    placed, when the activity took place, when the survey was answered, when the invoice was issued.
    """
    if isinstance(state, entities.CallState):
        team, region = directory.team_region(state.rep_id, state.started_at)
        return _with(state, team=team, region=region)
    if isinstance(state, entities.DealState):
        team, region = directory.team_region(state.rep_id, state.updated_at)
        sector = directory.sector(state.customer_id) if state.customer_id else None  # None: `unknown`
        return _with(state, team=team, region=region, sector=sector)
    if isinstance(state, entities.OrderState) and state.placed_at is not None and state.rep_id is not None:
        team, region = directory.team_region(state.rep_id, state.placed_at)
        products = tuple(_with(p, category=directory.category(p.product)) for p in state.products)
        return _with(state, team=team, region=region, sector=directory.sector(state.customer_id),
                     products=products)
    if isinstance(state, activities.ActivityState):
        team, region = directory.team_region(state.rep_id, state.occurred_at)
        sector = directory.sector(state.customer_id) if state.customer_id else None
        return _with(state, team=team, region=region, sector=sector)
    if isinstance(state, (activities.SurveyState, activities.InvoiceState)):
        moment = state.answered_at if isinstance(state, activities.SurveyState) else state.issued_at
        team, region = (directory.team_region(state.rep_id, moment) if state.rep_id and moment
                        else (None, None))
        return _with(state, team=team, region=region, sector=directory.sector(state.customer_id))
    return state


def enrich_customer(customer_id: str, state: customers.CustomerState, directory: Directory):
    return _with(state, sector=directory.sector(customer_id))


def _with(state, **attributes):
    """`state` with `attributes`; the same object when it has them already (the usual case:
    a rebuilt frozen record per event cost a sixth of a batch)."""
    for name, value in attributes.items():
        if getattr(state, name) != value:
            return evolve(state, **attributes)
    return state


# --- storage form ------------------------------------------------------------------------

STATE_CLASSES: dict[str, type] = {name: kind.state for name, kind in KINDS.items()}
STATE_CLASSES["customer"] = customers.CustomerState
_KIND_OF = {cls: kind for kind, cls in STATE_CLASSES.items()}


def kind_of(state) -> str:
    """The storage kind of a state (`call`, `deal`, ..., `customer`)."""
    return _KIND_OF[type(state)]
# Fields holding small records (_ONE) or tuples of them (_NESTED), stored as lists of field values.
_NESTED: dict[str, type] = {
    "products": entities.ProductLine, "payments": activities.Payment, "orders": customers.CustomerOrder,
    "buckets": customers.FrozenBucket,
}
_ONE: dict[str, type] = {"history": customers.CustomerHistory}
_RECORDS = frozenset((*_NESTED.values(), *_ONE.values()))


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}  # a record class's field names, in order


def _field_names(cls: type) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(cls))
    return names


# Nested records (a customer's orders, an order's lines) encoded, by identity: records are
# immutable and a customer's next state keeps its orders, so a state of 200 orders written
# again after one more order encodes one. Forgotten at once when full.
_ENCODED: dict[int, tuple[Any, list]] = {}
ENCODED_CACHE_SIZE = 200_000


def _encode(value: Any) -> Any:
    """Runs for every field of every entity row a batch writes: types are tested cheapest first."""
    if value is None or type(value) in (str, int, bool):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple):
        if value and type(value[0]) in _RECORDS:
            return _encode_records(value)
        return [_encode(v) for v in value]
    if type(value) in _RECORDS or is_dataclass(value):
        return _encode_record(value)
    return value


def _encode_record(value: Any) -> list:
    cached = _ENCODED.get(id(value))
    if cached is not None and cached[0] is value:
        return cached[1]
    encoded = [_encode(getattr(value, name)) for name in _field_names(type(value))]
    if len(_ENCODED) >= ENCODED_CACHE_SIZE:
        _ENCODED.clear()
    _ENCODED[id(value)] = (value, encoded)  # keeps `value` alive, so its id is not reused meanwhile
    return encoded


# Long tuples of records (a customer's orders) as last encoded, by the identity of their first
# record: a customer's next orders are those with one order put in or taken out (a new, late or
# cancelled order), and are encoded from them with a few list operations at C speed rather than
# record by record (timed alone: 0.3-0.45 us a record, 4 to 9 times the splice). Forgotten at once
# when full.
_RUNS: dict[int, tuple[tuple, list]] = {}
RUNS_CACHE_SIZE = 4096  # customers (as aggregation.CUSTOMER_CACHE_SIZE): ~3.5 KB each at 210 orders
RUN_LENGTH = 16  # shorter tuples (an order's lines) are encoded record by record


def _encode_records(records: tuple) -> list:
    """A tuple of records, from the encoding of the tuple it differs from by one record if there
    is one (_RUNS); else record by record, the cache looked up inline."""
    if len(records) < RUN_LENGTH:
        return _records_one_by_one(records)
    run = _RUNS.get(id(records[0]))
    out = None if run is None else _respliced(run[0], run[1], records)
    if out is None:
        out = _records_one_by_one(records)
    if len(_RUNS) >= RUNS_CACHE_SIZE:
        _RUNS.clear()
    _RUNS[id(records[0])] = (records, out)  # keeps the tuple alive, so the id is not reused meanwhile
    return out


def _respliced(before: tuple, encoded: list, records: tuple) -> list | None:
    """The encoding of `records` from `encoded`, that of `before`, if the two tuples differ by
    one record put in or taken out; else None. The encoded lists are never changed in place."""
    if before is records:
        return encoded
    n = len(before)
    if abs(n - len(records)) != 1 or before[0] is not records[0]:
        return None
    at = next(compress(count(), map(is_not, before, records)), min(n, len(records)))  # first difference
    if len(records) > n:
        if before[at:] == records[at + 1:]:
            return encoded[:at] + [_encode_record(records[at])] + encoded[at:]
    elif before[at + 1:] == records[at:]:
        return encoded[:at] + encoded[at + 1:]
    return None


def _records_one_by_one(records: tuple) -> list:
    """A call per record cost most of writing a customer: the cache is looked up inline."""
    get = _ENCODED.get
    out = []
    for record in records:
        cached = get(id(record))
        out.append(cached[1] if cached is not None and cached[0] is record else _encode_record(record))
    return out


def _decode(name: str, value: Any) -> Any:
    """A field's value from its stored form (every datetime field's name ends in `_at`)."""
    if value is None:
        return None
    if name.endswith("_at"):
        return (tuple(datetime.fromisoformat(v) for v in value) if isinstance(value, list)
                else datetime.fromisoformat(value))
    if name in _ONE:
        return _record(_ONE[name], value)
    if name in _NESTED:
        return tuple(_record(_NESTED[name], v) for v in value)
    if isinstance(value, list):
        return tuple(value)
    return value


def _record(cls: type, values: list) -> Any:
    return cls(**{f.name: _decode(f.name, v) for f, v in zip(fields(cls), values)})


def state_to_json(state) -> dict[str, Any]:
    """A JSON-ready dict; datetimes as ISO strings (every datetime field ends in `_at`)."""
    out: dict[str, Any] = {"_kind": kind_of(state)}
    for name in _field_names(type(state)):
        out[name] = _encode(getattr(state, name))
    return out


def state_from_json(doc: dict[str, Any]):
    cls = STATE_CLASSES[doc["_kind"]]
    return cls(**{f.name: _decode(f.name, doc[f.name]) for f in fields(cls) if f.name in doc})
