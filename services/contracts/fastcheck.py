"""A fast first check of parsed events against schemas/, in C: the schemas compiled to msgspec types.

The fastjsonschema validators give the messages senders read, but took two thirds of the time
a worker spent decoding an event (about 20 us of 30). The same schemas compiled to msgspec
types check a valid event in a few microseconds. The check is used one way only: when it passes,
the schema's validator would pass too (the compiled types are never looser than the schema;
tests/unit/test_fastcheck.py fuzzes both); when it fails, the validator decides and explains.
A schema using a keyword this compiler does not know gets no fast check (`compiled` is None),
so its events always go through the validator.

Only the verdict is used: the event is built from the document orjson parsed either way.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Annotated, Any, Literal, Union

import msgspec
from fastjsonschema.draft04 import DOLLAR_FINDER, CodeGeneratorDraft04
from msgspec import UNSET, Meta, UnsetType

from salespulse.contracts.schemas import SCHEMA_BASE, load_schema

# Keywords that only document a schema.
_ANNOTATIONS = {"$schema", "$id", "title", "description", "examples", "default", "$comment"}
_STRING = {"type", "minLength", "maxLength", "pattern", "format"}
_NUMBER = {"type", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}
_ARRAY = {"type", "items", "minItems", "maxItems"}
_OBJECT = {"type", "properties", "required", "additionalProperties", "propertyNames"}
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


class _Compiler:
    def __init__(self, name: str) -> None:
        self.name = name

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


@cache
def compiled(name: str) -> Any | None:
    """The msgspec type schemas/<name> compiles to; None when it uses something not translated."""
    compiler = _Compiler(name)
    try:
        return compiler.type_of(load_schema(name), name)
    except (Unsupported, re.error, TypeError, ValueError):  # a pattern Python's re or msgspec refuses
        return None


def passes(name: str, doc: Any) -> bool:
    """True only if schemas/<name> accepts `doc` (False: unknown here, ask the validator)."""
    kind = compiled(name)
    if kind is None:
        return False
    try:
        msgspec.convert(doc, kind, strict=True)
    except msgspec.ValidationError:
        return False
    return True
