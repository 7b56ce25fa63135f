"""From provider events to canonical CloudEvents: what every provider module shares. Pure code.

A provider module reads its native payload into `Change`s: what one provider event tells
about one call or deal, in canonical field names (`started_at`, `stage`, `amount`...), with
the provider's own id of the person behind it. Providers often say little at a time (HubSpot
sends one property per event, Salesforce CDC only the changed fields), so a change is merged
into everything already known of that call or deal (`merge`, kept in Redis by the API), and
the canonical event is built from the merged state (`build`), never from the change alone:
a partial update never becomes a deal with a zero amount.

Merging is per field and by the provider's event time, so a late or re-delivered event
cannot undo a newer one, and merging the same change twice changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

CALL, DEAL = "call", "deal"
STAGES = ("lead", "qualified", "proposal", "negotiation", "won", "lost")
CLOSED = ("won", "lost")


class Malformed(ValueError):
    """The payload is not what the provider documents; the message says what is wrong."""


@dataclass(frozen=True, slots=True)
class Change:
    """What one provider event says about one call or deal.

    `fields` hold canonical values as JSON-ready strings and numbers; `people` are the
    provider's ids of who may be the rep, in order of preference, each with the call
    direction it implies when the rep is on that side (None: the event says it).
    """

    native_id: str  # the provider's id of this event: a re-delivery carries the same one
    kind: str  # CALL | DEAL
    entity_id: str  # canonical call_id / deal_id, e.g. "twilio-CA42"
    at: datetime  # the provider's time of the event; orders updates of a field
    fields: Mapping[str, Any] = field(default_factory=dict)
    payload: Any = None  # the provider's own event, kept for a dead letter
    # Values inferred rather than told (a start guessed from an end and a duration): they fill
    # a field nothing has set and give way to any value an event tells, whatever the order.
    guesses: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Ignored:
    """A provider event that carries nothing SalesPulse counts (say why, it is reported)."""

    native_id: str
    reason: str
    payload: Any = None


Parsed = Change | Ignored


@dataclass(frozen=True, slots=True)
class Known:
    """Everything learnt so far of one call or deal, field by field with the time it was set."""

    fields: Mapping[str, Any] = field(default_factory=dict)
    at: Mapping[str, int] = field(default_factory=dict)  # field -> event time, epoch microseconds
    version: int | None = None  # updated_at of the state last built, epoch microseconds

    def to_doc(self) -> dict[str, Any]:
        return {"f": dict(self.fields), "a": dict(self.at), "v": self.version}

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any] | None) -> Known:
        if not doc:
            return cls()
        return cls(doc["f"], doc["a"], doc.get("v"))


GUESSED = 0  # the event time of a guessed value: older than anything told


def micros(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def merge(known: Known, change: Change) -> Known:
    """Apply a change: each field takes the value of the latest event that set it."""
    when = micros(change.at)
    fields, at = dict(known.fields), dict(known.at)
    for name, value in change.fields.items():
        if name not in at or when > at[name] or (when == at[name] and _order(value) > _order(fields[name])):
            fields[name], at[name] = value, when
    for name, value in change.guesses.items():
        if name not in at or (at[name] == GUESSED and _order(value) > _order(fields[name])):
            fields[name], at[name] = value, GUESSED
    if fields == dict(known.fields):
        return Known(fields, at, known.version)  # nothing to build anew; the times still move on
    # The state changed: its version must be newer than the last one built, because the
    # processor ignores a deal.changed that is not newer than what it holds, even when a
    # late event filled in an older field.
    newest = max(max(at.values()), when)
    version = newest if known.version is None else max(newest, known.version + 1000)
    return Known(fields, at, version)


def _order(value: Any) -> str:
    """A total order between two values set at the same instant, so merging commutes."""
    return repr(value)


# --- building canonical events -------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Built:
    """The canonical event the merged state makes, or why there is none yet."""

    event: dict[str, Any] | None = None  # CloudEvent, ready to validate and produce
    missing: tuple[str, ...] = ()  # held: fields the state still lacks
    unmapped: str | None = None  # reported: the id or stage no directory entry or map knows


@dataclass(frozen=True)
class Context:
    """What building needs from outside: who is who, how stages are named, defaults."""

    provider: str
    rep_of: Callable[[str], str | None]  # provider id -> rep_id, through the rep directory
    stages: Mapping[str, str] = field(default_factory=dict)  # provider stage -> canonical stage
    currency: str = "EUR"


def build(known: Known, change: Change, context: Context) -> Built:
    fields = known.fields
    rep_id, direction, unmapped = _rep(fields.get("people") or (), context)
    if unmapped is not None:
        return Built(unmapped=unmapped)
    builder = _build_call if change.kind == CALL else _build_deal
    return builder(known, change, context, rep_id, direction)


def _rep(people: Sequence[Sequence[Any]], context: Context) -> tuple[str | None, str | None, str | None]:
    if not people:
        return None, None, None
    for native, direction in people:
        rep_id = context.rep_of(str(native))
        if rep_id is not None:
            return rep_id, direction, None
    names = " or ".join(repr(str(native)) for native, _ in people)
    return None, None, f"no rep has the {context.provider} id {names}"


def _envelope(change: Change, context: Context, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"specversion": "1.0", "id": f"{context.provider}:{change.native_id}",
            "source": f"webhooks/{context.provider}", "type": event_type, "time": change.at.isoformat(),
            "datacontenttype": "application/json",
            "data": {k: v for k, v in data.items() if v is not None}}


def _build_call(known: Known, change: Change, context: Context, rep_id: str | None,
                direction: str | None) -> Built:
    f = known.fields
    direction = f.get("direction") or direction
    missing = tuple(name for name, value in (("rep", rep_id), ("direction", direction),
                                               ("started_at", f.get("started_at"))) if value is None)
    if f.get("ended_at") is not None and f.get("status") is None:
        missing += ("status",)
    if missing:
        return Built(missing=missing)
    data = {"call_id": change.entity_id, "rep_id": rep_id, "direction": direction,
            "started_at": f["started_at"], "queue": f.get("queue"), "customer_id": f.get("customer_id")}
    if f.get("ended_at") is not None:
        answered_at = f.get("answered_at") if f["status"] == "answered" else None
        data.update(status=f["status"], ended_at=f["ended_at"], answered_at=answered_at)
        return Built(_envelope(change, context, "call.ended", data))
    if f.get("answered_at") is not None:
        data.update(answered_at=f["answered_at"])
        return Built(_envelope(change, context, "call.answered", data))
    return Built(_envelope(change, context, "call.started", data))


def _build_deal(known: Known, change: Change, context: Context, rep_id: str | None,
                direction: str | None) -> Built:
    f = known.fields
    stage = f.get("stage")
    if stage is not None and stage not in STAGES:
        mapped = context.stages.get(str(stage))
        if mapped is None:
            return Built(unmapped=f"{context.provider} stage {stage!r} is not in WEBHOOK_STAGES")
        stage = mapped
    missing = tuple(name for name, value in (("rep", rep_id), ("stage", stage), ("amount", f.get("amount")))
                    if value is None)
    if missing:
        return Built(missing=missing)
    created_at = f.get("created_at") or _iso(min(t for t in known.at.values() if t != GUESSED))
    closed_at = (f.get("closed_at") or _iso(known.at["stage"])) if stage in CLOSED else None
    data = {"deal_id": change.entity_id, "rep_id": rep_id, "stage": stage, "amount": f["amount"],
            "currency": f.get("currency") or context.currency, "created_at": created_at,
            "updated_at": _iso(known.version), "probability": f.get("probability"),
            "product": f.get("product"), "customer_id": f.get("customer_id"), "source": f.get("source"),
            "loss_reason": f.get("loss_reason") if stage == "lost" else None, "closed_at": closed_at}
    return Built(_envelope(change, context, "deal.changed", data))


# --- helpers for provider modules --------------------------------------------------------

def _iso(epoch_micros: int) -> str:
    return datetime.fromtimestamp(epoch_micros / 1_000_000, timezone.utc).isoformat()


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(timezone.utc).isoformat()


SCALAR = (str, int, float)


def require(doc: Any, name: str, where: str, kind: type | tuple[type, ...] = SCALAR) -> Any:
    """`doc[name]`, present, not empty and of `kind` (a text, a number by default: never an
    object, a list or a boolean, which the code after would take for something else)."""
    if not isinstance(doc, Mapping):
        raise Malformed(f"{where}: an object was expected")
    value = doc.get(name)
    if value is None or value == "":
        raise Malformed(f"{where}: {name} is missing")
    if not isinstance(value, kind) or isinstance(value, bool):
        raise Malformed(f"{where}: {name} is not {_kind_name(kind)}: {value!r:.80}")
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    return "a text" if kind is str else "a text or a number"


def epoch(value: Any, where: str, unit: float = 1.0) -> datetime:
    """A provider's epoch number (seconds; unit=1000 for milliseconds) as an aware UTC time."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise Malformed(f"{where}: {value!r} is not an epoch time") from None
    if not 0 < number / unit < 32503680000:  # years 1970..3000
        raise Malformed(f"{where}: {value!r} is not an epoch time")
    return datetime.fromtimestamp(number / unit, timezone.utc)


