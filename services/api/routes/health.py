"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from salespulse.api.kafka import kafka_answers
from salespulse.api.models import Health

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="Liveness")
async def read_health() -> dict:
    """The process is up (a liveness probe: nothing else is checked)."""
    return {"status": "ok", "checks": {}}


@router.get("/readyz", response_model=Health, summary="Readiness", responses={
    503: {"model": Health, "description": "Not ready: `checks` says which of kafka, redis, targets is not."}})
async def read_readiness(request: Request) -> JSONResponse:
    """Ready only when Kafka and Redis answer and the targets have been loaded."""
    state = request.app.state
    checks = {"kafka": "ok" if await kafka_answers(state.producer) else "unavailable"}
    try:
        checks["redis"] = "ok" if await state.readmodel.ping() else "unavailable"
    except Exception:  # noqa: BLE001 - any failure means "not ready"
        checks["redis"] = "unavailable"
    checks["targets"] = "ok" if state.targets_loaded.is_set() else "loading"
    ok = all(v == "ok" for v in checks.values())
    return JSONResponse({"status": "ok" if ok else "unavailable", "checks": checks},
                          status_code=200 if ok else 503)
