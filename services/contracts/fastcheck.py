"""A fast first check of parsed events against schemas/, in C: the schemas compiled to msgspec types.

The fastjsonschema validators give the messages senders read, but took two thirds of the time
a worker spent decoding an event (about 20 us of 30). The same schemas compiled to msgspec
types check a valid event in a few microseconds. The check is used one way only: when it passes,
the schema's validator would pass too (the compiled types are never looser than the schema;
tests/unit/test_fastcheck.py fuzzes both); when it fails, the validator decides and explains.
A schema using a keyword this compiler does not know gets no fast check (`compiled` is None),
so its events always go through the validator.

Two keywords msgspec types cannot say are checked beside the conversion, where the schemas
use them: `uniqueItems` on an array of strings that is a property of the event's data
(activity.logged's participants), and one `allOf: [{if, then}]` at the top whose `if` picks
by the values of required string properties and whose `then` narrows numbers' bounds
(survey.answered: a csat or review score is 1-5, an nps one 0-10), compiled to a second type
with the bounds narrowed. Before them the validator checked those two types' events, a tenth
of all, at some 20 us each, and its uniqueItems code left a reference cycle per event.

`whole` goes one step further for the processor: the compiled types of the envelope and of each
event type's data in one tagged union, decoded straight from the message's JSON, so a valid
event is parsed and checked in one pass and built from the structs (contracts.events). `passes`
checks documents orjson parsed: the API's, and what `whole` refuses, before the validator says why.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Annotated, Any, Literal, NamedTuple, Union, get_args, get_origin

import msgspec
from fastjsonschema.draft04 import DOLLAR_FINDER, CodeGeneratorDraft04
from msgspec import UNSET, Meta, UnsetType

from salespulse.contracts.schemas import SCHEMA_BASE, load_schema

# Keywords that only document a schema.
_ANNOTATIONS = {"$schema", "$id", "title", "description", "examples", "default", "$comment"}
_STRING = {"type", "minLength", "maxLength", "pattern", "format"}
_NUMBER = {"type", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}
_ARRAY = {"type", "items", "minItems", "maxItems", "uniqueItems"}
_OBJECT = {"type", "properties", "required", "additionalProperties", "propertyNames"}
_LOWER, _UPPER = ("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")
# The regular expression fastjsonschema checks each format with (a format it does not know, it
# does not check; nor does this compiler, which then gives up, to stay on the safe side).
_FORMATS = {"date-time": CodeGeneratorDraft04.FORMAT_REGEXS["date-time"]}


class Unsupported(Exception):
    """The schema uses something the compiler does not translate (exactly enough)."""


def _pattern(pattern: str) -> str:
    """The regular expression fastjsonschema searches for: an unescaped `$` means end of string."""
    return DOLLAR_FINDER.sub(r"\\Z", pattern)


def _all_of(patterns: list[str]) -> str:
    """One expression found (re.search) where each of `patterns` is found."""
    if len(patterns) == 1:
        return patterns[0]
    return "^" + "".join(f"(?=[\\s\\S]*?(?:{p}))" for p in patterns)


class Check(NamedTuple):
    """What a schema compiles to: the msgspec type a document must convert to; the top-level
    properties whose items must all differ; and, when the document's values of the `when`
    properties are among theirs, the type it must convert to instead (`then`)."""

    kind: Any
    unique: tuple[str, ...] = ()
    when: tuple[tuple[str, tuple[str, ...]], ...] = ()
    then: Any = None


def _is_string(kind: Any) -> bool:
    """A type whose values are strings alone: Python's equality of them is JSON's."""
    if get_origin(kind) is Annotated:
        return get_args(kind)[0] is str
    return get_origin(kind) is Literal and all(isinstance(v, str) for v in get_args(kind))


class _Compiler:
    def __init__(self, name: str) -> None:
        self.name = name
        self.unique: set[str] = set()  # `where` of every array with uniqueItems

    def resolve(self, ref: str) -> dict[str, Any]:
        document, _, fragment = ref.partition("#")
        document = document.removeprefix(SCHEMA_BASE)  # fastjsonschema makes references absolute
        if "/" in document:
            raise Unsupported(f"reference outside schemas/: {ref}")
        node = load_schema(document or self.name)
        for step in fragment.strip("/").split("/") if fragment else ():
            node = node[step]
        return node

    def type_of(self, node: dict[str, Any], where: str) -> Any:
        if not isinstance(node, dict):  # e.g. `items` as a list (tuple validation), or `true`
            raise Unsupported(f"{where}: a schema that is not an object")
        keys = set(node) - _ANNOTATIONS
        if "$ref" in node:
            if keys != {"$ref"}:
                raise Unsupported(f"{where}: keywords next to $ref")
            return self.type_of(self.resolve(node["$ref"]), where)
        if "const" in node or "enum" in node:
            values = [node["const"]] if "const" in node else node["enum"]
            if len(keys) != 1 or not values or not all(isinstance(v, str) for v in values):
                raise Unsupported(f"{where}: only string enums and consts")
            return Literal[tuple(values)]
        if "oneOf" in node:
            return self.one_of(node, keys, where)
        kind = node.get("type")
        if kind == "string" and keys <= _STRING:
            return self.string(node, where)
        if kind in ("number", "integer") and keys <= _NUMBER:
            meta = Meta(ge=node.get("minimum"), le=node.get("maximum"), gt=node.get("exclusiveMinimum"),
                        lt=node.get("exclusiveMaximum"))
            # A JSON integer is a number: int first, so msgspec keeps it exact.
            return Annotated[int, meta] if kind == "integer" else Union[Annotated[int, meta], Annotated[float, meta]]
        if kind == "boolean" and keys == {"type"}:
            return bool
        if kind == "array" and keys <= _ARRAY and "items" in node:
            item = self.type_of(node["items"], where + "[]")
            unique = node.get("uniqueItems", False)
            if type(unique) is not bool:
                raise Unsupported(f"{where}: uniqueItems {unique!r}")
            if unique:
                if not _is_string(item):
                    raise Unsupported(f"{where}: uniqueItems of items other than strings")
                self.unique.add(where)
            return Annotated[list[item], Meta(min_length=node.get("minItems"), max_length=node.get("maxItems"))]
        if kind == "object" and keys <= _OBJECT:
            return self.object(node, where)
        raise Unsupported(f"{where}: {sorted(keys)}")

    def string(self, node: dict[str, Any], where: str) -> Any:
        patterns = [_pattern(node["pattern"])] if "pattern" in node else []
        if "format" in node:
            if node["format"] not in _FORMATS:
                raise Unsupported(f"{where}: format {node['format']}")
            patterns.append(_FORMATS[node["format"]])
        return Annotated[str, Meta(min_length=node.get("minLength"), max_length=node.get("maxLength"),
                                   pattern=_all_of(patterns) if patterns else None)]

    def one_of(self, node: dict[str, Any], keys: set[str], where: str) -> Any:
        """Alternatives of different JSON types: exactly one matches when any does."""
        alternatives = node["oneOf"]
        kinds = [a.get("type") for a in alternatives]
        if keys != {"oneOf"} or None in kinds or len(set(kinds)) != len(kinds) or {"number", "integer"} <= set(kinds):
            raise Unsupported(f"{where}: oneOf of alternatives that may overlap")
        return Union[tuple(self.type_of(a, f"{where}|{k}") for a, k in zip(alternatives, kinds))]

    def object(self, node: dict[str, Any], where: str) -> Any:
        properties: dict[str, Any] = node.get("properties", {})
        required = set(node.get("required", ()))
        additional = node.get("additionalProperties", True)
        if additional not in (True, False) or not required <= set(properties):
            raise Unsupported(f"{where}: additionalProperties or required")
        forbid = additional is False
        names = node.get("propertyNames")
        if names is not None:
            if set(names) != {"pattern"}:
                raise Unsupported(f"{where}: propertyNames")
            if not all(re.search(_pattern(names["pattern"]), p) for p in properties):
                raise Unsupported(f"{where}: a property its propertyNames refuse")
            forbid = True  # other names would need checking: refused here, left to the validator
        if not properties and not forbid:
            return dict
        if not all(p.isidentifier() and not p.startswith("_") for p in properties):
            raise Unsupported(f"{where}: property names msgspec fields cannot take")
        fields = []
        for prop, schema in properties.items():
            kind = self.type_of(schema, f"{where}.{prop}")
            fields.append((prop, kind) if prop in required else (prop, Union[kind, UnsetType], UNSET))
        fields.sort(key=lambda f: len(f) == 3)  # required fields first
        return msgspec.defstruct(f"Check[{where}]", fields, forbid_unknown_fields=forbid)

    def resolved(self, node: Any) -> Any:
        while isinstance(node, dict) and "$ref" in node and set(node) - _ANNOTATIONS == {"$ref"}:
            node = self.resolve(node["$ref"])
        return node

    def top(self, node: dict[str, Any]) -> Check:
        """The whole schema: an object's, with uniqueItems and one if/then as the module says."""
        node = self.resolved(node)
        conditions = node.get("allOf") if isinstance(node, dict) else None
        if conditions is None:
            kind, when, then = self.type_of(node, self.name), (), None
        else:
            base = {k: v for k, v in node.items() if k != "allOf"}
            kind = self.type_of(base, self.name)
            when, narrowed = self.condition(base, conditions)
            then = self.type_of(narrowed, self.name)
        properties = node.get("properties", {}) if isinstance(node, dict) else {}
        unique = []
        for where in sorted(self.unique):
            prop = where.removeprefix(self.name + ".")
            if not (where.startswith(self.name + ".") and prop in properties):
                raise Unsupported(f"{where}: uniqueItems below the top-level properties")
            unique.append(prop)
        return Check(kind, tuple(unique), when, then)

    def condition(self, base: dict[str, Any], conditions: Any,
                  ) -> tuple[tuple[tuple[str, tuple[str, ...]], ...], dict[str, Any]]:
        """`allOf: [{if: {properties: {p: {enum}}}, then: {properties: {q: {bounds}}}}]` on an object:
        the `when` of its Check, and the base schema with q's bounds narrowed to both."""
        if (base.get("type") != "object" or not isinstance(conditions, list) or len(conditions) != 1
                or not isinstance(conditions[0], dict) or set(conditions[0]) - _ANNOTATIONS != {"if", "then"}):
            raise Unsupported(f"{self.name}: allOf other than one if/then on an object")
        test, then = conditions[0]["if"], conditions[0]["then"]
        if not (isinstance(test, dict) and isinstance(then, dict)
                and set(test) - _ANNOTATIONS == {"properties"} and set(then) - _ANNOTATIONS == {"properties"}
                and isinstance(test["properties"], dict) and isinstance(then["properties"], dict)):
            raise Unsupported(f"{self.name}: an if or then other than properties")
        required, properties = set(base.get("required", ())), dict(base.get("properties", {}))
        when = []
        for prop, sub in test["properties"].items():
            sub = self.resolved(sub)
            keys = set(sub) - _ANNOTATIONS if isinstance(sub, dict) else set()
            values = sub["enum"] if keys == {"enum"} else [sub["const"]] if keys == {"const"} else None
            # Required: a document without it, which the `if` would let through to the `then`,
            # fails the base type anyway.
            if (prop not in required or not isinstance(values, list) or not values
                    or not all(isinstance(v, str) for v in values)):
                raise Unsupported(f"{self.name}: an if on other than a required property's string values")
            when.append((prop, tuple(values)))
        for prop, sub in then["properties"].items():
            own = self.resolved(properties.get(prop))
            bounds = set(sub) - _ANNOTATIONS if isinstance(sub, dict) else {"?"}
            if (not isinstance(own, dict) or own.get("type") not in ("number", "integer")
                    or not set(own) - _ANNOTATIONS <= _NUMBER or not bounds <= {*_LOWER, *_UPPER}
                    or not all(type(sub[b]) in (int, float) and type(own.get(b, 0)) in (int, float) for b in bounds)):
                raise Unsupported(f"{self.name}.{prop}: a then other than bounds of a number")
            narrowed = dict(own)
            for bound in bounds:
                tighter = max if bound in _LOWER else min
                narrowed[bound] = tighter(own[bound], sub[bound]) if bound in own else sub[bound]
            properties[prop] = narrowed
        return tuple(when), {**base, "properties": properties}


