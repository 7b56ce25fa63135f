"""The SalesPulse HTTP API: KPI reads, leaderboards, targets, ingest, metrics, health.

    python -m salespulse.api              # or: uvicorn salespulse.api.app:app

Serves on API_HOST:API_PORT (127.0.0.1:8000). Reads come from Redis (written by the
processor); ingest and targets go to Kafka. The OpenAPI document is at /docs and /openapi.json.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import asynccontextmanager, suppress
from zoneinfo import ZoneInfo

from fastapi import Depends, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from salespulse.api.admission import Admission
from salespulse.api.auth import Keyring, RateLimiter, authorize, needed_scope
from salespulse.api.bodylimit import MIB, BodyLimit
from salespulse.api.documents import PROFILES, RULES
from salespulse.api.errors import install_error_handlers
from salespulse.api.head import HeadAsGet
from salespulse.api.kafka import new_producer, replay_directory, replay_targets
from salespulse.api.kpimetrics import KpiCollector
from salespulse.api.live import LiveHub
from salespulse.api.metrics import REQUESTS
from salespulse.api.models import ERROR_MEANINGS
from salespulse.api.reading import Readings
from salespulse.api.routes import (
    directory,
    events,
    health,
    kpis,
    live,
    profiles,
    rules,
    targets,
    webhooks,
)
from salespulse.contracts.topics import ensure_topics
from salespulse.domain.money import CurrencyConverter
from salespulse.domain.retention import Retention
from salespulse.readmodel import ReadModel
from salespulse.settings import Settings, get_settings

log = logging.getLogger(__name__)
API_PREFIX = "/api/v1"


RECOPY_CHECK_SECONDS = 5.0
SCOPE_NOTES = {
    "read": "\n\nNeeds an API key with scope `read`, or a wallboard token.",
    "write": "\n\nNeeds an API key with scope `write`.",
    "ingest": "\n\nNeeds an API key with scope `ingest`.",
}


async def connect_kafka(app: FastAPI) -> None:
    """Create topics, start the producer, load targets and the directory; retried until Kafka
    answers. Then keep those copies: if Redis comes back empty, they are made again."""
    state = app.state
    delay = 0.5
    while True:
        try:
            await ensure_topics(state.settings)
            if not state.kafka_connected.is_set():
                await state.producer.start()
                state.kafka_connected.set()
            copied, records = await copy_durable_documents(state)
            state.targets_loaded.set()
            log.info("connected to Kafka; %d target, rule and profile, %d directory records loaded", copied, records)
            break
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - keep trying; /readyz reports the state
            log.warning("Kafka or Redis not ready (%s); retrying in %.1fs", exc, delay)
            log.debug("connect failure", exc_info=True)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
    await keep_durable_documents(state)


async def copy_durable_documents(state) -> tuple[int, int]:
    """Copy targets, rules, profiles and the directory from their compacted topics to Redis:
    (targets, rules and profiles copied, directory records copied)."""
    await state.readmodel.mark_copies_loading()
    try:
        copied = await replay_targets(state.settings.kafka_bootstrap_servers, state.readmodel)
        for documents in (RULES, PROFILES):
            copied += await documents.replay(state.settings.kafka_bootstrap_servers, state.readmodel)
        return copied, await replay_directory(state.settings.kafka_bootstrap_servers, state.readmodel)
    except BaseException:
        # The mark says the copies are made: left, a copy that failed midway (Kafka away a
        # moment) would never be made again, the documents after it missing until a restart.
        with suppress(Exception):
            await state.readmodel.unmark_copies()
        raise


async def keep_durable_documents(state) -> None:
    """Copy them again whenever Redis has lost them (restarted without persistence, flushed),
    as the processors copy their rows and the alerting service its alerts."""
    while True:
        await asyncio.sleep(RECOPY_CHECK_SECONDS)
        try:
            if await state.readmodel.copies_known():
                continue
            copied, records = await copy_durable_documents(state)
            log.warning("Redis had lost the targets, rules, profiles and directory: %d and %d records copied "
                        "again from their topics", copied, records)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - Redis or Kafka away: the next check tries again
            log.debug("durable documents not checked: %s", exc)


def note_route(request: Request) -> None:
    """The matched route's template (`/api/v1/targets/{kpi}/{by}/{key}/{period}`), for the latency
    histogram's `route` label: the middleware's scope is not the router's (HeadAsGet copies it),
    so the route the router notes there never reached it, and every request was `unmatched`."""
    scope = request.scope
    context = scope.get("fastapi", {}).get("effective_route_context")  # with the routers' prefixes
    request.state.route_template = (getattr(context, "path_format", None)
                                    or getattr(scope.get("route"), "path_format", None))


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    if not settings.development and not (settings.api_keys or settings.wallboard_tokens):
        raise RuntimeError("API_KEYS is empty: outside development every /api/v1 call needs a key. Set API_KEYS "
                           "(README, Access control), or SALESPULSE_ENV=development on a development machine")

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        state = app.state
        state.settings = settings
        state.readmodel = ReadModel.from_url(settings.redis_url)
        state.readings = Readings(state.readmodel, ZoneInfo(settings.business_timezone))
        state.kpi_metrics = KpiCollector(settings, state.readings)
        state.kpi_registry = CollectorRegistry(auto_describe=False)
        state.kpi_registry.register(state.kpi_metrics)
        state.producer = new_producer(settings.kafka_bootstrap_servers)
        state.kafka_connected = asyncio.Event()
        state.targets_loaded = asyncio.Event()
        state.live = LiveHub(settings.kafka_bootstrap_servers, state.readings, state.readmodel)
        connecting = asyncio.create_task(connect_kafka(app))
        following = asyncio.create_task(state.live.run())
        try:
            yield
        finally:
            for task in (connecting, following):
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task
            if state.kafka_connected.is_set():
                await state.producer.stop()
            await state.readmodel.close()

    # /docs (Swagger UI 5) and /redoc from the API's own copies (fastapi-offline's), under
    # /docs-assets: FastAPI's load their scripts from a CDN, a blank page without internet.
    app = FastAPIOffline(
        static_url="/docs-assets",
        title="SalesPulse API",
        version="1.0.0",
        description="Live sales KPIs: values per dimension and period, leaderboards, targets, alert rules and alerts, ingest.",
        lifespan=lifespan,
        dependencies=[Depends(note_route), Depends(authorize)],
    )
    app.add_middleware(HeadAsGet, streams=[f"{API_PREFIX}/stream"])
    app.add_middleware(BodyLimit, default=MIB, limits={f"{API_PREFIX}/events": events.MAX_BODY_BYTES,
                                                       f"{API_PREFIX}/webhooks/": webhooks.MAX_BODY_BYTES})
    if settings.cors_origins:  # around the routes: a browser's preflight carries no key, and needs none
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins,
                           allow_methods=["GET", "HEAD", "PUT", "POST", "DELETE"],
                           allow_headers=["Authorization", "X-API-Key", "Content-Type"],
                           expose_headers=["Retry-After"], max_age=600)
    app.state.keyring = Keyring(settings)
    app.state.admission = Admission(CurrencyConverter(settings.reporting_currency, settings.fx_rates),
                                    Retention(settings.bucket_retention_days, settings.entity_retention_days))
    app.state.ingest_limiter = RateLimiter(settings.ingest_rate_limit, settings.ingest_burst)
    install_error_handlers(app)
    app.include_router(kpis.router, prefix=API_PREFIX)
    app.include_router(targets.router, prefix=API_PREFIX)
    app.include_router(rules.router, prefix=API_PREFIX)
    app.include_router(live.router, prefix=API_PREFIX)
    app.include_router(profiles.router, prefix=API_PREFIX)
    app.include_router(live.page)
    app.include_router(directory.router, prefix=API_PREFIX)
    app.include_router(events.router, prefix=API_PREFIX)
    app.include_router(webhooks.router, prefix=API_PREFIX)
    app.include_router(health.router, prefix=API_PREFIX)
    app.include_router(health.router)  # /healthz and /readyz at the root too, for probes

    @app.get("/metrics", include_in_schema=False)
    async def read_metrics(request: Request) -> Response:
        state = request.app.state
        try:
            await state.kpi_metrics.refresh()
        except Exception as exc:  # noqa: BLE001 - Redis away: the service's own metrics still count
            log.warning("KPI gauges not refreshed: %s", exc)
        return Response(generate_latest() + generate_latest(state.kpi_registry), media_type=CONTENT_TYPE_LATEST)

    @app.middleware("http")
    async def observe_latency(request: Request, call_next):
        started = time.perf_counter()
        noted = request.state  # made now, so that the inner scopes' copies share it (note_route)
        response = await call_next(request)
        template = getattr(noted, "route_template", None) or "unmatched"
        REQUESTS.labels(template, request.method, f"{response.status_code // 100}xx").observe(
            time.perf_counter() - started)
        return response

    def openapi() -> dict:
        """FastAPI's document, with what the routes cannot say themselves: the scope each operation
        needs (and its 401 and 403), and which are open (probes, webhooks with their own
        signatures), which the global key dependency would otherwise mark as needing a key."""
        if app.openapi_schema is None:
            document = get_openapi(title=app.title, version=app.version, description=app.description,
                                   routes=app.routes)
            document["components"]["securitySchemes"]["WallboardToken"] = {
                "type": "apiKey", "in": "query", "name": "token",
                "description": "A wallboard token (WALLBOARD_TOKENS) in the URL, for reads only: a browser's "
                               "EventSource cannot send headers."}
            for path, operations in document.get("paths", {}).items():
                for method, operation in operations.items():
                    if "requestBody" in operation:  # BodyLimit
                        operation["responses"].setdefault("413", error_response(ERROR_MEANINGS[413]))
                    scope = needed_scope(method.upper(), path)
                    if scope is None:
                        operation["security"] = []
                        continue
                    operation["description"] = (operation.get("description", "") + SCOPE_NOTES[scope]).lstrip()
                    if scope == "read":
                        operation["security"] = [*operation["security"], {"WallboardToken": []}]
                    operation["responses"].update({str(status): error_response(ERROR_MEANINGS[status])
                                                   for status in (401, 403)})
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi
    return app


def error_response(description: str) -> dict:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}}


def __getattr__(name: str):
    # `uvicorn salespulse.api.app:app` builds the app on first access, not at import.
    if name == "app":
        return create_app()
    raise AttributeError(name)
