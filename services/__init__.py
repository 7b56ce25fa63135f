"""SalesPulse: live sales KPIs from telephony, CRM and order events.

The folder is the `salespulse` import package. Sub-packages:

- `domain`: pure KPI math (periods, money, measures, KPI catalog); no I/O imports.
- `contracts`: the event schemas of schemas/, validation and topic names.
- `processor`: the stream processor, a Kafka consumer group (events -> measures -> Redis, kpi.updates).
- `api`: the FastAPI service (KPI reads, targets, ingest, metrics, health).
- `simulator`: a realistic event generator for demos and load.
- `devstack`: starts a local Apache Kafka (KRaft) and Redis for `make run` and the tests.
"""