@cache
def compiled(name: str) -> Check | None:
    """What schemas/<name> compiles to; None when it uses something not translated."""
    try:
        return _Compiler(name).top(load_schema(name))
    except (Unsupported, re.error, TypeError, ValueError):  # a pattern Python's re or msgspec refuses
        return None


def passes(name: str, doc: Any) -> bool:
    """True only if schemas/<name> accepts `doc` (False: unknown here, ask the validator)."""
    check = compiled(name)
    if check is None:
        return False
    kind = check.kind
    if check.when and isinstance(doc, dict) and all(doc.get(p, _NONE) in values for p, values in check.when):
        kind = check.then
    try:
        msgspec.convert(doc, kind, strict=True)
    except msgspec.ValidationError:
        return False
    # doc is an object: its type converted
    return not any(_repeats(doc.get(prop)) for prop in check.unique)


_NONE = object()  # a property absent: in no `when`


def _repeats(items: Any) -> bool:
    """An array (of strings: `unique` is only for those) holding some item twice; absent is not."""
    return items is not None and items is not UNSET and len(set(items)) != len(items)


class Whole(NamedTuple):
    """Whole events, envelope and data, checked and parsed from their JSON in one pass (`whole`)."""

    decoder: msgspec.json.Decoder
    # Each event type's envelope struct -> the event type, and its data's Check when `unique` or
    # `when` ask for more than the conversion (`whole_passes`).
    types: dict[type, tuple[str, Check | None]]


