"""Bad input, fuzzed: every message is either an event the aggregator accounts for, or refused
with a reason. Nothing raises anything else, whatever a sender gets wrong.

Valid events of every type come from the simulator's floor; hypothesis then breaks them the
ways senders do: a field dropped or given a value of the wrong type, huge or negative
numbers, NaN and Infinity, times without an offset or in odd zones, unknown event types,
truncated JSON. The same broken events also check the processor's one-pass decode
(fastcheck.whole): whatever it accepts, orjson, the checks and the validator accept too, and
build into the same event.
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from salespulse.bench.workload import history
from salespulse.contracts.events import (
    ROUTES,
    InvalidEvent,
    _decoded_checked,
    _decoded_whole,
    decode_event,
    parse_event,
)
from salespulse.domain.aggregation import Aggregator, SourceEvent
from salespulse.domain.directory import Directory
from salespulse.domain.money import CurrencyConverter
from salespulse.domain.retention import Retention

TZ = ZoneInfo("Europe/Paris")
SAMPLES = [orjson.loads(value) for _, _, value in
           history(400, datetime(2026, 3, 29, 12, tzinfo=timezone.utc), 3, TZ, seed=3)]
TYPES = sorted({doc["type"] for doc in SAMPLES})

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30)
    | st.sampled_from(["NaN", "-1", "1e309", "2026-11-22T09:00:00", "2026-11-22T09:00:00+14:00",
                       "2026-11-22T09:00:00-12:00", "2026-02-30T09:00:00Z", "", "  ", "EUR", "XXX"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


def paths(doc, prefix=()):
    """Every (path) to a value inside a JSON document."""
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield prefix + (key,)
            yield from paths(value, prefix + (key,))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            yield prefix + (i,)
            yield from paths(value, prefix + (i,))


def perturbed(draw, value):
    """A value of the same kind, bent: what a sender gets almost right."""
    if isinstance(value, bool) or value is None:
        return draw(json_values)
    if isinstance(value, (int, float)):
        return draw(st.sampled_from([-value, value * 10**12, 0, 10**30, -1, 0.1, 1e300]))
    if isinstance(value, str):
        try:
            at = datetime.fromisoformat(value)
        except ValueError:
            return draw(st.sampled_from(["", value * 40, value + "\u0000", "-" + value, "1e9999", value.upper()]))
        zone = draw(st.sampled_from(["Pacific/Kiritimati", "America/Adak", "Asia/Kathmandu", "UTC"]))
        shifted = at.astimezone(ZoneInfo(zone)) if at.tzinfo else at
        return draw(st.sampled_from([shifted.isoformat(), at.replace(tzinfo=None).isoformat(), value[:10],
                                     value.replace("T", " "), "2026-13-01T00:00:00Z", "1900-01-01T00:00:00Z",
                                     "9999-12-31T23:59:59+14:00"]))
    return draw(json_values)


@st.composite
def broken(draw) -> bytes:
    doc = orjson.loads(orjson.dumps(draw(st.sampled_from(SAMPLES))))
    for _ in range(draw(st.integers(1, 3))):
        inside = draw(st.integers(0, 9)) > 0  # mostly the payload, sometimes the envelope
        where = list(paths(doc["data"], ("data",))) if inside and isinstance(doc.get("data"), dict) else []
        where = where or list(paths(doc))
        if not where:
            break
        path = draw(st.sampled_from(where))
        parent = doc
        for step in path[:-1]:
            parent = parent[step]
        action = draw(st.sampled_from(["bend", "bend", "drop", "replace", "type"]))
        if action == "bend":
            parent[path[-1]] = perturbed(draw, parent[path[-1]])
        elif action == "drop":
            parent.pop(path[-1])
        elif action == "replace":
            parent[path[-1]] = draw(json_values)
        else:
            doc["type"] = draw(st.sampled_from(TYPES) | st.text(max_size=20))
    raw = json.dumps(doc).encode()  # the standard library's: integers past 64 bits too
    how = draw(st.sampled_from(["as is", "as is", "as is", "truncated", "nan", "infinity"]))
    if how == "truncated":
        raw = raw[:draw(st.integers(0, max(0, len(raw) - 1)))]
    elif how == "nan":
        raw = raw.replace(b'"amount": "', b'"amount": NaN, "x": "', 1)
    elif how == "infinity":
        raw = raw.replace(b'"quantity": ', b'"quantity": 1e999, "y": ', 1)
    return raw


def aggregator() -> Aggregator:
    return Aggregator(TZ, CurrencyConverter("EUR", {"USD": Decimal("0.9")}), Directory(), 365, Retention({}, 0))


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(broken(), min_size=1, max_size=8), st.randoms(use_true_random=False))
def test_every_broken_event_is_refused_with_a_reason_or_accounted_for(raws, rng: random.Random):
    valid, refused = [], 0
    for offset, raw in enumerate(raws):
        try:
            envelope = decode_event(raw)
        except InvalidEvent as exc:
            assert str(exc), "a refusal names its reason"
            refused += 1
            continue
        valid.append(SourceEvent(ROUTES[envelope.type].topic, rng.randrange(6), offset, envelope))
    result = aggregator().apply({}, valid)
    accounted = sum(result.outcomes.values()) + len(result.rejected)
    assert accounted == len(valid), "each valid event is applied, a duplicate, stale, or dead-lettered"
    assert all(reason for _, reason in result.rejected)
    assert refused + len(valid) == len(raws)


@given(st.sampled_from(SAMPLES))
def test_unbroken_events_all_pass(doc):
    envelope = decode_event(orjson.dumps(doc))
    result = aggregator().apply({}, [SourceEvent(ROUTES[envelope.type].topic, 0, 0, envelope)])
    assert not result.rejected


def decoded_checked(raw: bytes):
    """What orjson, the fast checks and the validator make of `raw`: the event, or None if refused."""
    try:
        return _decoded_checked(raw)
    except InvalidEvent:
        return None


def test_every_valid_event_is_decoded_in_one_pass():
    for doc in SAMPLES:
        raw = orjson.dumps(doc)
        whole = _decoded_whole(raw)
        assert whole is not None, f"{doc['type']} went the long way"
        assert repr(whole) == repr(decoded_checked(raw))


def edited(event_type: str, **data) -> bytes:
    """The first sample of `event_type` (with a participant, for activities), its data changed."""
    doc = next(d for d in SAMPLES if d["type"] == event_type and d["data"].get("participants", [1]))
    return orjson.dumps({**doc, "data": {**doc["data"], **data}})


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(broken())
# What the compiled types cannot say alone (fastcheck's `when` and `unique`), at their edges:
@example(edited("survey.answered", kind="csat", score=6))
@example(edited("survey.answered", kind="review", score=0))
@example(edited("survey.answered", kind="nps", score=10))
@example(edited("activity.logged", participants=["rep-1", "rep-1"]))
@example(edited("activity.logged", participants=["rep-1", "rep-2"]))
def test_the_one_pass_decode_accepts_only_what_the_checks_accept_and_builds_the_same_event(raw):
    whole = _decoded_whole(raw)
    if whole is not None:
        # repr, not ==: an aware datetime equals the same instant in another zone, a Decimal 1.0 equals 1
        assert repr(whole) == repr(decoded_checked(raw))


def numbers_in(doc):
    """The paths to every number of a JSON document, and to every amount given as a decimal string."""
    def numeric(value) -> bool:
        if isinstance(value, str):
            return value.replace(".", "", 1).isdigit()
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    return [path for path in paths(doc) if numeric(_at(doc, path))]


def _at(doc, path):
    for step in path:
        doc = doc[step]
    return doc


NUMBERED = [doc for doc in SAMPLES if numbers_in(doc["data"])]


@given(st.sampled_from(NUMBERED), st.sampled_from([float("nan"), float("inf"), float("-inf")]), st.data())
def test_nan_or_infinity_anywhere_in_an_event_posted_is_refused_by_its_name(doc, bad, data):
    # Python's json, which decodes POST /events bodies, reads NaN and Infinity; JSON has neither,
    # and what Kafka would get (orjson writes them as null) would not be what was sent.
    doc = json.loads(json.dumps(doc))
    path = data.draw(st.sampled_from(numbers_in(doc["data"])))
    _at(doc["data"], path[:-1])[path[-1]] = bad
    with pytest.raises(InvalidEvent) as refused:
        parse_event(doc)
    named = "event.data" + "".join(f"[{step}]" if isinstance(step, int) else f".{step}" for step in path)
    assert str(refused.value).startswith(named + " is not a finite number")
