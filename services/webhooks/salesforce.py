"""Salesforce Change Data Capture: `OpportunityChangeEvent` messages, forwarded over HTTP.

Salesforce streams change events to subscribers (CometD or the Pub/Sub API), not to URLs;
a relay (a Pub/Sub API client, MuleSoft, an Event Relay to a webhook) posts them here, one
message or a JSON array, either as the streaming API delivers them
(`{"channel": "/data/OpportunityChangeEvent", "data": {"schema", "payload", "event": {"replayId"}}}`)
or as the bare payload. The payload holds `ChangeEventHeader` (`entityName, recordIds,
changeType, changedFields, commitTimestamp, transactionKey, sequenceNumber`) and the record's
fields: all set fields on CREATE, only the changed ones on UPDATE (the others are null, so
only `changedFields` are read). GAP_ events carry no values and are reported, not guessed.
Salesforce does not sign these; the relay presents SALESFORCE_WEBHOOK_TOKEN as a bearer token.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from salespulse.webhooks.core import DEAL, Change, Ignored, Malformed, Parsed, amount, epoch, instant, iso, ratio, require

# Salesforce's default Opportunity stages (StageName picklist).
DEFAULT_STAGES = {"Prospecting": "lead", "Qualification": "qualified", "Needs Analysis": "qualified",
                  "Value Proposition": "proposal", "Id. Decision Makers": "proposal",
                  "Perception Analysis": "proposal", "Proposal/Price Quote": "proposal",
                  "Negotiation/Review": "negotiation", "Closed Won": "won", "Closed Lost": "lost"}


def _date(value: Any, where: str) -> str:
    """A Date field ("2026-12-31", the end of that day is near enough) or a DateTime."""
    if isinstance(value, str) and len(value) == 10:
        value += "T00:00:00+00:00"
    return iso(instant(value, where))


# Opportunity field -> (canonical field, reader)
FIELDS = {
    "OwnerId": ("people", lambda v, w: [[str(v), None]]),
    "StageName": ("stage", lambda v, w: str(v)),
    "Amount": ("amount", amount),
    "CurrencyIsoCode": ("currency", lambda v, w: str(v).upper()),
    "CreatedDate": ("created_at", lambda v, w: iso(instant(v, w))),
    "CloseDate": ("closed_at", _date),
    "Probability": ("probability", lambda v, w: ratio(v, w, scale=100)),
    "LeadSource": ("source", lambda v, w: str(v)[:200]),
}


def _payloads(body: Any) -> list[tuple[dict[str, Any], Any]]:
    messages = body if isinstance(body, list) else [body]
    out = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise Malformed(f"message {index}: a change event is a JSON object")
        data = message.get("data")
        payload = data.get("payload") if isinstance(data, dict) else message.get("payload", message)
        if not isinstance(payload, dict) or not isinstance(payload.get("ChangeEventHeader"), dict):
            raise Malformed(f"message {index}: no ChangeEventHeader (send the change event as Salesforce delivers it)")
        out.append((payload, message))
    return out


def parse(body: Any, received_at: datetime) -> list[Parsed]:
    parsed: list[Parsed] = []
    for payload, message in _payloads(body):
        header = payload["ChangeEventHeader"]
        change_type = require(header, "changeType", "ChangeEventHeader", str)
        record_ids = header.get("recordIds") or []
        if not isinstance(record_ids, list) or not record_ids:
            raise Malformed("ChangeEventHeader.recordIds: no record id")
        key = f"{header.get('transactionKey')}:{header.get('sequenceNumber')}"
        if header.get("entityName") != "Opportunity":
            parsed += [Ignored(f"{key}:{r}", f"{header.get('entityName')} is not an Opportunity", message)
                       for r in record_ids]
            continue
        if change_type not in ("CREATE", "UPDATE", "UNDELETE"):
            reason = ("a gap event carries no field values: resynchronise the opportunity from Salesforce"
                      if change_type.startswith("GAP_") else f"an opportunity {change_type} changes no figure")
            parsed += [Ignored(f"{key}:{r}", reason, message) for r in record_ids]
            continue
        at = epoch(require(header, "commitTimestamp", "ChangeEventHeader"), "commitTimestamp", unit=1000)
        names = FIELDS if change_type != "UPDATE" else [n for n in header.get("changedFields") or () if n in FIELDS]
        fields: dict[str, Any] = {}
        for name in names:
            value = payload.get(name)
            if value is None and change_type != "UPDATE":
                continue
            canonical, read = FIELDS[name]
            fields[canonical] = read(value, name) if value is not None else ("0" if name == "Amount" else None)
        if payload.get("IsWon") is True or payload.get("IsClosed") is True and payload.get("IsWon") is False:
            fields["stage"] = "won" if payload.get("IsWon") else "lost"
        fields = {k: v for k, v in fields.items() if v is not None}
        for record_id in record_ids:
            parsed.append(Change(f"{key}:{record_id}", DEAL, f"salesforce-{record_id}", at, fields, message))
    return parsed