def instant(value: Any, where: str) -> datetime:
    """An ISO 8601 time with an offset, or an epoch in milliseconds (as Salesforce and HubSpot send)."""
    if isinstance(value, (int, float)) or (isinstance(value, str) and value.isdigit()):
        return epoch(value, where, unit=1000)
    if not isinstance(value, str):
        raise Malformed(f"{where}: {value!r} is not a time")
    try:
        moment = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        raise Malformed(f"{where}: {value!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise Malformed(f"{where}: {value!r} has no UTC offset")
    return moment


def amount(value: Any, where: str) -> str:
    """A money amount as a decimal string; an emptied amount is 0 (the CRM holds none)."""
    if value is None or value == "":
        return "0"
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise Malformed(f"{where}: {value!r} is not an amount") from None
    if not number.is_finite() or number < 0 or number >= Decimal(10) ** 13:
        raise Malformed(f"{where}: {value!r} is not an amount SalesPulse counts (0 to 10^13)")
    return format(number.quantize(Decimal("0.000001")).normalize(), "f")


def ratio(value: Any, where: str, scale: float = 1.0) -> float | None:
    """A probability as 0..1 (`scale` 100 for a percentage); None when not given."""
    if value is None or value == "":
        return None
    try:
        number = float(value) / scale
    except (TypeError, ValueError):
        raise Malformed(f"{where}: {value!r} is not a number") from None
    if not 0 <= number <= 1:
        raise Malformed(f"{where}: {value!r} is not a probability")
    return number


def seconds(value: Any, where: str) -> timedelta:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise Malformed(f"{where}: {value!r} is not a number of seconds") from None
    if number < 0:
        raise Malformed(f"{where}: {value!r} is negative")
    return timedelta(seconds=number)
