"""Pure sales-KPI domain: no Kafka, Redis, HTTP or Prometheus imports, time passed in.

- `periods`: calendar buckets in the business time zone, progress through a period.
- `money`: exact amounts in the reporting currency (integer minor units).
- `events`: the domain events, field for field the JSON Schemas in schemas/.
- `entities`: call / deal / order state, how each event changes it, what it contributes.
- `aggregation`: applies a batch of events to partition-owned rows, idempotently.
- `kpis`: the KPI catalog, KPI values from measures, targets, pace and levels.
"""
