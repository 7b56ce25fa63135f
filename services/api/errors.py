"""Every error is JSON: {"error": {"code", "message", "details"?}} with the right status."""

from __future__ import annotations

from typing import Any

from aiokafka.errors import KafkaError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from salespulse.api.head import TAKES_HEAD

RETRY_SECONDS = 5  # what a 503 asks a client to wait (Retry-After)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, details: list[Any] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details
        self.headers = headers


def error_body(code: str, message: str, details: list[Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return {"error": body}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def on_api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(error_body(exc.code, exc.message, exc.details), status_code=exc.status,
                            headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def on_invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"field": ".".join(str(p) for p in err.get("loc", ())), "reason": err.get("msg", "")}
            for err in exc.errors()
        ]
        first = details[0] if details else {"field": "", "reason": "invalid request"}
        message = f"{first['field']}: {first['reason']}" if first["field"] else first["reason"]
        return JSONResponse(error_body("invalid_request", message, details), status_code=422)

    @app.exception_handler(RedisError)
    async def on_redis_away(request: Request, exc: RedisError) -> JSONResponse:
        # Redis is a read model: what was acknowledged before is durable in Kafka, and a write
        # failing here reached its topic or never began (PUT and DELETE): repeating it is safe.
        return unavailable("read_model_unavailable", f"Redis does not answer ({exc.__class__.__name__}); "
                           f"{request.method} {request.url.path} is safe to retry shortly")

    @app.exception_handler(KafkaError)
    async def on_kafka_away(request: Request, exc: KafkaError) -> JSONResponse:
        return unavailable("kafka_unavailable", f"Kafka did not answer ({exc.__class__.__name__}); "
                           f"{request.method} {request.url.path} is safe to retry shortly")

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:  # FastAPI's "error parsing the body" (not UTF-8): as truncated JSON is
            return JSONResponse(error_body("invalid_request", "body: not JSON in UTF-8",
                                           [{"field": "body", "reason": "not JSON in UTF-8"}]), status_code=422)
        code = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}.get(exc.status_code, "http_error")
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:  # every method of the path: Starlette names only its first route's
            headers["Allow"] = ", ".join(allowed_methods(request))
        return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code, headers=headers or None)


def unavailable(code: str, message: str) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=503, headers={"Retry-After": str(RETRY_SECONDS)})


METHODS = ("DELETE", "GET", "PATCH", "POST", "PUT")


def allowed_methods(request: Request) -> list[str]:
    """The methods some route takes at this path: asked of each route as a request would be
    (FastAPI's included routers keep their routes to themselves: reading `route.methods` of
    the app's routes found none, and 405s went out with an empty Allow)."""
    methods = [method for method in METHODS
               if any(route.matches({**request.scope, "method": method})[0] == Match.FULL
                      for route in request.app.router.routes)]
    if "GET" in methods and request.scope.get(TAKES_HEAD):  # head.HeadAsGet answers it
        methods.insert(methods.index("GET") + 1, "HEAD")
    return methods