@cache
def whole(event_types: tuple[str, ...]) -> Whole | None:
    """One JSON decoder for events of those of `event_types` whose data schema compiles: a tagged
    union of one struct per event type, `type` its tag, its other fields cloudevent.json's and its
    `data` the event type's compiled type. What it decodes and `whole_passes`, orjson would parse
    and `passes` would let through for both schemas, to the same values (every number the schemas
    allow is bounded well within a float's exact integers, so orjson's float and msgspec's int of a
    long integer never differ in a value let through); the rest, and the event types whose schema
    does not compile, are for orjson, the two checks and the validator. None if cloudevent.json
    does not compile."""
    envelope = compiled("cloudevent.json")
    if envelope is None or envelope.unique or envelope.when:
        return None
    own = [f for f in msgspec.structs.fields(envelope.kind) if f.name not in ("type", "data")]
    forbid = envelope.kind.__struct_config__.forbid_unknown_fields
    types: dict[type, tuple[str, Check | None]] = {}
    for event_type in event_types:
        check = compiled(f"{event_type}.json")
        if check is None:
            continue
        fields = [(f.name, f.type) for f in own if f.required] + [("data", check.kind)] + [
            (f.name, f.type, f.default) for f in own if not f.required]
        struct = msgspec.defstruct(f"Whole[{event_type}]", fields, tag_field="type", tag=event_type,
                                   forbid_unknown_fields=forbid)
        types[struct] = (event_type, check if check.unique or check.when else None)
    if not types:
        return None
    return Whole(msgspec.json.Decoder(Union[tuple(types)]), types)


def whole_passes(check: Check, data: Any) -> bool:
    """What `passes` checks beside the conversion, for data `whole` converted to check.kind."""
    if any(_repeats(getattr(data, prop)) for prop in check.unique):
        return False
    if check.when and all(getattr(data, p) in values for p, values in check.when):
        try:
            msgspec.convert(msgspec.to_builtins(data), check.then, strict=True)
        except msgspec.ValidationError:
            return False
    return True
