"""Prometheus metrics of the stream processor, served on PROCESSOR_METRICS_PORT."""

from prometheus_client import Counter, Gauge, Histogram

from salespulse.contracts.events import SOURCE_TOPICS

EVENTS = Counter(
    "salespulse_processor_events_total",
    "Events read from the sales.* topics, by outcome.",
    ["topic", "outcome"],
)
for _topic in SOURCE_TOPICS:
    for _outcome in ("applied", "duplicate", "stale", "replayed", "deadlettered"):
        EVENTS.labels(_topic, _outcome)

FAILED_EVENTS = Counter(
    "salespulse_processor_failed_events_total",
    "Events the processor's code raised on (a bug), dead-lettered with the error; its log has the traceback.",
    ["topic"],
)
for _topic in SOURCE_TOPICS:
    FAILED_EVENTS.labels(_topic)

BATCH_SIZE = Histogram(
    "salespulse_processor_batch_events", "Events per processed batch.",
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000),
)
BATCH_SECONDS = Histogram(
    "salespulse_processor_batch_seconds", "Time to apply a batch and publish its rows.",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
BATCH_ROWS = Histogram(
    "salespulse_processor_batch_rows", "Measure rows a batch changed (each copied to Redis, and staged for the changelog's next flush).",
    buckets=(10, 100, 500, 1000, 2500, 5000, 10000, 25000, 50000),
)
BATCH_PHASE_SECONDS = Histogram(
    "salespulse_processor_batch_phase_seconds",
    "Time of each phase of a batch: fetch (waiting for the records the consumer holds), fresh (for "
    "those that reached the broker since: batching.take), decode (parse and check the events), "
    "directory (what is left of catching up on directory.* once the events are decoded: the two "
    "overlap), aggregate (entity transitions and cells), changelog (rows staged, and at a flush "
    "handed to the producer), redis (rows copied to Redis), durable (waiting for the broker to "
    "acknowledge dead letters), commit (at a flush, waiting for the previous flush's offset commit, "
    "which overlaps the batches after it, as does waiting for its changelog records to be acknowledged).",
    ["phase"], buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
BATCH_PHASES = ("fetch", "fresh", "decode", "directory", "aggregate", "changelog", "redis", "durable", "commit")
for _phase in BATCH_PHASES:
    BATCH_PHASE_SECONDS.labels(_phase)
READ_MODEL_FAILURES = Counter(
    "salespulse_processor_read_model_failures_total",
    "Redis writes that failed; the rows are copied again once Redis answers.",
)
KPI_UPDATES = Counter("salespulse_processor_kpi_updates_total", "Messages produced to kpi.updates.")
DIRECTORY_RECORDS = Counter(
    "salespulse_processor_directory_records_total",
    "Records read from the directory.* topics: applied, or invalid (logged and ignored).",
    ["topic", "outcome"],
)
EXPIRED_ROWS = Counter(
    "salespulse_processor_expired_rows_total",
    "State rows dropped by retention: measure buckets past their retention, finished entities.",
    ["kind"],
)
FROZEN_CUSTOMERS = Counter(
    "salespulse_processor_frozen_customers_total",
    "Customer rows whose orders older than ENTITY_RETENTION_DAYS were folded into their history.",
)
UNMATCHED_EXPIRED = Counter(
    "salespulse_processor_unmatched_expired_total",
    "Order cancellations or invoice payments dropped by retention without ever meeting their order or invoice.",
    ["kind"],
)
EVENT_LATENCY = Histogram(
    "salespulse_processor_event_latency_seconds",
    "From an event's write to Kafka to its rows published to Redis and kpi.updates.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
LAG = Gauge(
    "salespulse_processor_lag_events",
    "Events on a source partition not yet processed, as of its latest batch.",
    ["topic", "partition"],
)
STATE_ROWS = Gauge(
    "salespulse_processor_state_rows",
    "Rows in this worker's state table (entity, measure and dead-letter rows), as of its latest batch.",
)
GC_SECONDS = Histogram(
    "salespulse_processor_gc_seconds",
    "Time of each cyclic garbage collection, by generation; it stalls the event loop as long. A full "
    "one (2) walks what was made since the last (the rest is frozen: salespulse_processor_gc_frozen_objects).",
    ["generation"], buckets=(0.01, 0.1, 0.5, 1, 2, 5, 10),
)
# GC_SECONDS of generations 0, 1, 2, made once: the collector's callback must not call labels(),
# which holds the metric's lock while it makes a child, and a collection started in there would
# call back into it and wait for that lock for ever (seen: make test hung in test_gc_timer).
GC_SECONDS_BY_GENERATION = tuple(GC_SECONDS.labels(str(generation)) for generation in range(3))
GC_FROZEN = Gauge(
    "salespulse_processor_gc_frozen_objects",
    "Objects frozen out of the cyclic collector (gc.freeze after each batch and each full "
    "collection; counted after full collections): the long-lived state, which collections no "
    "longer walk.",
)
LOOP_STALL = Histogram(
    "salespulse_processor_loop_stall_seconds",
    "How late a 1-second tick of the event loop ran: time the loop spent on one piece of work "
    "without yielding (heartbeats wait as long; over PROCESSOR_SESSION_TIMEOUT the group drops the worker).",
    buckets=(0.1, 0.5, 1, 2, 5, 10, 20, 40),
)
RESTORED = Counter(
    "salespulse_processor_restored_rows_total",
    "On taking partitions over: records read from the state changelog, and rows handed over by standby copies.",
    ["source"],
)
for _source in ("changelog", "standby"):
    RESTORED.labels(_source)
STANDBY_PARTITIONS = Gauge(
    "salespulse_processor_standby_partitions",
    "Partitions whose rows this worker keeps warm for a takeover (PROCESSOR_STANDBY_REPLICAS).",
)
RESYNCED_ROWS = Counter(
    "salespulse_processor_resynced_rows_total",
    "Rows copied whole to Redis because it lacked them: partitions taken over, or Redis restarted or unreachable.",
)
FENCED_BATCHES = Counter(
    "salespulse_processor_fenced_batches_total",
    "Times this worker put its rows back to the last flush and dropped the batch in hand unwritten because "
    "the group did not confirm its membership (its session expired while its loop was held); their events "
    "are handled again from their first records, or by the partitions' next owner.",
)
CHANGELOG_RECORDS = Counter(
    "salespulse_processor_changelog_records_total",
    "Records written to the state changelog: rows (once per flush however many batches changed them), "
    "deletions and commit markers.",
)
UNRESTORED_PARTITIONS = Gauge(
    "salespulse_processor_unrestored_partitions",
    "Source partitions assigned to this worker whose rows it could not restore yet (retried; their events wait).",
)
PUSH_SECONDS = Histogram(
    "salespulse_processor_push_seconds",
    "How long one push of kpi.updates took; the next waits nineteen times as long (pushes take a twentieth of the time at most), or KPI_UPDATES_SECONDS if longer.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
