"""Reference-data records on the compacted directory.* topics: names, keys and validation."""

from __future__ import annotations

from typing import Any

import fastjsonschema
import orjson

from salespulse.contracts.schemas import validator
from salespulse.domain.directory import CUSTOMERS, PRODUCTS, REPS

DIRECTORY_TOPICS: dict[str, str] = {
    REPS: "directory.reps", PRODUCTS: "directory.products", CUSTOMERS: "directory.customers",
}
KIND_OF_TOPIC = {topic: kind for kind, topic in DIRECTORY_TOPICS.items()}
SCHEMAS = {REPS: "directory.rep.json", PRODUCTS: "directory.product.json", CUSTOMERS: "directory.customer.json"}
KEY_FIELDS = {REPS: "rep_id", PRODUCTS: "product", CUSTOMERS: "customer_id"}


class InvalidRecord(ValueError):
    """A directory record that does not follow its schema or is filed under another key."""


def check_record(kind: str, key: str, doc: Any) -> dict[str, Any]:
    try:
        validator(SCHEMAS[kind])(doc)
    except fastjsonschema.JsonSchemaException as exc:
        raise InvalidRecord(f"{DIRECTORY_TOPICS[kind]}[{key}]: {getattr(exc, 'message', exc)}") from None
    if doc[KEY_FIELDS[kind]] != key:
        raise InvalidRecord(f"{DIRECTORY_TOPICS[kind]}[{key}]: record of {doc[KEY_FIELDS[kind]]!r} under key {key!r}")
    return doc


def decode_record(topic: str, key: bytes | None, value: bytes | None) -> tuple[str, str, dict[str, Any] | None]:
    """(kind, key, record or None for a tombstone) of a message on a directory topic."""
    kind = KIND_OF_TOPIC[topic]
    if key is None:
        raise InvalidRecord(f"{topic}: a record without a key")
    name = key.decode("utf-8", "replace")
    if value is None:
        return kind, name, None
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise InvalidRecord(f"{topic}[{name}]: not JSON ({exc})") from None
    return kind, name, check_record(kind, name, doc)
