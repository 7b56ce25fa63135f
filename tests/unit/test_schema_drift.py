"""schemas/ is the source of truth: the domain event classes must match it field for field."""

import dataclasses
import random
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from salespulse.contracts.directory import InvalidRecord, check_record
from salespulse.contracts.schemas import event_type_schemas, load_schema
from salespulse.domain.directory import CUSTOMERS, PRODUCTS, REPS, Assignment, RepRecord
from salespulse.domain.events import EVENT_CLASSES, OrderLine
from salespulse.simulator.world import World


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


@pytest.mark.parametrize("kind", [REPS, PRODUCTS, CUSTOMERS])
def test_directory_records_match_their_schemas(kind):
    """What the domain writes (and the simulator seeds) is what schemas/directory.*.json accept."""
    world = World(random.Random(1), ZoneInfo("Europe/Paris"), reps=5, customers=5)
    for key, doc in world.directory_records()[kind]:
        assert check_record(kind, key, doc) == doc
    moved = RepRecord("r", (Assignment("a", "b"),)).assign("c", "d", datetime(2026, 1, 1, tzinfo=timezone.utc))
    assert check_record(REPS, "r", moved.to_doc())


def test_directory_records_under_another_key_or_off_schema_are_refused():
    with pytest.raises(InvalidRecord, match="under key"):
        check_record(PRODUCTS, "x", {"product": "y", "category": "c"})
    with pytest.raises(InvalidRecord, match="additional properties|must not contain"):
        check_record(CUSTOMERS, "c", {"customer_id": "c", "sector": "s", "colour": "red"})
    with pytest.raises(InvalidRecord, match="since"):
        check_record(REPS, "r", {"rep_id": "r", "assignments": [{"team": "a", "region": "b", "since": "yesterday"}]})


def test_every_simulated_event_is_valid_and_goes_where_its_route_says():
    """A simulated day yields every event type, each accepted by its schema, on its topic and key."""
    from salespulse.contracts.events import parse_event, route_of

    world = World(random.Random(7), ZoneInfo("Europe/Paris"), reps=6, customers=20)
    now, seen = datetime(2026, 11, 23, 8, 0, tzinfo=timezone.utc), set()
    for _ in range(3000):
        world.start_something(now)
        now += timedelta(seconds=20)
        for topic, key, doc in world.due(now):
            envelope = parse_event(doc)
            assert route_of(envelope) == (topic, key), doc
            seen.add(envelope.type)
    assert seen == set(EVENT_CLASSES)
