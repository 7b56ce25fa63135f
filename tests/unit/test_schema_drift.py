"""schemas/ is the source of truth: the domain event classes must match it field for field."""

import dataclasses
import types
import typing

import pytest

from salespulse.contracts.schemas import event_type_schemas, load_schema
from salespulse.domain.events import EVENT_CLASSES, OrderLine


def optional(field) -> bool:
    hint = field.type
    return "None" in str(hint)


def check(cls, schema):
    fields = {f.name: f for f in dataclasses.fields(cls)}
    assert set(fields) == set(schema["properties"]), f"{cls.__name__} fields differ from its schema"
    required = set(schema.get("required", []))
    for name, field in fields.items():
        assert optional(field) == (name not in required), f"{cls.__name__}.{name} optionality drifted"


@pytest.mark.parametrize("event_type", sorted(EVENT_CLASSES))
def test_every_event_class_matches_its_schema(event_type):
    check(EVENT_CLASSES[event_type], load_schema(f"{event_type}.json"))


def test_every_schema_has_an_event_class():
    assert set(event_type_schemas()) == set(EVENT_CLASSES)


def test_order_lines_match_the_schema():
    check(OrderLine, load_schema("order.placed.json")["properties"]["lines"]["items"])
