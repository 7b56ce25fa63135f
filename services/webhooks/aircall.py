"""Aircall webhooks: JSON `{"resource", "event", "timestamp", "token", "data"}`.

Call events used: `call.created` (start), `call.answered`, `call.hungup` (end, right away)
and `call.ended` (end, ~30 s later with every field). `data` is Aircall's Call object:
`id, direction, started_at, answered_at, ended_at` (epoch seconds, null until known),
`missed_call_reason`, `voicemail`, `user` (the agent, null when nobody took the call) and
`number` (the Aircall line). Aircall does not sign: every body carries the webhook's
`token`, compared in constant time with AIRCALL_WEBHOOK_TOKEN.

Who is the rep: `user.id`, or for a call nobody took, the line: `number:<number.id>` (a rep
record listing it counts the line's missed calls, e.g. a team's shared line).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from salespulse.webhooks.core import CALL, Change, Ignored, Malformed, Parsed, epoch, iso, require

CALL_EVENTS = ("call.created", "call.answered", "call.hungup", "call.ended")


def verify(token: str, body: Any) -> bool:
    sent = body.get("token") if isinstance(body, dict) else None
    return isinstance(sent, str) and hmac.compare_digest(sent.encode(), token.encode())


def _when(data: Mapping[str, Any], name: str) -> str | None:
    value = data.get(name)
    return None if value in (None, "", 0) else iso(epoch(value, f"data.{name}"))


def parse(body: Any, received_at: datetime) -> list[Parsed]:
    if not isinstance(body, dict):
        raise Malformed("an Aircall webhook is a JSON object with resource, event, timestamp, token and data")
    event = require(body, "event", "webhook", str)
    data = body.get("data")
    if not isinstance(data, dict):
        raise Malformed("webhook: data must be an object")
    if body.get("resource") != "call" or event not in CALL_EVENTS:
        return [Ignored(f"{event}:{data.get('id')}", f"{event} carries no call start, answer or end", body)]
    call_id = require(data, "id", "data")
    at = epoch(body["timestamp"], "timestamp") if body.get("timestamp") else received_at
    direction = data.get("direction")
    if direction not in ("inbound", "outbound"):
        raise Malformed(f"data.direction: {direction!r} is not inbound or outbound")
    user, number = data.get("user"), data.get("number")
    people = []
    if isinstance(user, dict) and user.get("id") is not None:
        people.append([str(user["id"]), None])
    if isinstance(number, dict) and number.get("id") is not None:
        people.append([f"number:{number['id']}", None])
    fields: dict[str, Any] = {"direction": direction, "started_at": _when(data, "started_at")}
    if people:
        fields["people"] = people
    answered_at = _when(data, "answered_at")
    if answered_at is not None:
        fields["answered_at"] = answered_at
    if event in ("call.hungup", "call.ended"):
        fields["ended_at"] = _when(data, "ended_at") or iso(at)
        if answered_at is not None and not data.get("missed_call_reason"):
            fields["status"] = "answered"
        else:
            fields["status"] = "voicemail" if data.get("voicemail") else "missed"
    if fields["started_at"] is None:
        del fields["started_at"]
    return [Change(f"{event}:{call_id}", CALL, f"aircall-{call_id}", at, fields, body)]
