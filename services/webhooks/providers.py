"""The providers POST /webhooks/{provider} accepts: how each is authenticated and read."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

import orjson

from salespulse.settings import Settings
from salespulse.webhooks import aircall, asterisk, hubspot, pipedrive, salesforce, twilio
from salespulse.webhooks.core import Malformed, Parsed


@dataclass(frozen=True)
class Delivery:
    """One HTTP request from a provider, as received."""

    method: str
    url: str  # as the provider called it: WEBHOOK_PUBLIC_URL + path + query when behind a proxy
    headers: Mapping[str, str]  # lower-case names
    body: bytes
    received_at: datetime

    # Decoded once: checking the signature and reading the events both need the body.
    @cached_property
    def json(self) -> Any:
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError as exc:
            raise Malformed(f"the body is not valid JSON: {exc}") from None

    @cached_property
    def form(self) -> dict[str, str]:
        try:
            return dict(parse_qsl(self.body.decode(), keep_blank_values=True, strict_parsing=bool(self.body)))
        except (UnicodeDecodeError, ValueError):
            raise Malformed("the body is not application/x-www-form-urlencoded") from None

    def bearer(self) -> str | None:
        value = self.headers.get("authorization", "")
        return value[7:] if value[:7].lower() == "bearer " else None


@dataclass(frozen=True)
class Provider:
    name: str
    secrets: tuple[str, ...]  # settings that must be set before its webhooks are accepted
    authentic: Callable[[Delivery, Settings], bool]
    read: Callable[[Delivery, Settings], list[Parsed]]
    stages: Mapping[str, str] = field(default_factory=dict)  # defaults, under WEBHOOK_STAGES


def _token(expected: str | None, sent: str | None) -> bool:
    return bool(expected) and bool(sent) and hmac.compare_digest(expected.encode(), sent.encode())


def _asterisk_events(delivery: Delivery) -> list[Any]:
    if delivery.headers.get("content-type", "").startswith("application/json"):
        body = delivery.json
        return body if isinstance(body, list) else [body]
    try:
        return asterisk.split_events(delivery.body.decode())
    except UnicodeDecodeError:
        raise Malformed("the body is neither JSON nor AMI text") from None


PROVIDERS: dict[str, Provider] = {p.name: p for p in (
    Provider("twilio", ("twilio_auth_token",),
             lambda d, s: twilio.verify(s.twilio_auth_token, d.url, d.form, d.headers.get("x-twilio-signature")),
             lambda d, s: twilio.parse(d.form, d.received_at)),
    Provider("aircall", ("aircall_webhook_token",),
             lambda d, s: aircall.verify(s.aircall_webhook_token, d.json),
             lambda d, s: aircall.parse(d.json, d.received_at)),
    Provider("asterisk", ("asterisk_webhook_token",),
             lambda d, s: _token(s.asterisk_webhook_token, d.bearer()),
             lambda d, s: asterisk.parse(_asterisk_events(d), ZoneInfo(s.asterisk_timezone or s.business_timezone),
                                         d.received_at)),
    Provider("hubspot", ("hubspot_client_secret",),
             lambda d, s: hubspot.verify(s.hubspot_client_secret, d.method, d.url, d.body,
                                         d.headers.get("x-hubspot-request-timestamp"),
                                         d.headers.get("x-hubspot-signature-v3"), d.received_at),
             lambda d, s: hubspot.parse(d.json, d.received_at), hubspot.DEFAULT_STAGES),
    Provider("pipedrive", ("pipedrive_webhook_user", "pipedrive_webhook_password"),
             lambda d, s: pipedrive.verify(s.pipedrive_webhook_user, s.pipedrive_webhook_password,
                                           d.headers.get("authorization")),
             lambda d, s: pipedrive.parse(d.json, d.received_at), pipedrive.DEFAULT_STAGES),
    Provider("salesforce", ("salesforce_webhook_token",),
             lambda d, s: _token(s.salesforce_webhook_token, d.bearer()),
             lambda d, s: salesforce.parse(d.json, d.received_at), salesforce.DEFAULT_STAGES),
)}


def stages_of(provider: Provider, settings: Settings) -> dict[str, str]:
    """The provider's stage map: its defaults, overridden stage by stage by WEBHOOK_STAGES."""
    return {**provider.stages, **settings.webhook_stages.get(provider.name, {})}
