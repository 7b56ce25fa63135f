"""Targets per KPI, dimension value and period; kept durably in the compacted kpi.targets topic."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated

import orjson
from fastapi import APIRouter, Path, Response

from salespulse.api.dependencies import ProducerDep, ReadModelDep
from salespulse.api import pathids  # noqa: F401 - registers {name:id}
from salespulse.api.errors import ApiError
from salespulse.api.models import DIMENSIONS, KPI_IDS, TargetIn, TargetOut, errors
from salespulse.api.reading import check_dimension, find_kpi
from salespulse.contracts.topics import KPI_TARGETS
from salespulse.domain.periods import parse_period
from salespulse.domain.targets import ANY_KEY, TargetId

router = APIRouter(prefix="/targets", tags=["targets"])
KpiId = Annotated[str, Path(description="The KPI's id (GET /api/v1/kpis).", max_length=80, json_schema_extra=KPI_IDS)]
By = Annotated[str, Path(description="One of the KPI's dimensions: `all`, `rep`, `team`, ...", max_length=40,
                         json_schema_extra=DIMENSIONS)]

PeriodPath = Annotated[str, Path(
    description="`month` sets the target of every month; `2026-11` (or 2026-11-22, 2026-W47, "
                "2026-Q4, 2026) sets one bucket's, which wins over the every-bucket target.",
    max_length=20)]
KeyPath = Annotated[str, Path(description=f"A dimension value, or `{ANY_KEY}` for every value; a `/` in it is sent "
                                          "percent-encoded, as `%2F`, like any reserved character.",
                              min_length=1, max_length=200, pattern=r"^[^\x00-\x1f]+$")]  # as schemas/ ids


def _target_id(kpi: str, by: str, key: str, period: str) -> TargetId:
    definition = find_kpi(kpi)
    check_dimension(definition, by)
    if definition.snapshot:
        if period != "now":
            raise ApiError(422, "invalid_period", f"{kpi} is a state KPI: its target period is `now`")
    else:
        try:
            parse_period(period)
        except ValueError as exc:
            raise ApiError(422, "invalid_period", str(exc)) from None
    if by == "all" and key not in ("all", ANY_KEY):
        raise ApiError(422, "invalid_key", "the `all` dimension has one value: all")
    return TargetId(kpi, by, key, period)


@router.get("", response_model=list[TargetOut], responses=errors(503), summary="List the targets")
async def read_targets(readmodel: ReadModelDep) -> list[dict]:
    """Every target set, by KPI, dimension, key and period."""
    docs = await readmodel.target_docs()
    return [TargetOut.served(tid, doc) for tid, doc in sorted(docs.items(), key=lambda item: item[0].encode())]


@router.put("/{kpi}/{by}/{key:id}/{period}", response_model=TargetOut, summary="Set a target",
            responses=errors(404, 422, 503, e404="No KPI of that id (`unknown_kpi`)."))
async def update_target(kpi: KpiId, by: By, key: KeyPath, period: PeriodPath, body: TargetIn,
                        producer: ProducerDep, readmodel: ReadModelDep) -> dict:
    """Set the objective of a KPI for one value of a dimension (or `*`, each value) and a period
    kind or bucket; the most specific target wins. Readings show it with attainment, pace and
    level at once. Kept in the compacted `kpi.targets` topic: it survives restarts."""
    tid = _target_id(kpi, by, key, period)
    doc = {"target": body.target, "alert_at": body.alert_at,
           "updated_at": datetime.now(timezone.utc).isoformat()}
    sent = await producer.send_and_wait(KPI_TARGETS, orjson.dumps(doc), key=tid.encode().encode())
    await readmodel.put_target(tid, doc, sent.offset)
    return TargetOut.served(tid, doc)


@router.delete("/{kpi}/{by}/{key:id}/{period}", status_code=204, response_class=Response, summary="Remove a target",
               responses=errors(404, 422, 503, e404="No such KPI (`unknown_kpi`) or no such target (`unknown_target`)."))
async def delete_target(kpi: KpiId, by: By, key: KeyPath, period: PeriodPath,
                        producer: ProducerDep, readmodel: ReadModelDep) -> Response:
    """Remove the target set at exactly this KPI, dimension, key and period."""
    tid = _target_id(kpi, by, key, period)
    if tid not in await readmodel.target_docs():
        raise ApiError(404, "unknown_target", f"no target {tid.encode()}")
    sent = await producer.send_and_wait(KPI_TARGETS, None, key=tid.encode().encode())  # tombstone
    await readmodel.delete_target(tid, sent.offset)
    return Response(status_code=204)
