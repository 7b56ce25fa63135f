"""The fast check (schemas compiled to msgspec types) never accepts what its schema refuses, and
accepts the events senders send, so the validator only runs for the others."""

from __future__ import annotations

import fastjsonschema
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from salespulse.contracts.fastcheck import compiled, passes
from salespulse.contracts.schemas import event_type_schemas, validator
from tests.unit.test_bad_input import SAMPLES, broken, json_values

SCHEMAS = ["cloudevent.json", *event_type_schemas().values()]


def schema_accepts(name: str, doc) -> bool:
    try:
        validator(name)(doc)
    except fastjsonschema.JsonSchemaException:
        return False
    return True


def test_every_schema_of_ours_compiles_so_no_valid_event_waits_for_the_validator():
    # activity.logged with its uniqueItems (participants), survey.answered with its if/then
    # (the score's range) included.
    assert [name for name in SCHEMAS if compiled(name) is None] == []


def test_sent_events_pass_the_fast_check_where_their_schema_compiled():
    for doc in SAMPLES:  # 400 events of every type from the simulator's floor
        assert passes("cloudevent.json", doc), doc
        name = f"{doc['type']}.json"
        assert passes(name, doc["data"]) is (compiled(name) is not None), doc


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(broken())
def test_what_the_fast_check_accepts_its_schema_accepts(raw):
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return
    if passes("cloudevent.json", doc):
        assert schema_accepts("cloudevent.json", doc)
    data = doc.get("data") if isinstance(doc, dict) else None
    for name in SCHEMAS[1:]:  # every type's schema, not only the event's own: more near misses
        if passes(name, data):
            assert schema_accepts(name, data), name


@settings(max_examples=300)
@given(st.sampled_from(SCHEMAS), json_values)
def test_what_the_fast_check_accepts_of_any_json_its_schema_accepts(name, doc):
    if passes(name, doc):
        assert schema_accepts(name, doc)


EDGES = [None, True, -1, -0.5, 0, 0.0, 1e-9, 1, 5, 6, 10, 11, 100, 100.5, 10**9, 10**9 + 1, 10**12, 10**12 + 0.5,
         10**13, "", "1", "-1", "0.5", "1234567890123.123456", "12345678901234", "1.1234567", "EUR", "eur",
         "inbound", "won", "x" * 201, "a\u0000b", [], ["a"], ["a", "a"], ["a", "b"], [1, 1], {}, {"a": 1}]


@pytest.mark.parametrize("doc", [next(d for d in SAMPLES if d["type"] == t) for t in sorted({d["type"] for d in SAMPLES})],
                         ids=lambda doc: doc["type"])
def test_no_edge_value_in_any_field_passes_the_fast_check_alone(doc):
    """Each field of one event of each type, and one line of an order, set to values at and
    past every bound the schemas use."""
    name = f"{doc['type']}.json"
    spots = [(doc["data"], field) for field in doc["data"]]
    spots += [(line, field) for line in doc["data"].get("lines", [])[:1] for field in line]
    for parent, field in spots:
        kept = parent[field]
        for value in EDGES:
            parent[field] = value
            if passes(name, doc["data"]):
                assert schema_accepts(name, doc["data"]), (field, value)
        parent[field] = kept


@pytest.mark.parametrize("moment", [
    "2026-11-22 09:14:03+01:00",  # the pattern allows a space, the date-time format does not
    "2026-11-22T09:14:03+01:00\n",  # `$` in a pattern means the very end, as fastjsonschema reads it
    "2026-13-22T09:14:03+01:00",
    "2026-11-22T24:14:03+01:00",
    "2026-11-22T09:14:03",
])
def test_a_date_time_the_schema_refuses_fails_the_fast_check(moment):
    doc = next(d for d in SAMPLES if d["type"] == "call.started")
    data = {**doc["data"], "started_at": moment}
    assert not schema_accepts("call.started.json", data)
    assert not passes("call.started.json", data)


ACTIVITY = next(d["data"] for d in SAMPLES if d["type"] == "activity.logged")
SURVEY = next(d["data"] for d in SAMPLES if d["type"] == "survey.answered")


@settings(max_examples=300)
@given(st.lists(st.sampled_from(["rep-01", "rep-02", "rep-03", "", "x" * 201]), max_size=5) | json_values)
def test_participants_pass_the_fast_check_exactly_when_the_schema_accepts_them(participants):
    """The fast check of activity.logged is exact on its participants: duplicates fail it."""
    data = {**ACTIVITY, "participants": participants}
    assert passes("activity.logged.json", data) is schema_accepts("activity.logged.json", data)


