"""The wallboard page (GET /) and its live feed (GET /api/v1/stream, Server-Sent Events)."""

from __future__ import annotations

import asyncio
from importlib import resources
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from pydantic import StringConstraints

from salespulse.api.errors import ApiError
from salespulse.api.models import errors
from salespulse.api.reading import check_dimension, find_kpi
from salespulse.domain.periods import PERIODS

router = APIRouter(tags=["live"])
page = APIRouter(include_in_schema=False)

HEARTBEAT_SECONDS = 15.0
DEBOUNCE_SECONDS = 0.05  # gather the updates of one processor batch into one push


def sse(event: str, data: Any) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


WATCH = r"^[a-z_]+:[a-z_]+:[a-z]+$"


def parse_watch(spec: str) -> tuple[str, str, str]:
    parts = spec.split(":")
    if len(parts) != 3:
        raise ApiError(422, "invalid_watch", f"watch {spec!r} is not kpi:by:period, e.g. revenue:rep:month")
    kpi_id, by, period = parts
    check_dimension(find_kpi(kpi_id), by)
    if period not in PERIODS:
        raise ApiError(422, "invalid_period", f"period must be one of {', '.join(PERIODS)}")
    return kpi_id, by, period


@router.get("/stream", response_class=StreamingResponse, summary="Follow KPIs and alerts live", responses={
    200: {"content": {"text/event-stream": {}},
          "description": "`kpi` events (id = the watch spec, reading = as GET /kpis/{kpi} returns it) and "
                         "`alerts` events (the active alerts). The current state is sent at once on connect."},
    **errors(404, 422, e404="A watch names no KPI of that id (`unknown_kpi`).")})
async def stream(request: Request, watch: Annotated[list[Annotated[str, StringConstraints(pattern=WATCH)]], Query(
        description="What to follow, as kpi:by:period (today's bucket), e.g. `revenue:all:month`; repeatable.",
        max_length=50)] = ()) -> StreamingResponse:
    """Server-Sent Events: each watched reading when it changes (within a processor batch of the
    events that change it), the active alerts when they change, a comment every 15 s. The
    stream outlives a Redis outage (readings resume once it is back); a browser's EventSource
    reconnects by itself. Wallboards pass their token as `?token=`."""
    specs = [parse_watch(spec) for spec in watch]
    hub = request.app.state.live
    readmodel = request.app.state.readmodel

    async def events():
        yield b"retry: 1000\n\n"
        sent: dict[str, bytes] = {}
        alert_version = None
        while not await request.is_disconnected():
            seen = hub.versions()  # before reading: a change while this reads or sends is not missed
            for kpi_id, by, period in specs:
                spec = f"{kpi_id}:{by}:{period}"
                try:
                    reading = await hub.reading(kpi_id, by, period)
                except Exception:  # noqa: BLE001 - Redis away: the screen keeps its values and their age
                    continue
                message = sse("kpi", {"id": spec, "reading": reading})
                if sent.get(spec) != message:
                    sent[spec] = message
                    yield message
            if alert_version != hub.alert_version:
                try:
                    active = await readmodel.active_alerts()
                    alert_version = hub.alert_version
                    yield sse("alerts", {"active": active})
                except Exception:  # noqa: BLE001
                    pass
            yield b": keep-alive\n\n"
            await hub.changed(HEARTBEAT_SECONDS, seen)
            await asyncio.sleep(DEBOUNCE_SECONDS)

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _asset(name: str) -> str:
    return resources.files("salespulse.api").joinpath("wallboard", name).read_text()


@page.get("/", response_class=HTMLResponse)
async def wallboard() -> HTMLResponse:
    return HTMLResponse(_asset("index.html"), headers={"Cache-Control": "no-cache"})


@page.get("/wallboard/{name}")
async def wallboard_asset(name: str) -> Response:
    types = {"wallboard.js": "text/javascript", "wallboard.css": "text/css"}
    if name not in types:
        raise ApiError(404, "not_found", f"no wallboard asset {name!r}")
    return Response(_asset(name), media_type=types[name], headers={"Cache-Control": "no-cache"})
