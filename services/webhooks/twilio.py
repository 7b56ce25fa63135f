"""Twilio Voice status callbacks (form-encoded), signed with X-Twilio-Signature.

Twilio posts `CallSid, CallStatus, Direction, From, To, Timestamp (RFC 2822), SequenceNumber`
and, once the call is over, `CallDuration` (seconds). With StatusCallbackEvent
`initiated ringing answered completed` the call's start, answer and end each arrive; with
the default (completed only), answer and start are taken as `Timestamp - CallDuration`
(guesses: a start or answer callback, early or late, replaces them).

Who is the rep: Twilio knows numbers and Client identities, not reps. The rep is the side
(To first for an inbound call, From first for an outbound one) whose id a rep record lists
under `twilio`, e.g. `client:alice` or the rep's direct number; the call is inbound when the
rep is on the To side.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime

from salespulse.webhooks.core import CALL, Change, Ignored, Malformed, Parsed, iso, require, seconds

# CallStatus -> SalesPulse call status once the call is over.
FINAL_STATUS = {"completed": "answered", "busy": "busy", "failed": "failed", "no-answer": "missed",
                "canceled": "missed"}
LIVE_STATUS = ("queued", "initiated", "ringing", "in-progress")


def signature(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """Twilio's scheme: base64(HMAC-SHA1(auth token, URL + each POST name and value, sorted by name))."""
    text = url + "".join(name + params[name] for name in sorted(params))
    return base64.b64encode(hmac.new(auth_token.encode(), text.encode(), hashlib.sha1).digest()).decode()


def verify(auth_token: str, url: str, params: Mapping[str, str], header: str | None) -> bool:
    # bytes: compare_digest raises TypeError for a str with non-ASCII characters (a forged header)
    return bool(header) and hmac.compare_digest(signature(auth_token, url, params).encode(), header.encode())


def _time(params: Mapping[str, str], received_at: datetime) -> datetime:
    raw = params.get("Timestamp")
    if not raw:
        return received_at
    try:
        moment = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        raise Malformed(f"Timestamp: {raw!r} is not an RFC 2822 date") from None
    if moment.tzinfo is None:
        raise Malformed(f"Timestamp: {raw!r} has no UTC offset")
    return moment


def parse(params: Mapping[str, str], received_at: datetime) -> list[Parsed]:
    """One status callback -> one change of the call `twilio-{CallSid}`."""
    sid = require(params, "CallSid", "status callback")
    status = require(params, "CallStatus", "status callback")
    direction = require(params, "Direction", "status callback")
    if direction != "inbound" and not direction.startswith("outbound"):
        raise Malformed(f"Direction: {direction!r} is not inbound, outbound-api or outbound-dial")
    if status not in FINAL_STATUS and status not in LIVE_STATUS:
        raise Malformed(f"CallStatus: {status!r} is not a Twilio call status")
    native_id = f"{sid}:{params.get('SequenceNumber') or status}"
    if "From" not in params and "To" not in params:
        raise Malformed("status callback: neither From nor To is given")
    at = _time(params, received_at)
    sides = [(params.get("To"), "inbound"), (params.get("From"), "outbound")]
    people = [[native, side] for native, side in (sides if direction == "inbound" else sides[::-1]) if native]
    fields: dict[str, object] = {"people": people}
    guesses: dict[str, object] = {}
    if status == "queued":
        return [Ignored(native_id, "queued: the call has not started", dict(params))]
    if status in ("initiated", "ringing"):
        fields["started_at"] = iso(at)
    elif status == "in-progress":
        fields["answered_at"] = iso(at)
        guesses["started_at"] = iso(at)
    else:
        fields["ended_at"] = iso(at)
        fields["status"] = "voicemail" if params.get("AnsweredBy", "").startswith("machine") else FINAL_STATUS[status]
        talked = seconds(params.get("CallDuration") or 0, "CallDuration") if status == "completed" else None
        if talked is not None:
            guesses["answered_at"] = iso(at - talked)
        guesses["started_at"] = iso(at - talked if talked is not None else at)
    return [Change(native_id, CALL, f"twilio-{sid}", at, fields, dict(params), guesses)]
