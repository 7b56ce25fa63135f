"""Who may call /api/v1, and how often they may ingest.

A request names itself with `Authorization: Bearer <key>` (or `X-API-Key: <key>`); a
wallboard token may also come as `?token=` (a browser's EventSource cannot send headers), an
API key may not (URLs end up in logs and histories, and a key can write).
The scope a request needs follows from its route: POST /events needs `ingest`; any other
GET needs `read`; any other method needs `write`. Health probes, the wallboard page, the
OpenAPI document and /metrics are open; provider webhooks carry their providers' own
signatures. With no key and no token configured (development only: settings refuse it
elsewhere) every request is let through.
"""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass

from fastapi import Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from salespulse.api.errors import ApiError
from salespulse.settings import Settings

OPEN_PATHS = ("/api/v1/healthz", "/api/v1/readyz")
OWN_AUTH_PREFIX = "/api/v1/webhooks/"
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="salespulse"'}

bearer = HTTPBearer(auto_error=False, description="An API key (API_KEYS) or a wallboard token (WALLBOARD_TOKENS).")
api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="The same key, in its own header.")


@dataclass(frozen=True)
class Principal:
    name: str
    scopes: frozenset[str]
    wallboard: bool = False  # a wallboard token: read only, and may come in the URL (?token=)


ANONYMOUS = Principal("anonymous", frozenset({"read", "write", "ingest"}))


def needed_scope(method: str, path: str) -> str | None:
    if not path.startswith("/api/v1/") or path in OPEN_PATHS or path.startswith(OWN_AUTH_PREFIX):
        return None
    if path == "/api/v1/events":
        return "ingest"
    return "read" if method in ("GET", "HEAD", "OPTIONS") else "write"


class Keyring:
    def __init__(self, settings: Settings) -> None:
        self.keys = [(k.key.encode(), Principal(name, frozenset(k.scopes))) for name, k in settings.api_keys.items()]
        self.keys += [(t.encode(), Principal(f"wallboard-token-{i}", frozenset({"read"}), wallboard=True))
                      for i, t in enumerate(settings.wallboard_tokens)]
        self.open = not self.keys

    def find(self, presented: str) -> Principal | None:
        """The principal of a key; every key is compared, in constant time each."""
        found, given = None, presented.encode()
        for key, principal in self.keys:
            if hmac.compare_digest(key, given):
                found = principal
        return found


async def authorize(request: Request,
                    credentials: HTTPAuthorizationCredentials | None = Security(bearer),
                    header_key: str | None = Security(api_key_header)) -> None:
    """Global dependency: 401 without a valid key, 403 when its scopes lack the route's."""
    scope = needed_scope(request.method, request.url.path)
    if scope is None:
        return
    keyring: Keyring = request.app.state.keyring
    if keyring.open:
        request.state.principal = ANONYMOUS
        return
    in_header = (credentials.credentials if credentials else None) or header_key
    presented = in_header or request.query_params.get("token")
    if not presented:
        raise ApiError(401, "unauthorized", "an API key is needed: Authorization: Bearer <key>, X-API-Key: <key> "
                       "or, for wallboards, ?token=<token>", headers=CHALLENGE)
    principal = keyring.find(presented)
    if principal is None:
        raise ApiError(401, "unauthorized", "unknown API key or token", headers=CHALLENGE)
    if not in_header and not principal.wallboard:
        raise ApiError(401, "unauthorized", "an API key goes in a header (Authorization: Bearer <key> or X-API-Key), "
                       "not in the URL, which logs and browser histories keep; only wallboard tokens may",
                       headers=CHALLENGE)
    if scope not in principal.scopes:
        raise ApiError(403, "forbidden", f"{principal.name} has scopes {', '.join(sorted(principal.scopes))}; "
                       f"{request.method} {request.url.path} needs {scope}")
    request.state.principal = principal


class RateLimiter:
    """A token bucket per principal: `rate` events a second, up to `burst` at once.

    Without API keys a principal is a client address, and there is no end to those: a bucket
    that has filled up again is as good as none, so such buckets are forgotten whenever the
    buckets have doubled since they were last pruned (amortised: a pass per as many takes)."""

    def __init__(self, rate: float, burst: int, clock=time.monotonic, prune_above: int = 1024) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self.buckets: dict[str, tuple[float, float]] = {}  # who -> (tokens, as of)
        self.prune_above = self._floor = prune_above

    def prune(self, now: float) -> None:
        """Forget the buckets full again by `now`."""
        self.buckets = {who: (tokens, at) for who, (tokens, at) in self.buckets.items()
                        if tokens + (now - at) * self.rate < self.burst}
        self.prune_above = max(self._floor, 2 * len(self.buckets))

    def take(self, who: str, count: int) -> float:
        """Take `count` tokens; 0 if granted, else the seconds until they would be."""
        now = self.clock()
        if len(self.buckets) >= self.prune_above:
            self.prune(now)
        tokens, at = self.buckets.get(who, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.rate)
        if count > tokens:
            self.buckets[who] = (tokens, now)
            return (count - tokens) / self.rate if count <= self.burst else float("inf")
        self.buckets[who] = (tokens - count, now)
        return 0.0
