"""Prometheus metrics of the API, served at GET /metrics."""

from prometheus_client import Counter, Histogram

INGESTED = Counter("salespulse_ingest_events_total", "Events received by POST /events, by outcome.",
                   ["outcome"])
for _outcome in ("accepted", "rejected", "failed", "rate_limited"):
    INGESTED.labels(_outcome)

REQUESTS = Histogram(
    "salespulse_http_request_seconds", "HTTP request latency by route template and status class.",
    ["route", "method", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)

WEBHOOK_REQUESTS = Counter(
    "salespulse_webhook_requests_total",
    "Requests to POST /webhooks/{provider}, by outcome: taken, unauthorized (bad or missing signature), "
    "malformed, disabled (no secret set), unavailable (Kafka or Redis down).",
    ["provider", "outcome"])
WEBHOOK_EVENTS = Counter(
    "salespulse_webhook_events_total",
    "Provider events taken by POST /webhooks/{provider}, by outcome: accepted, duplicate, held (deal not "
    "complete yet), unmapped (no rep or stage for it: dead-lettered), invalid (dead-lettered), ignored.",
    ["provider", "outcome"])
