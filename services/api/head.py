"""HEAD answered as GET without its body, on every path that takes GET (RFC 9110: a server
that takes GET takes HEAD). FastAPI's routes take only the methods they declare, so uptime
checkers and link checkers probing with HEAD got 405 from every reading.

The live feed is left out: its GET never ends, so HEAD /api/v1/stream stays a 405 (Allow: GET).
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send


TAKES_HEAD = "salespulse.takes_head"  # in the scope: whether a GET of this path would take HEAD too


class HeadAsGet:
    """ASGI middleware: a HEAD request goes to the app as a GET; its answer's status and
    headers (Content-Length included) go out, its body does not."""

    def __init__(self, app: ASGIApp, streams: Iterable[str] = ()) -> None:
        self.app, self.streams = app, frozenset(streams)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        takes_head = scope["path"] not in self.streams
        scope = {**scope, TAKES_HEAD: takes_head}  # for a 405's Allow (errors.allowed_methods)
        if scope["method"] != "HEAD" or not takes_head:
            await self.app(scope, receive, send)
            return
        ended = False

        async def headers_only(message: Message) -> None:
            nonlocal ended
            if message["type"] != "http.response.body":
                await send(message)
            elif not ended:
                ended = True
                await send({"type": "http.response.body", "body": b"", "more_body": False})

        await self.app({**scope, "method": "GET"}, receive, headers_only)
