"""Prometheus metrics of the API, served at GET /metrics."""

from prometheus_client import Counter, Histogram

INGESTED = Counter("salespulse_ingest_events_total", "Events received by POST /events, by outcome.",
                   ["outcome"])
for _outcome in ("accepted", "rejected", "failed"):
    INGESTED.labels(_outcome)

REQUESTS = Histogram(
    "salespulse_http_request_seconds", "HTTP request latency by route template and status class.",
    ["route", "method", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
