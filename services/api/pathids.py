"""`{name:id}` in a route's path: a dimension value or directory id, which may hold any character
but control characters (schemas/), `/` too (sent as %2F, decoded before routing)."""

from __future__ import annotations

from starlette.convertors import Convertor, register_url_convertor


class IdConvertor(Convertor):
    # Starlette's `path` (`.*`) stops at a line break, and its default (`[^/]+`) at a slash: a
    # line break must still reach the route, whose id pattern refuses it with a 422.
    regex = r"[\s\S]*"  # empty too: refused by the route (422), not a 404

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("id", IdConvertor())
