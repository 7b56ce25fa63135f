"""HubSpot webhooks: a JSON array of events, signed with X-HubSpot-Signature-v3.

Deal events used: `deal.creation`, `deal.propertyChange` (one property per event:
`propertyName`, `propertyValue`) and the generic `object.creation` / `object.propertyChange`
for objectTypeId `0-3` (deals). Every event has `eventId, subscriptionId, portalId,
occurredAt` (epoch ms) and `objectId`. A property change is merged with what is known of the
deal; nothing is published until its owner, stage and amount are known (subscribe to
`dealstage`, `amount`, `hubspot_owner_id`, and `createdate`, `closedate`,
`deal_currency_code`, `hs_deal_stage_probability`, `closed_lost_reason` for the rest).

Signature v3: base64(HMAC-SHA256(app client secret, method + URI + body + timestamp)), the
timestamp (X-HubSpot-Request-Timestamp, epoch ms) no older than 5 minutes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime
from typing import Any

from salespulse.webhooks.core import DEAL, Change, Ignored, Malformed, Parsed, amount, epoch, instant, iso, ratio, require

MAX_AGE_MS = 5 * 60 * 1000
DEAL_OBJECT_TYPE = "0-3"
# The default sales pipeline's stage ids; other pipelines' stages go in WEBHOOK_STAGES.
DEFAULT_STAGES = {"appointmentscheduled": "lead", "qualifiedtobuy": "qualified", "presentationscheduled": "proposal",
                  "decisionmakerboughtin": "negotiation", "contractsent": "negotiation",
                  "closedwon": "won", "closedlost": "lost"}


def signature(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    text = method.encode() + uri.encode() + body + timestamp.encode()
    return base64.b64encode(hmac.new(secret.encode(), text, hashlib.sha256).digest()).decode()


def verify(secret: str, method: str, uri: str, body: bytes, timestamp: str | None, header: str | None,
           now: datetime) -> bool:
    if not header or not timestamp or not timestamp.isdigit():
        return False
    if abs(now.timestamp() * 1000 - int(timestamp)) > MAX_AGE_MS:
        return False  # a replayed request
    return hmac.compare_digest(signature(secret, method, uri, body, timestamp).encode(), header.encode())


def _property(name: str, value: Any, where: str) -> dict[str, Any] | None:
    """A deal property as canonical fields; None for a property SalesPulse does not use."""
    if name == "dealstage":
        if value in (None, ""):
            raise Malformed(f"{where}: a deal stage cannot be empty")
        return {"stage": str(value)}
    if name == "amount":
        return {"amount": amount(value, where)}
    if name == "hubspot_owner_id":
        return {"people": [[str(value), None]]} if value not in (None, "") else {"people": []}
    if name == "createdate":
        return {"created_at": iso(instant(value, where))}
    if name == "closedate":
        return {"closed_at": iso(instant(value, where))} if value not in (None, "") else None
    if name == "deal_currency_code":
        return {"currency": str(value).upper()} if value else None
    if name == "hs_deal_stage_probability":
        return {"probability": ratio(value, where)}
    if name == "closed_lost_reason":
        return {"loss_reason": str(value)[:200]} if value else None
    return None


def parse(body: Any, received_at: datetime) -> list[Parsed]:
    if not isinstance(body, list):
        raise Malformed("a HubSpot webhook body is a JSON array of events")
    parsed: list[Parsed] = []
    for index, event in enumerate(body):
        where = f"event {index}"
        if not isinstance(event, dict):
            raise Malformed(f"{where}: an event is an object")
        kind = require(event, "subscriptionType", where, str)
        object_id = require(event, "objectId", where)
        native_id = f"{event.get('portalId')}:{event.get('subscriptionId')}:{require(event, 'eventId', where)}:{object_id}"
        at = epoch(require(event, "occurredAt", where), f"{where}.occurredAt", unit=1000)
        action = kind.split(".", 1)[1] if "." in kind else kind
        is_deal = kind.startswith("deal.") or (kind.startswith("object.")
                                               and str(event.get("objectTypeId")) == DEAL_OBJECT_TYPE)
        if not is_deal or action not in ("creation", "propertyChange"):
            parsed.append(Ignored(native_id, f"{kind} is not a deal creation or property change", event))
            continue
        if action == "creation":
            fields = {"created_at": iso(at)}
        else:
            name = require(event, "propertyName", where, str)
            fields = _property(name, event.get("propertyValue"), f"{where}.propertyValue")
            if fields is None:
                parsed.append(Ignored(native_id, f"deal property {name} is not used by SalesPulse", event))
                continue
        parsed.append(Change(native_id, DEAL, f"hubspot-{object_id}", at, fields, event))
    return parsed