def test_duplicate_participants_fail_the_fast_check():
    data = {**ACTIVITY, "participants": ["rep-01", "rep-02", "rep-01"]}
    assert not schema_accepts("activity.logged.json", data)
    assert not passes("activity.logged.json", data)
    assert passes("activity.logged.json", {**ACTIVITY, "participants": ["rep-01", "rep-02"]})


@pytest.mark.parametrize("kind", ["csat", "nps", "review", "other", 5, None])
@pytest.mark.parametrize("score", [-1, 0, 1, 4, 5, 6, 10, 11, "5", None])  # (5.0, an integer to the
# schema, fails the fast check as any float for an integer does: left to the validator)
def test_a_survey_score_passes_the_fast_check_exactly_when_the_schema_accepts_it_for_its_kind(kind, score):
    """csat and review scores are 1-5, nps 0-10 (the schema's if/then): checked fast, both ways."""
    data = {**SURVEY, "kind": kind, "score": score}
    assert passes("survey.answered.json", data) is schema_accepts("survey.answered.json", data)


def test_a_survey_without_its_kind_fails_the_fast_check():
    data = {k: v for k, v in SURVEY.items() if k != "kind"}
    assert not schema_accepts("survey.answered.json", data)
    assert not passes("survey.answered.json", data)


def test_an_unknown_envelope_attribute_is_left_to_the_validator():
    doc = {**SAMPLES[0], "traceparent": "00-abc"}  # allowed by propertyNames: not checked fast
    assert schema_accepts("cloudevent.json", doc)
    assert not passes("cloudevent.json", doc)


@pytest.mark.parametrize("schema", [
    {"type": "array", "items": [{"type": "string"}]},  # tuple validation
    {"type": "string", "pattern": "\\p{L}+"},  # a pattern Python's re does not know
    {"type": "object", "properties": {"a": True}},
    {"type": "string", "format": "email"},
    {"type": "object", "properties": {"a": {"type": "array", "items": {"type": "integer"}, "uniqueItems": True}}},
    {"type": "object", "properties": {"a": {"type": "array", "items": {"type": "string"}, "uniqueItems": 1}}},
    {"type": "object", "properties": {"a": {"type": "object", "properties": {
        "b": {"type": "array", "items": {"type": "string"}, "uniqueItems": True}}}}},  # not at the top
    {"type": "object", "required": ["k"], "properties": {"k": {"enum": ["x"]}, "n": {"type": "integer"}},
     "allOf": [{"if": {"properties": {"k": {"enum": ["x"]}}}, "then": {"properties": {"n": {"maximum": 1}}}},
               {"if": {"properties": {"k": {"enum": ["x"]}}}, "then": {"properties": {"n": {"minimum": 0}}}}]},
    {"type": "object", "properties": {"k": {"enum": ["x"]}, "n": {"type": "integer"}},  # k not required
     "allOf": [{"if": {"properties": {"k": {"enum": ["x"]}}}, "then": {"properties": {"n": {"maximum": 1}}}}]},
    {"type": "object", "required": ["k"], "properties": {"k": {"enum": ["x"]}, "n": {"type": "string"}},
     "allOf": [{"if": {"properties": {"k": {"enum": ["x"]}}}, "then": {"properties": {"n": {"maxLength": 1}}}}]},
    {"type": "object", "required": ["k"], "properties": {"k": {"enum": ["x"]}, "n": {"type": "integer"}},
     "allOf": [{"if": {"properties": {"k": {"enum": ["x"]}}}, "then": {"required": ["n"]}}]},
    {"type": "object", "required": ["k"], "properties": {"k": {"enum": ["x"]}, "n": {"type": "integer"}},
     "allOf": [{"if": {"properties": {"k": {"enum": ["x"]}}}, "then": {"properties": {"n": {"maximum": True}}}}]},
])
def test_a_schema_the_compiler_cannot_translate_gets_no_fast_check(schema, monkeypatch):
    from salespulse.contracts import fastcheck
    monkeypatch.setattr(fastcheck, "load_schema", lambda name: schema)
    compiled.cache_clear()
    try:
        assert compiled("odd.json") is None
        assert not passes("odd.json", ["x"]) and not passes("odd.json", "x")
    finally:
        compiled.cache_clear()
