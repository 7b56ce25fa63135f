"""Asterisk Manager Interface (AMI) events: `Cdr`, `AgentComplete`, `QueueCallerAbandon`.

Received as AMI sends them (`Key: Value` lines, events separated by a blank line; what the
AMI connector forwards) or as JSON objects with the same keys. Asterisk does not sign: the
sender (the connector, or a dialplan/AGI script) presents ASTERISK_WEBHOOK_TOKEN as a bearer
token.

- `Cdr` (cdr_manager): one call record. `Channel` is party A, `DestinationChannel` party B;
  `StartTime`, `AnswerTime`, `EndTime` are the PBX's local times (ASTERISK_TIMEZONE);
  `Disposition` ANSWERED / NO ANSWER / BUSY / FAILED / CONGESTION.
- `AgentComplete` (app_queue): a queue member finished with a caller; `HoldTime` and
  `TalkTime` seconds, `Interface` the member's device.
- `QueueCallerAbandon`: the caller hung up while queued; `HoldTime` seconds.
Queue events carry no time of their own: the AMI `Timestamp` header (timestampevents=yes in
manager.conf) dates them, else the time they are received.

Who is the rep: the extension in a channel or interface (`PJSIP/201-0000002a` -> `201`),
matched against the rep's `extension` or `asterisk` ids; an abandoned queue call counts for
the rep record listing `queue:<Queue>`. All of one call's events share `asterisk-<Uniqueid>`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from salespulse.webhooks.core import CALL, Change, Ignored, Malformed, Parsed, epoch, iso, require, seconds

DISPOSITIONS = {"ANSWERED": "answered", "NO ANSWER": "missed", "BUSY": "busy", "FAILED": "failed",
                "CONGESTION": "failed"}
_DEVICE = re.compile(r"^[A-Za-z0-9_]+/([^-@/;]+)")


def split_events(text: str) -> list[dict[str, str]]:
    """AMI wire format -> one dict per event (blank line between events; `Key: Value` lines)."""
    events, current = [], {}
    for line in text.replace("\r\n", "\n").split("\n"):
        if not line.strip():
            if current:
                events.append(current)
                current = {}
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise Malformed(f"AMI line {line[:80]!r} is not `Key: Value`")
        current[name.strip()] = value.strip()
    if current:
        events.append(current)
    return events


def extension(channel: str | None) -> str | None:
    """`PJSIP/201-0000002a`, `SIP/201-...`, `Local/201@from-queue-...` -> `201`."""
    match = _DEVICE.match(channel or "")
    return match.group(1) if match else None


def _local(value: str, zone: ZoneInfo, where: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise Malformed(f"{where}: {value!r} is not a time like 2026-11-22 09:14:03") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=zone)


def _stamp(event: Mapping[str, str], received_at: datetime) -> datetime:
    raw = event.get("Timestamp")
    return epoch(raw, "Timestamp") if raw else received_at


def parse(events: list[Mapping[str, Any]], zone: ZoneInfo, received_at: datetime) -> list[Parsed]:
    parsed: list[Parsed] = []
    for index, event in enumerate(events):
        if not isinstance(event, Mapping):
            raise Malformed(f"event {index}: an AMI event is an object of its keys")
        event = {str(k): str(v) for k, v in event.items() if v is not None}
        name = event.get("Event")
        if name is None:
            raise Malformed(f"event {index}: Event is missing")
        reader = _READERS.get(name)
        if reader is None:
            parsed.append(Ignored(f"{name}:{event.get('Uniqueid') or event.get('UniqueID')}",
                                  f"AMI event {name} is not a call outcome (Cdr, AgentComplete, QueueCallerAbandon)",
                                  event))
            continue
        parsed.append(reader(event, zone, received_at))
    return parsed


def _cdr(event: dict[str, str], zone: ZoneInfo, received_at: datetime) -> Change:
    unique = require(event, "UniqueID", "Cdr")
    disposition = require(event, "Disposition", "Cdr", str).upper()
    if disposition not in DISPOSITIONS:
        raise Malformed(f"Cdr: Disposition {disposition!r} is not one of {', '.join(DISPOSITIONS)}")
    started = _local(require(event, "StartTime", "Cdr", str), zone, "Cdr.StartTime")
    ended = _local(require(event, "EndTime", "Cdr", str), zone, "Cdr.EndTime")
    status = DISPOSITIONS[disposition]
    fields: dict[str, Any] = {"started_at": iso(started), "ended_at": iso(ended), "status": status}
    if status == "answered":
        answer = event.get("AnswerTime")
        billed = seconds(event.get("BillableSeconds") or 0, "Cdr.BillableSeconds")
        fields["answered_at"] = iso(_local(answer, zone, "Cdr.AnswerTime") if answer else ended - billed)
    people = [[ext, side] for ext, side in ((extension(event.get("Channel")), "outbound"),
                                           (extension(event.get("DestinationChannel")), "inbound")) if ext]
    if people:
        fields["people"] = people
    native = f"Cdr:{unique}:{event.get('DestinationChannel', '')}"
    return Change(native, CALL, f"asterisk-{unique}", ended, fields, event)


def _agent_complete(event: dict[str, str], zone: ZoneInfo, received_at: datetime) -> Change:
    unique = require(event, "Uniqueid", "AgentComplete")
    ended = _stamp(event, received_at)
    answered = ended - seconds(event.get("TalkTime") or 0, "AgentComplete.TalkTime")
    started = answered - seconds(event.get("HoldTime") or 0, "AgentComplete.HoldTime")
    member = extension(event.get("Interface")) or event.get("MemberName")
    fields: dict[str, Any] = {"direction": "inbound", "started_at": iso(started), "answered_at": iso(answered),
                              "ended_at": iso(ended), "status": "answered", "queue": event.get("Queue") or None}
    if member:
        fields["people"] = [[member, "inbound"]]
    return Change(f"AgentComplete:{unique}", CALL, f"asterisk-{unique}", ended,
                  {k: v for k, v in fields.items() if v is not None}, event)


def _abandon(event: dict[str, str], zone: ZoneInfo, received_at: datetime) -> Change:
    unique = require(event, "Uniqueid", "QueueCallerAbandon")
    queue = require(event, "Queue", "QueueCallerAbandon")
    ended = _stamp(event, received_at)
    started = ended - seconds(event.get("HoldTime") or 0, "QueueCallerAbandon.HoldTime")
    fields = {"direction": "inbound", "started_at": iso(started), "ended_at": iso(ended), "status": "missed",
              "queue": queue, "people": [[f"queue:{queue}", "inbound"]]}
    return Change(f"QueueCallerAbandon:{unique}", CALL, f"asterisk-{unique}", ended, fields, event)


_READERS = {"Cdr": _cdr, "AgentComplete": _agent_complete, "QueueCallerAbandon": _abandon}
