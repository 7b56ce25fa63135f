"""Request and response models: they make the OpenAPI document complete."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, Field, StringConstraints, field_validator

from salespulse.domain.kpis import CATALOG
from salespulse.domain.targets import TargetId

Period = Literal["day", "week", "month", "quarter", "year"]
# The catalog's KPI ids and dimensions, listed in the document (clients and fuzzers see what is
# valid) but checked by the routes, which answer 404 `unknown_kpi` and 422 `unsupported_dimension`.
KPI_IDS = {"enum": list(CATALOG)}
DIMENSIONS = {"enum": sorted({dim for kpi in CATALOG.values() for dim in kpi.dimensions})}
Level = Literal["anticipation", "balance", "alert"]


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: list[Any] | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


ERROR_MEANINGS = {
    401: "No API key, or one this API does not know (`unauthorized`).",
    403: "The key lacks the scope this operation needs (`forbidden`).",
    404: "Not found: `code` names what (`unknown_kpi`, `unknown_rule`, ...).",
    409: "In conflict with what is stored: `message` says with what.",
    413: "A body over the cap of its path (`body_too_large`: 1 MiB, 8 MiB for POST /events); "
         "`message` gives it.",
    422: "Invalid request: `details` names each field and why (`field`, `reason`).",
    429: "Over the ingest rate limit of this key (INGEST_RATE_LIMIT events/s); wait `Retry-After` seconds.",
    503: "Redis (`read_model_unavailable`) or Kafka (`kafka_unavailable`) does not answer; the same "
         "request is safe to repeat after `Retry-After` seconds.",
}


def errors(*statuses: int, **meanings: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI responses for the error statuses an operation can answer, each with what it means
    (ERROR_MEANINGS; `e404="..."` says it for this operation)."""
    return {status: {"model": ErrorResponse, "description": meanings.get(f"e{status}", ERROR_MEANINGS[status])}
            for status in statuses}


class KpiInfo(BaseModel):
    id: str
    name: str
    unit: Literal["count", "currency", "ratio", "seconds", "days", "score"]
    currency: str | None
    direction: Literal["up", "down"]
    description: str
    dimensions: list[str]
    periods: list[str]
    cumulative: bool
    live: bool = Field(description="Pushed on kpi.updates as events change it; otherwise computed when read "
                                   "(date windows, shares of the total, run rates, top lists).")
    top: int | None = Field(None, description="A reading holds only the best `top` values.")


class KpiValueOut(BaseModel):
    key: str
    value: float | None
    target: float | None = None
    attainment: float | None = None
    pace: float | None = Field(None, description="Where the value should be by now to meet the target.")
    level: Level | None = None
    as_of: datetime | None = Field(None, description="When the newest measure behind this value was written.")


class KpiReading(BaseModel):
    kpi: str
    by: str
    period: str = Field(description="The period asked for, or `now` for state KPIs such as pipeline_value.")
    period_start: date | None
    unit: str
    as_of: datetime | None = Field(description="When the newest measure behind these values was written.")
    values: list[KpiValueOut]
    stale: bool = Field(False, description="True when Redis did not answer: the values are the last ones this "
                        "API instance served for the same question (their `as_of` tells how old).")


class LeaderboardEntry(KpiValueOut):
    rank: int


class Leaderboard(BaseModel):
    kpi: str
    by: str
    period: str
    period_start: date | None
    unit: str
    as_of: datetime | None
    entries: list[LeaderboardEntry]
    stale: bool = Field(False, description="True when Redis did not answer: the values are the last ones this "
                        "API instance served for the same question (their `as_of` tells how old).")


class TargetIn(BaseModel):
    # strict: a number, not true (taken for 1) nor "5" (taken as 5)
    target: float = Field(ge=0, le=1e15, allow_inf_nan=False, strict=True, description="The objective, in the KPI's unit.")
    alert_at: float | None = Field(
        None, gt=0, le=1000, allow_inf_nan=False, strict=True,
        description="Share of pace where anticipation turns to alert (default 0.8 for up-is-good KPIs, 1.2 for down).")


class TargetOut(BaseModel):
    kpi: str
    by: str
    key: str
    period: str
    target: float
    alert_at: float | None
    updated_at: datetime

    @staticmethod
    def served(tid: TargetId, doc: dict[str, Any]) -> dict[str, Any]:
        """What GET /targets serves of the target `tid` kept as `doc` (kpi.targets' value)."""
        return {"kpi": tid.kpi, "by": tid.by, "key": tid.key, "period": tid.period, **doc}


Label = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Id = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f]+$")]
Provider = Literal["twilio", "aircall", "asterisk", "hubspot", "pipedrive", "salesforce"]


