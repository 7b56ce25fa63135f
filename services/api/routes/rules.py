"""Alert rules (kept durably in the compacted kpi.rules topic) and the alerts they raised."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Response

from salespulse.api.dependencies import ProducerDep, ReadModelDep
from salespulse.api.documents import RULES, served_rule
from salespulse.api.errors import ApiError
from salespulse.api.models import AlertOut, RuleIn, RuleOut, errors
from salespulse.api.reading import check_dimension, find_kpi
from salespulse.domain.alerts import rule_from_doc

log = logging.getLogger(__name__)
router = APIRouter(tags=["alerts"])
UNKNOWN_RULE = errors(404, 422, 503, e404="No rule of that id (`unknown_rule`).")

RuleId = Annotated[str, Path(description="Your name for the rule: letters, digits, `.`, `_`, `-`.",
                             max_length=100, pattern=r"^[A-Za-z0-9._-]+$")]


def _checked(rule_id: str, body: RuleIn) -> dict:
    kpi = find_kpi(body.kpi)
    check_dimension(kpi, body.by)
    if kpi.snapshot != (body.period == "now"):
        wanted = "`now`" if kpi.snapshot else "day, week, month, quarter or year"
        raise ApiError(422, "invalid_period", f"{kpi.id} is {'a state' if kpi.snapshot else 'a period'} KPI: "
                                              f"its rules watch period {wanted}")
    if body.by == "all" and body.key not in ("all", "*"):
        raise ApiError(422, "invalid_key", "the `all` dimension has one value: all")
    doc = body.model_dump()
    try:
        rule_from_doc(rule_id, doc, kpi.direction)
    except ValueError as exc:
        raise ApiError(422, "invalid_rule", str(exc)) from None
    return {**doc, "direction": kpi.direction, "updated_at": datetime.now(timezone.utc).isoformat()}


@router.get("/rules", response_model=list[RuleOut], responses=errors(503), summary="List the alert rules")
async def read_rules(readmodel: ReadModelDep) -> list[dict]:
    """Every alert rule, by id."""
    return [served for rule_id, doc in (await RULES.all(readmodel)).items()
            if (served := _served(rule_id, doc)) is not None]


@router.get("/rules/{rule_id}", response_model=RuleOut, responses=UNKNOWN_RULE, summary="Read an alert rule")
async def read_rule(rule_id: RuleId, readmodel: ReadModelDep) -> dict:
    """One alert rule, as it was put, with the KPI's direction and when it last changed."""
    served = _served(rule_id, await RULES.get(readmodel, rule_id))
    if served is None:
        raise ApiError(404, "unknown_rule", f"no rule {rule_id!r}")
    return served


def _served(rule_id: str, doc: dict) -> dict | None:
    """A rule of Redis's copy as served, or None: copies are checked as they are made, but one
    made by an earlier version may no longer be a rule (a KPI since taken out of the catalog)."""
    try:
        return served_rule(rule_id, doc)
    except ValueError as exc:
        log.warning("rule %s in Redis is not one this version serves (%s): left out", rule_id, exc)
        return None


@router.put("/rules/{rule_id}", response_model=RuleOut, summary="Create or replace an alert rule",
            responses=errors(404, 422, 503, e404="The rule names no KPI of that id (`unknown_kpi`)."))
async def put_rule(rule_id: RuleId, body: RuleIn, producer: ProducerDep, readmodel: ReadModelDep) -> dict:
    """Create or replace a rule; the alerting service applies it at its next evaluation.

    A rule watches a KPI for one value of a dimension (or `*`, each value) in the current
    bucket of a period kind, and raises an alert at each level whose threshold it crosses on
    the KPI's bad side. Kept in the compacted `kpi.rules` topic: it survives restarts."""
    doc = _checked(rule_id, body)
    await RULES.put(producer, readmodel, rule_id, doc)
    return {"id": rule_id, **doc}


@router.delete("/rules/{rule_id}", status_code=204, response_class=Response, responses=UNKNOWN_RULE,
               summary="Delete an alert rule")
async def delete_rule(rule_id: RuleId, producer: ProducerDep, readmodel: ReadModelDep) -> Response:
    """Delete a rule; its active alerts are resolved."""
    await RULES.delete(producer, readmodel, rule_id)
    return Response(status_code=204)


@router.get("/alerts", response_model=list[AlertOut], responses=errors(422, 503), summary="List the alerts")
async def read_alerts(readmodel: ReadModelDep,
                      state: Annotated[Literal["active", "all"], Query(
                          description="`active`: alerts raised and not resolved (their latest change); "
                                      "`all`: every change, newest first.")] = "active",
                      limit: Annotated[int, Query(ge=1, le=10_000, description="At most this many.")] = 500,
                      ) -> list[dict]:
    """The alerts raised by the rules: those active now (newest first), or every change
    (raised, level changed, resolved) with its value, threshold and time."""
    if state == "active":
        return (await readmodel.active_alerts())[:limit]
    return await readmodel.alert_history(limit)
