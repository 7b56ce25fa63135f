"""POST /webhooks/{provider}: telephony and CRM systems' own webhooks, no custom code needed."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated

from aiokafka.errors import KafkaError
from fastapi import APIRouter, Path, Request
from redis.exceptions import RedisError

from salespulse.api.dependencies import ProducerDep, ReadModelDep, SettingsDep
from salespulse.api.errors import ApiError
from salespulse.api.intake import Intake
from salespulse.api.metrics import WEBHOOK_REQUESTS
from salespulse.api.models import WebhookResult, errors
from salespulse.webhooks.core import Malformed
from salespulse.webhooks.providers import PROVIDERS, Delivery

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

MAX_BODY_BYTES = 1024 * 1024  # (app.py's BodyLimit)
BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {}},
    "application/x-www-form-urlencoded": {"schema": {"type": "object", "additionalProperties": {"type": "string"}}},
    "text/plain": {"schema": {"type": "string", "description": "AMI events (Asterisk)"}},
}}}
ProviderName = Annotated[str, Path(description="twilio, aircall, asterisk, hubspot, pipedrive or salesforce")]


def _public_url(request: Request, base: str | None) -> str:
    if not base:
        return str(request.url)
    query = request.url.query
    return base.rstrip("/") + request.url.path + (f"?{query}" if query else "")


@router.post("/{provider}", response_model=WebhookResult, openapi_extra=BODY, summary="Take a provider's webhook",
             responses=errors(401, 403, 404, 413, 422, 503,
                              e401="Not signed with the provider's secret configured here (`bad_signature`).",
                              e403="This provider's secrets are not configured (`provider_disabled`).",
                              e404="No such provider (`unknown_provider`).",
                              e413=f"A body over {MAX_BODY_BYTES} bytes (`body_too_large`).",
                              e422="A payload the provider would not send (`malformed_payload`).",
                              e503="Kafka or Redis does not answer (`unavailable`): the provider's retry is safe."))
async def receive(provider: ProviderName, request: Request, settings: SettingsDep, producer: ProducerDep,
                  readmodel: ReadModelDep) -> dict:
    """Take a provider's native webhook: check its signature, translate its events into canonical
    CloudEvents (merged with what is known of the call or deal) and produce them to Kafka.

    200 with one result per provider event: `accepted`, `duplicate` (taken before), `held`
    (the deal is not complete yet), `unmapped` (no rep has that id, or the stage is not
    mapped: dead-lettered with the payload), `invalid` (dead-lettered), `ignored` (carries no
    figure). 401 bad signature, 403 provider not configured, 422 malformed payload, 503 retry.
    """
    spec = PROVIDERS.get(provider)
    if spec is None:
        raise ApiError(404, "unknown_provider", f"no webhook for {provider!r}; providers: {', '.join(PROVIDERS)}")
    missing = [name.upper() for name in spec.secrets if not getattr(settings, name)]
    if missing:
        WEBHOOK_REQUESTS.labels(provider, "disabled").inc()
        raise ApiError(403, "provider_disabled", f"{provider} webhooks are off: set {' and '.join(missing)}")
    body = await request.body()  # at most MAX_BODY_BYTES: bodylimit.BodyLimit refuses more before
    delivery = Delivery(request.method, _public_url(request, settings.webhook_public_url),
                        {k.lower(): v for k, v in request.headers.items()}, body, datetime.now(timezone.utc))
    try:
        authentic = spec.authentic(delivery, settings)
    except Malformed:
        authentic = False
    if not authentic:
        WEBHOOK_REQUESTS.labels(provider, "unauthorized").inc()
        raise ApiError(401, "bad_signature", f"the request is not signed with the {provider} secret configured here")
    try:
        parsed = spec.read(delivery, settings)
    except Malformed as exc:
        WEBHOOK_REQUESTS.labels(provider, "malformed").inc()
        raise ApiError(422, "malformed_payload", f"{provider}: {exc}") from None
    try:
        results = await Intake(settings, readmodel, producer, request.app.state.admission).take(spec, parsed)
    except (KafkaError, RedisError) as exc:
        WEBHOOK_REQUESTS.labels(provider, "unavailable").inc()
        raise ApiError(503, "unavailable", f"{exc.__class__.__name__}; retry the delivery: it is safe") from None
    WEBHOOK_REQUESTS.labels(provider, "taken").inc()
    return {"provider": provider, "events": [r.to_doc() for r in results]}