class RepIn(BaseModel):
    team: Label
    region: Label
    since: AwareDatetime | None = Field(
        None, description="When the rep joins this team and region. Default: now for a known rep, "
                          "from the beginning for a new one. Events before it keep the former team.")
    name: Label | None = None
    extension: Label | None = Field(None, description="Telephony extension, to map PBX events to the rep.")
    identities: dict[Provider, list[Id]] | None = Field(
        None, description="The rep's ids in connected systems, by provider: a user, agent, owner or Twilio "
                          "client id, an extension, or a line (`number:<id>`, `queue:<name>`) whose calls "
                          "count as this rep's. Replaces the rep's identities; absent: kept. One id belongs "
                          "to one rep (409 otherwise).",
        examples=[{"hubspot": ["52204917"], "twilio": ["client:alice"], "aircall": ["123456"]}])


    @field_validator("since", mode="before")
    @classmethod
    def since_is_a_date_time_string(cls, value):
        if value is not None and not isinstance(value, str):  # not a number of seconds, as lax parsing takes
            raise ValueError("since must be an RFC 3339 date-time string")
        return value

class AssignmentOut(BaseModel):
    team: str
    region: str
    since: datetime | None


class RepOut(BaseModel):
    rep_id: str
    name: str | None = None  # a record produced straight to directory.reps may leave them out
    extension: str | None = None
    identities: dict[str, list[str]] = Field(default_factory=dict)
    assignments: list[AssignmentOut]


class ProductIn(BaseModel):
    category: Label
    name: Label | None = None


class ProductOut(ProductIn):
    product: str


class CustomerIn(BaseModel):
    sector: Label
    region: Label | None = None
    name: Label | None = None


class CustomerOut(CustomerIn):
    customer_id: str


class AcceptedEvent(BaseModel):
    id: str
    type: str
    topic: str
    partition: int
    offset: int


class IngestResult(BaseModel):
    accepted: int
    events: list[AcceptedEvent]


class WebhookEventResult(BaseModel):
    id: str = Field(description="The provider's id of the event (what duplicates are recognised by).")
    outcome: Literal["accepted", "duplicate", "held", "unmapped", "invalid", "ignored"]
    event_id: str | None = Field(None, description="The canonical CloudEvent's id, when one was produced.")
    reason: str | None = None


class WebhookResult(BaseModel):
    provider: str
    events: list[WebhookEventResult]


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, str] = {}


class ThresholdIn(BaseModel):
    enter: float = Field(allow_inf_nan=False, strict=True, description="The level is entered at this value or worse.")
    exit: float | None = Field(None, allow_inf_nan=False, strict=True,
                               description="Left only once the value is better than this (default: enter).")


class RuleIn(BaseModel):
    kpi: str = Field(max_length=80, description="The KPI watched.", json_schema_extra=KPI_IDS)
    by: str = Field("all", max_length=40, description="One of the KPI's dimensions.", json_schema_extra=DIMENSIONS)
    key: str = Field("all", max_length=200, description="A dimension value, or `*` for each value.")
    period: Literal["day", "week", "month", "quarter", "year", "now"] = Field(
        "day", description="The current bucket of this kind is watched; `now` for state KPIs.")
    measure: Literal["value", "attainment", "pace"] = Field(
        "value", description="value; attainment (value / target); pace (value / where it should be by now).")
    levels: dict[Literal["balance", "anticipation", "alert"], ThresholdIn] = Field(
        description="Thresholds per level, on the bad side of the KPI's direction.")
    for_seconds: float = Field(0, ge=0, le=86_400 * 7, strict=True, description="How long a harsher level must hold before it fires.")


class RuleOut(RuleIn):
    id: str
    direction: Literal["up", "down"] = Field(description="The KPI's: whether higher (up) or lower is better.")
    updated_at: datetime | None = Field(None, description="When the rule was last put through the API; null for a "
                                                    "rule written to kpi.rules by something else without it.")


class AlertOut(BaseModel):
    id: str = Field(description="The event's id (one per change).")
    alert_id: str = Field(description="The alert's id: the same from raised to resolved.")
    rule: str
    kpi: str
    by: str
    key: str
    period: str
    period_start: str | None
    state: Literal["raised", "level_changed", "resolved"]
    level: str | None
    previous_level: str | None
    measure: str
    measured: float | None
    value: float | None
    threshold: float | None
    unit: str
    at: datetime
    raised_at: datetime


class ProfileIn(BaseModel):
    """A saved screen: open `/?profile={name}` (URL parameters still win)."""

    boards: list[Literal["sales", "telephony", "leaders"]] = Field(["sales"], min_length=1, max_length=10)
    rotate: int = Field(30, ge=0, le=3600, strict=True, description="Seconds per board when there are several; 0: no rotation.")
    by: Literal["all", "team", "region", "rep"] = "all"
    key: str = Field("all", max_length=200, description="The team, region or rep shown (with `by`).")
    period: Literal["day", "week", "month", "quarter", "year"] | None = Field(
        None, description="Override every tile's period (default: each tile's own).")
    lang: Literal["en", "fr"] | None = None
    theme: Literal["dark", "light"] = "dark"


class ProfileOut(ProfileIn):
    name: str
    updated_at: datetime
