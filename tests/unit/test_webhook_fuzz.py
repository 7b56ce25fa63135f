"""Provider webhooks broken the ways senders and forgers break them: every request is either
refused with a reason (Malformed: 401 or 422, or an invalid event: dead-lettered) or read,
merged and built; nothing else is raised (the route would answer 500).

Each provider's documented payload (tests/unit/test_webhooks.py) is broken by hypothesis: a
field dropped, retyped or given a huge, negative, empty or oddly zoned value, the body cut
short or not text, the signature and auth headers any text, non-ASCII included.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from salespulse.contracts.events import InvalidEvent, encode_event, parse_event
from salespulse.domain.admission import refusal
from salespulse.domain.money import CurrencyConverter
from salespulse.domain.retention import Retention
from salespulse.settings import Settings
from salespulse.webhooks.core import Change, Context, Known, Malformed, build, merge
from salespulse.webhooks.providers import PROVIDERS, Delivery, stages_of
from tests.unit.test_webhooks import CDR, NOW, T0, aircall_event, callback, hs_change, pd_event, sf_message

SECRETS = Settings(twilio_auth_token="t0k", aircall_webhook_token="tok-45XX", asterisk_webhook_token="ast",
                   hubspot_client_secret="hs", pipedrive_webhook_user="u", pipedrive_webhook_password="p",
                   salesforce_webhook_token="sf")
CONVERTER = CurrencyConverter("EUR", {"USD": Decimal("0.9")})
RETENTION = Retention({}, 400)

SAMPLES: dict[str, Any] = {
    "twilio": callback("completed", "Mon, 23 Nov 2026 09:05:00 +0000", CallDuration="300"),
    "aircall": aircall_event("call.ended", status="done", answered_at=1795424410, ended_at=1795424700, duration=290),
    "hubspot": [hs_change(1, "amount", "1200.50", T0), hs_change(2, "dealstage", "closedwon", T0 + 1000)],
    "pipedrive": pd_event(status="won", won_time="2026-11-23T09:00:00Z"),
    "salesforce": sf_message("CREATE", ["Name", "StageName", "Amount", "OwnerId"], Name="Big deal",
                             StageName="Closed Won", Amount=12000, OwnerId="0055g00000AbCdEAAV",
                             CloseDate="2026-11-23"),
}

ODD = st.sampled_from([
    None, True, 0, -1, 2**63, -(2**70), 1e308, -1e-308, 0.5, "", " ", "0", "-5", "1e999", "NaN", "Infinity",
    "2026-11-23T09:00:00+25:00", "2026-13-45T99:99:99Z", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z",
    "Mon, 31 Feb 2026 25:00:00 +0000", "\u00e9\u00e8\u4e2d", "\x00", "a" * 5000, [], {}, [1, "x"], {"a": {}},
])
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30) | ODD,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=8)


def paths(value: Any, at: tuple = ()) -> list[tuple]:
    """Every path to a value inside nested dicts and lists."""
    found = [at]
    if isinstance(value, dict):
        for key, inner in value.items():
            found += paths(inner, (*at, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found += paths(inner, (*at, index))
    return found


def broken_at(value: Any, path: tuple, how: str, new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    copy = dict(value) if isinstance(value, dict) else list(value)
    if not rest and how == "drop":
        del copy[head]
    else:
        copy[head] = broken_at(value[head], rest, how, new)
    return copy


@st.composite
def broken(draw, sample: Any) -> Any:
    """The sample with one to three of its values dropped or replaced."""
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(paths(sample)))
        how = draw(st.sampled_from(["drop", "replace"])) if path else "replace"
        sample = broken_at(sample, path, how, draw(JSON_VALUES) if how == "replace" else None)
    return sample


def body_of(provider: str, payload: Any) -> tuple[bytes, str]:
    if provider == "twilio":
        params = payload if isinstance(payload, dict) else {"payload": payload}
        return urlencode({str(k): json.dumps(v) if not isinstance(v, str) else v
                          for k, v in params.items()}).encode(), "application/x-www-form-urlencoded"
    return json.dumps(payload).encode(), "application/json"  # (orjson refuses integers over 64 bits)


HEADER_TEXT = st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=40)  # latin-1, as HTTP has it


@st.composite
def deliveries(draw) -> tuple[str, Delivery]:
    provider = draw(st.sampled_from(sorted(PROVIDERS)))
    if provider == "asterisk":
        lines = draw(st.lists(st.tuples(st.sampled_from(["Event", "StartTime", "AnswerTime", "EndTime", "Disposition",
                                                         "Source", "Destination", "UniqueID", "Timestamp",
                                                         "TalkTime", "HoldTime", "Queue", "Uniqueid"]),
                                        st.text(max_size=30).map(lambda t: t.replace("\r", "").replace("\n", ""))),
                              max_size=12))
        edited = "".join(f"{k}: {v}\r\n" for k, v in lines)
        body = draw(st.sampled_from([CDR, CDR.replace("\r\n\r\n", "\r\n" + edited + "\r\n"), edited + "\r\n"]))
        raw, content_type = body.encode(), draw(st.sampled_from(["text/plain", "application/json"]))
    else:
        raw, content_type = body_of(provider, draw(broken(SAMPLES[provider])))
    raw = draw(st.sampled_from([raw, raw[: len(raw) // 2], raw + b"\xff\xfe", b"", b"\x00\x01garbage"]))
    headers = {"content-type": content_type}
    for name in ("authorization", "x-twilio-signature", "x-hubspot-signature-v3", "x-hubspot-request-timestamp"):
        if draw(st.booleans()):
            headers[name] = draw(st.one_of(HEADER_TEXT, st.just("Bearer ast"), st.just("Bearer sf"),
                                           st.just(str(int(NOW.timestamp() * 1000)))))
    return provider, Delivery("POST", "https://pulse.example.com/api/v1/webhooks/" + provider, headers, raw, NOW)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(deliveries())
def test_a_broken_or_forged_delivery_is_refused_with_a_reason_or_read_never_anything_else(case):
    provider, delivery = case
    spec = PROVIDERS[provider]
    try:
        spec.authentic(delivery, SECRETS)  # the route treats Malformed here as not authentic (401)
    except Malformed:
        pass
    try:
        parsed = spec.read(delivery, SECRETS)  # Malformed: 422 malformed_payload
    except Malformed:
        return
    context = Context(provider, lambda native: "rep-1", stages_of(spec, SECRETS), "EUR")
    known = Known()
    for item in parsed:
        if not isinstance(item, Change):
            continue
        known = merge(known, item)
        built = build(known, item, context)
        if built.event is None:
            continue
        try:  # what the intake does with a built event: invalid ones are dead-lettered with the reason
            envelope = parse_event(built.event)
            encode_event(built.event)
            refusal(envelope.data, CONVERTER, RETENTION, datetime.now(timezone.utc))
        except InvalidEvent:
            pass
