"""Request bodies are capped before they are read whole into memory.

FastAPI reads a body entirely before a route sees it, and neither it nor uvicorn caps its size:
a client (the provider webhooks need no key) could make the API hold gigabytes. A body over
its path's cap is a 413 `body_too_large`: at once when Content-Length says so, or as soon as
a chunked body passes the cap.
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from salespulse.api.errors import error_body

MIB = 1024 * 1024


class BodyLimit:
    """ASGI middleware: `limits` maps a path prefix to its cap (the longest prefix wins);
    any other path gets `default`."""

    def __init__(self, app: ASGIApp, default: int, limits: Mapping[str, int]) -> None:
        self.app, self.default = app, default
        self.limits = sorted(limits.items(), key=lambda item: -len(item[0]))

    def cap(self, path: str) -> int:
        return next((cap for prefix, cap in self.limits if path.startswith(prefix)), self.default)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cap = self.cap(scope["path"])
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > cap:
            await refuse(send, f"a body of {int(declared)} bytes; at most {cap} here")
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > cap:  # a chunked body: the route's reading of it stops here
                    raise HTTPException(413, f"a body over {cap} bytes; at most {cap} here")
            return message

        await self.app(scope, counted, send)


async def refuse(send: Send, message: str) -> None:
    body = orjson.dumps(error_body("body_too_large", message))
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
