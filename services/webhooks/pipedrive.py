"""Pipedrive webhooks v2: JSON `{"meta", "data", "previous"}`, protected by HTTP Basic auth.

`meta.entity` `deal`, `meta.action` `create` / `change` / `delete`; `data` is the whole deal
after the change (`id, value, currency, status, stage_id, owner_id, add_time, update_time,
won_time, lost_time, close_time, lost_reason, probability`), `previous` only what changed.
Pipedrive does not sign; the webhook is created with an HTTP auth user and password
(PIPEDRIVE_WEBHOOK_USER / PIPEDRIVE_WEBHOOK_PASSWORD), checked on every request.

Stage: `status` won / lost wins; an open deal's `stage_id` is looked up in WEBHOOK_STAGES
(defaults: stage ids 1-5 of the first pipeline Pipedrive creates).
"""

from __future__ import annotations

import base64
import hmac
from datetime import datetime
from typing import Any

from salespulse.webhooks.core import DEAL, Change, Ignored, Malformed, Parsed, amount, instant, iso, ratio, require

DEFAULT_STAGES = {"1": "lead", "2": "qualified", "3": "qualified", "4": "proposal", "5": "negotiation"}


def verify(user: str, password: str, header: str | None) -> bool:
    expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    return bool(header) and hmac.compare_digest(header.encode(), expected.encode())


def _time(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value in (None, ""):
        return None
    text = str(value).replace(" ", "T")
    if len(text) == 19:  # "2026-11-22 09:14:03": Pipedrive's times without an offset are UTC
        text += "+00:00"
    return iso(instant(text, f"data.{name}"))


def parse(body: Any, received_at: datetime) -> list[Parsed]:
    if not isinstance(body, dict) or not isinstance(body.get("meta"), dict):
        raise Malformed("a Pipedrive v2 webhook is a JSON object with meta, data and previous")
    meta, data = body["meta"], body.get("data")
    entity, action = meta.get("entity"), meta.get("action")
    entity_id = meta.get("entity_id") or (data or {}).get("id")
    native_id = f"{entity}:{entity_id}:{action}:{meta.get('id') or meta.get('timestamp')}"
    if entity != "deal":
        return [Ignored(native_id, f"{entity} is not a deal", body)]
    if action not in ("create", "change"):
        return [Ignored(native_id, f"a deal {action} changes no figure (deleted deals keep their history)", body)]
    if not isinstance(data, dict):
        raise Malformed("data: the deal after the change is missing")
    deal_id = require(data, "id", "data")
    updated = _time(data, "update_time")
    at = datetime.fromisoformat(updated) if updated else received_at
    status = data.get("status")
    if status not in ("open", "won", "lost", "deleted"):
        raise Malformed(f"data.status: {status!r} is not open, won, lost or deleted")
    if status == "deleted":
        return [Ignored(native_id, "the deal is deleted", body)]
    owner = data.get("owner_id", data.get("user_id"))
    if isinstance(owner, dict):  # v1-style expanded user
        owner = owner.get("id")
    fields: dict[str, Any] = {
        "stage": status if status != "open" else str(require(data, "stage_id", "data")),
        "amount": amount(data.get("value"), "data.value"),
        "currency": str(require(data, "currency", "data")).upper(),
        "created_at": _time(data, "add_time"),
        "closed_at": (_time(data, "won_time" if status == "won" else "lost_time") or _time(data, "close_time"))
        if status != "open" else None,
        "loss_reason": str(data["lost_reason"])[:200] if status == "lost" and data.get("lost_reason") else None,
        "probability": ratio(data.get("probability"), "data.probability", scale=100),
        "people": [[str(owner), None]] if owner is not None else None,
    }
    return [Change(native_id, DEAL, f"pipedrive-{deal_id}", at,
                   {k: v for k, v in fields.items() if v is not None}, body)]
