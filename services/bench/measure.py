"""The benchmark's measurements, on real servers and real SalesPulse processes."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import platform
import random
import resource
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner
from prometheus_client.parser import text_string_to_metric_families

from salespulse.bench.workload import Message, history
from salespulse.contracts.events import SOURCE_TOPICS
from salespulse.contracts.topics import ensure_topics, group_lag, partitions_of
from salespulse.devstack.servers import LocalKafka, LocalRedis, free_port
from salespulse.processor.batching import Batches
from salespulse.processor.metrics import BATCH_PHASES as PHASES
from salespulse.settings import Settings
from salespulse.simulator.__main__ import seed_directory
from salespulse.simulator.world import World

log = logging.getLogger("salespulse.bench")

PROBE_REP = "bench-probe-"  # probe reps are this and a number
# Probe orders come from PROBE_CUSTOMERS customers in turn: keyed by customer, they land on
# every partition, so every worker's latency is in the figures (one customer put them all on
# one partition, one worker), and no customer gathers more orders than a busy real one.
PROBE_CUSTOMERS = 24
# A p99 over 300 probes (5 a second for a minute) is the 3rd worst of them: between two runs of
# the same code it moved by 100-200 ms. Over 1,200 it is the 12th.
PROBES_PER_SECOND = 20


SCRAPE_SECONDS = 0.25  # workers' metrics are read this often: each scrape holds a worker's GIL
BENCH_STALL_SECONDS = 0.03  # a stall of the bench's own event loop longer than this is counted (latency runs)


def machine() -> dict:
    mem = next((int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal:")), 0)
    return {"cpus": os.cpu_count(), "memory_gib": round(mem / 2**20, 1), "python": platform.python_version(),
            "platform": platform.platform()}


def peak_rss_mib(pid: int) -> float | None:
    """VmHWM: the most resident memory the process has used so far."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time the process has used so far (/proc/<pid>/stat)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuShare:
    """Cores each process used between start() and stop(): where a run's CPU went (the bench's
    producer and pollers, the API, the broker and Redis share the machine with the workers)."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.started: dict[str, float | None] = {}
        self.at = 0.0

    def start(self) -> None:
        self.at = time.monotonic()
        self.started = {name: cpu_seconds(pid) for name, pid in self.pids.items()}

    def stop(self) -> dict[str, float]:
        elapsed = time.monotonic() - self.at
        used = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        return {name: round((used[name] - self.started[name]) / elapsed, 2) for name in self.pids
                if used[name] is not None and self.started.get(name) is not None}


def percentiles(samples: list[float]) -> dict:
    if not samples:
        return {"count": 0}
    ordered = sorted(samples)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)

    return {"count": len(ordered), "p50_ms": at(0.50), "p95_ms": at(0.95), "p99_ms": at(0.99),
            "max_ms": round(ordered[-1] * 1000, 1)}


def scrape(port: int) -> dict[str, float]:
    """The processor's own counters: events by outcome (summed over topics), state rows."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("salespulse_processor_events_total{"):
            outcome = line.split('outcome="', 1)[1].split('"', 1)[0]
            out[outcome] = out.get(outcome, 0) + float(line.rsplit(" ", 1)[1])
        elif line.startswith("salespulse_processor_state_rows "):
            out["state_rows"] = float(line.rsplit(" ", 1)[1])
    return out


BATCH_FIGURES = ("salespulse_processor_batch_phase_seconds_sum", "salespulse_processor_batch_events_sum",
                 "salespulse_processor_batch_events_count", "salespulse_processor_batch_rows_sum",
                 "salespulse_processor_push_seconds_sum", "salespulse_processor_changelog_records_total")


def batch_figures(metrics_text: str) -> dict[str, float]:
    """A worker's running totals of its batches (from its /metrics): seconds per phase, events,
    batches, measure rows, changelog records, and seconds spent pushing kpi.updates."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name in BATCH_FIGURES:
                out[sample.labels.get("phase", sample.name)] = sample.value
    return out


def per_event(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Where a worker's time went between two batch_figures(): microseconds of wall time per
    event in each phase of its batches and in its kpi.updates pushes, measure rows and changelog
    records per event, events per batch. Empty when it handled no event meanwhile."""
    def delta(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    events = delta("salespulse_processor_batch_events_sum")
    if events <= 0:
        return {}
    figures = {f"{phase}_us": round(delta(phase) / events * 1e6, 1) for phase in PHASES}
    figures["push_us"] = round(delta("salespulse_processor_push_seconds_sum") / events * 1e6, 1)
    figures["rows_per_event"] = round(delta("salespulse_processor_batch_rows_sum") / events, 2)
    figures["changelog_records_per_event"] = round(delta("salespulse_processor_changelog_records_total") / events, 2)
    figures["events_per_batch"] = round(events / max(1.0, delta("salespulse_processor_batch_events_count")))
    return figures


def aggregator_only(messages: Iterable[Message], tz: ZoneInfo, partitions: int, batch: int = 1000) -> dict:
    """Decode and aggregate in batches on a dict store, no Kafka or Redis: the ceiling
    the domain code alone puts on a worker (events keyed to partitions like Kafka's default)."""
    from aiokafka.partitioner import murmur2

    from salespulse.contracts.events import decode_event
    from salespulse.domain.aggregation import Aggregator, SourceEvent, watermarks
    from salespulse.domain.directory import Directory
    from salespulse.domain.money import CurrencyConverter
    from salespulse.domain.retention import Retention
    from salespulse.processor.app import tune_gc

    tune_gc()  # as the processor does
    offsets: dict[tuple[str, int], int] = {}
    events = []
    for topic, key, value in messages:
        partition = (murmur2(key) & 0x7FFFFFFF) % partitions
        offset = offsets[topic, partition] = offsets.get((topic, partition), -1) + 1
        events.append((topic, partition, offset, value))
    aggregator = Aggregator(tz, CurrencyConverter("EUR"), Directory(), 365, Retention({}, 0))
    store: dict = {}
    marks = watermarks(store, {(t, p) for t, p, _, _ in events})
    started = time.perf_counter()
    for i in range(0, len(events), batch):
        result = aggregator.apply(store, [SourceEvent(t, p, o, decode_event(v)) for t, p, o, v in events[i:i + batch]],
                                  marks)
        marks.update(result.watermarks)
        store.update(result.measures)
        store.update(result.entities)
    seconds = time.perf_counter() - started
    return {"events": len(events), "batch": batch, "seconds": round(seconds, 1),
            "events_per_second": round(len(events) / seconds), "state_rows": len(store)}


class Worker:
    """One `python -m salespulse.processor` process."""

    def __init__(self, stack: "Stack", group: str, name: str, redis_db: int) -> None:
        self.stack, self.group, self.name = stack, group, name
        self.port = free_port()
        self.log_path = stack.home / "logs" / f"{name}.log"
        self.env = {**stack.env, "PROCESSOR_APP_ID": group, "PROCESSOR_INSTANCE_ID": name,
                    "PROCESSOR_METRICS_PORT": str(self.port),
                    "REDIS_URL": f"{stack.redis.url[:-2]}/{redis_db}", "DATA_DIR": str(stack.home / name)}
        self.proc: subprocess.Popen | None = None
        self.peak_mib: float | None = None

    def start(self) -> float:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "salespulse.processor"], env=self.env,
                                         stdout=out, stderr=subprocess.STDOUT)
        return time.monotonic()

    def counts(self) -> dict[str, float]:
        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited ({self.proc and self.proc.returncode}); see {self.log_path}")
        try:
            return scrape(self.port)
        except httpx.HTTPError:
            return {}  # not serving metrics yet

    async def batch_figures(self) -> dict[str, float]:
        async with httpx.AsyncClient(timeout=5) as client:
            return batch_figures((await client.get(f"http://127.0.0.1:{self.port}/metrics")).text)

    def note_memory(self) -> None:
        if self.proc is not None:
            self.peak_mib = max(self.peak_mib or 0, peak_rss_mib(self.proc.pid) or 0)

    def kill(self) -> None:
        self.note_memory()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.note_memory()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def counted(counts: dict[str, float]) -> float:
    """Events a worker has finished with this run (replayed ones excluded: counted before)."""
    return sum(v for k, v in counts.items() if k in ("applied", "duplicate", "stale", "deadlettered"))


def handled(counts: dict[str, float]) -> float:
    """Events a worker has been through this run, replayed ones (found applied already) included."""
    return counted(counts) + counts.get("replayed", 0)


class Stack:
    def __init__(self, home: Path, kafka: LocalKafka, redis: LocalRedis) -> None:
        self.home, self.kafka, self.redis = home, kafka, redis
        self.env = {**os.environ, "SALESPULSE_ENV": "development", "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers, "REDIS_URL": redis.url,
                    # the history goes back months: keep every bucket and entity, as a replay would
                    "BUCKET_RETENTION_DAYS": "{}", "ENTITY_RETENTION_DAYS": "0"}
        self.settings = Settings(kafka_bootstrap_servers=kafka.bootstrap_servers, redis_url=redis.url,
                                 data_dir=home)
        self.workers: list[Worker] = []
        self.api: subprocess.Popen | None = None
        self.api_peak_mib: float | None = None
        self.api_url: str | None = None  # the API the latency runs read (started by the first)
        self.latency_runs = 0
        self.producer: AIOKafkaProducer | None = None
        self.world = World(random.Random(7), ZoneInfo(self.settings.business_timezone))
        self.redis_dbs = iter(range(16))

    async def prepare(self) -> None:
        await ensure_topics(self.settings)
        self.producer = AIOKafkaProducer(bootstrap_servers=self.kafka.bootstrap_servers, acks="all",
                                         linger_ms=10, max_batch_size=512 * 1024)
        await self.producer.start()
        await seed_directory(self.kafka.bootstrap_servers, self.producer, self.world)

    async def close(self) -> None:
        for worker in self.workers:
            worker.stop()
        if self.api is not None and self.api.poll() is None:
            self.api.terminate()
            self.api.wait(30)
        if self.producer is not None:
            await self.producer.stop()

    async def send_all(self, messages: Iterable[Message]) -> tuple[int, int]:
        pending, count, size = [], 0, 0
        for topic, key, value in messages:
            pending.append(await self.producer.send(topic, value, key=key))
            count, size = count + 1, size + len(value)
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
        return count, size

    async def routed(self, messages: Iterable[Message]) -> list[tuple[str, int, bytes, bytes]]:
        """(topic, partition, key, value): each event's partition chosen now, as the producer's
        default partitioner (murmur2) would, so the paced sending appends records to batches
        (processor.batching) instead of paying send() per event, some microseconds each in
        Python, on the cores of the system measured."""
        partitioner, partitions = DefaultPartitioner(), {}
        out = []
        for topic, key, value in messages:
            all_of = partitions.get(topic)
            if all_of is None:
                all_of = partitions[topic] = sorted(await self.producer.partitions_for(topic))
            out.append((topic, partitioner(key, all_of, all_of), key, value))
        return out

    async def load(self, messages: Iterable[Message]) -> dict:
        started = time.perf_counter()
        count, size = await self.send_all(messages)
        seconds = time.perf_counter() - started
        return {"events": count, "mean_event_bytes": round(size / count), "seconds": round(seconds, 1),
                "note": "generating (simulator) and producing, acks=all"}

    async def baseline(self, events: int) -> dict:
        """A consumer that only reads and parses: the ceiling for any Python consumer here."""
        consumer = AIOKafkaConsumer(bootstrap_servers=self.kafka.bootstrap_servers, enable_auto_commit=False,
                                    auto_offset_reset="earliest", max_partition_fetch_bytes=4 * 2**20)
        await consumer.start()
        try:
            partitions = [TopicPartition(t, p) for t in SOURCE_TOPICS
                          for p in await partitions_of(self.kafka.bootstrap_servers, t)]
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            started, read, first = time.perf_counter(), 0, None
            while read < events:
                for records in (await consumer.getmany(timeout_ms=1000, max_records=10_000)).values():
                    first = first or time.perf_counter()
                    for record in records:
                        orjson.loads(record.value)
                    read += len(records)
            seconds = time.perf_counter() - (first or started)
        finally:
            await consumer.stop()
        return {"events": read, "seconds": round(seconds, 2), "events_per_second": round(read / seconds)}

    def new_workers(self, count: int) -> tuple[str, list[Worker]]:
        group, db = f"bench-{uuid.uuid4().hex[:8]}", next(self.redis_dbs)
        workers = [Worker(self, group, f"{group}-w{i + 1}", db) for i in range(count)]
        self.workers += workers
        return group, workers

    async def wait_counted(self, workers: list[Worker], events: int, timeout: float,
                           samples: list | None = None, count=counted) -> tuple[float | None, float]:
        """Wait until the workers have counted `events` (`count` of their counters); (time of
        the first count, time of the last)."""
        deadline, first = time.monotonic() + timeout, None
        next_sample = 0.0
        while True:
            counts = [w.counts() for w in workers]
            done = sum(count(c) for c in counts)
            now = time.monotonic()
            if done and first is None:
                first = now
            if samples is not None and now >= next_sample:
                for w in workers:
                    w.note_memory()
                samples.append({"t": now, "events": done,
                                "state_rows": sum(c.get("state_rows", 0) for c in counts),
                                "rss_mib": [peak_rss_mib(w.proc.pid) for w in workers]})
                next_sample = now + 2
            if done >= events:
                return first, now
            if now > deadline:
                raise RuntimeError(f"only {done:.0f} of {events} events counted after {timeout:.0f}s")
            await asyncio.sleep(SCRAPE_SECONDS)

    async def replay(self, events: int, workers: int, keep: bool = False) -> dict:
        """Fresh consumer group: the workers rebuild every KPI row from the retained topics.
        A group of several is stopped afterwards unless `keep`."""
        group, procs = self.new_workers(workers)
        started = min(w.start() for w in procs)
        samples: list[dict] = []
        first, done = await self.wait_counted(procs, events, timeout=3600, samples=samples)
        for w in procs:
            w.note_memory()
        busy = max(done - first, SCRAPE_SECONDS)  # a tiny run is counted within one scrape
        growth = [{"events": int(s["events"]), "state_rows": int(s["state_rows"]),
                   "rss_mib": s["rss_mib"]} for s in samples[:: max(1, len(samples) // 8)]]
        if workers > 1 and not keep:
            for w in procs:
                w.stop()
        return {"group": group, "workers": workers, "events": events,
                "rebuild_seconds": round(done - started, 1), "startup_seconds": round(first - started, 1),
                "events_per_second": round(events / busy), "events_per_second_per_worker": round(events / busy / workers),
                "peak_rss_mib": [w.peak_mib for w in procs], "growth": growth}

    async def recovery(self, group: str, fresh: int = 5000) -> dict:
        """SIGKILL the group's worker, send `fresh` events, restart it: how long until it counts
        again (state restored from the changelog first) and until it has handled its whole
        backlog: the fresh events and those it had handled but not committed when killed (its
        changelog and offsets are written once a PROCESSOR_FLUSH_SECONDS), which it handles again."""
        worker = next(w for w in self.workers if w.group == group and w.proc.poll() is None)
        before = worker.counts()
        worker.kill()
        uncommitted = sum((await group_lag(self.kafka.bootstrap_servers, group, SOURCE_TOPICS)).values())
        now = datetime.now(timezone.utc)
        await self.send_all(history(fresh, now, 1, ZoneInfo(self.settings.business_timezone), seed=11))
        restarted = worker.start()
        backlog = uncommitted + fresh
        try:
            first, done = await self.wait_counted([worker], backlog, timeout=300, count=handled)
        except RuntimeError as exc:  # reported, not fatal: the rest of the bench still runs
            log.error("recovery: %s", exc)
            first = done = None
        after = worker.counts()
        return {"events_before_kill": int(counted(before)), "fresh_events": fresh,
                "uncommitted_at_kill": uncommitted, "events_handled_after_restart": int(handled(after)),
                "events_counted_after_restart": int(counted(after)),
                "seconds_to_first_event": first and round(first - restarted, 1),
                "seconds_to_caught_up": done and round(done - restarted, 1),
                "replayed_after_restart": int(after.get("replayed", 0)),
                "state_rows_restored": int(after.get("state_rows", 0))}

    def stop_group(self, group: str) -> None:
        for w in self.workers:
            if w.group == group:
                w.stop()

    def start_api(self, group_worker: Worker) -> str:
        port = free_port()
        log_path = self.home / "logs" / "api.log"
        self.api = subprocess.Popen([sys.executable, "-m", "salespulse.api"], stdout=log_path.open("ab"),
                                    stderr=subprocess.STDOUT,
                                    env={**group_worker.env, "API_HOST": "127.0.0.1", "API_PORT": str(port)})
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/readyz").status_code == 200:
                    return url
            except httpx.HTTPError:
                pass
            if self.api.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the API did not start; see {log_path}")
            time.sleep(0.3)

    async def latency(self, rate: int, seconds: float, tz: ZoneInfo) -> dict:
        """Live load at `rate` events/s with a probe order every 1/PROBES_PER_SECOND s: from the
        probe's send to its rep's order count moving, in GET /kpis and on the SSE stream,
        with the group of the workers still running."""
        running = [w for w in self.workers if w.proc.poll() is None]
        url = self.api_url = self.api_url or self.start_api(running[0])
        end = datetime.now(timezone.utc) + timedelta(seconds=seconds)
        self.latency_runs += 1  # new events each run (the same ids would be duplicates)
        load = list(history(int(rate * seconds), end, 1, tz, seed=13 * self.latency_runs))  # paced below
        sent_at: dict[int, float] = {}
        seen_api: dict[int, float] = {}
        seen_sse: dict[int, float] = {}
        stop = asyncio.Event()
        reading = f"{url}/api/v1/kpis/orders"

        def probe_orders(doc: dict) -> dict[str, int]:
            """Orders counted so far of each probe rep."""
            return {v["key"]: int(v["value"]) for v in doc.get("values", []) if v["key"].startswith(PROBE_REP)}

        async with httpx.AsyncClient(timeout=10) as client:  # earlier runs' probes are counted already
            before = probe_orders((await client.get(reading, params={"by": "rep", "period": "day"})).json())
        # Probe k is rep k % PROBE_CUSTOMERS's and its customer's, so each rep's probes are on one
        # partition, handled in order: the n-th probe of a rep is visible once its count is up
        # by n. (One count over probes on several partitions would give a late probe's time to
        # the probe after it, visible first.)
        probes_of: dict[str, list[int]] = {}  # rep -> its probes, in the order sent

        def note_seen(doc: dict, seen: dict[int, float], counted: dict[str, int]) -> None:
            """Mark the probes a reading counts (`counted`: how many of each rep's were already)."""
            now = time.monotonic()
            for rep, orders in probe_orders(doc).items():
                probes = probes_of.get(rep, [])
                n = min(orders - before.get(rep, 0), len(probes))
                for k in probes[counted.get(rep, 0):n]:
                    seen[k] = now
                counted[rep] = max(n, counted.get(rep, 0))

        async def poll_api(client: httpx.AsyncClient) -> None:
            counted: dict[str, int] = {}
            while not stop.is_set():
                note_seen((await client.get(reading, params={"by": "rep", "period": "day"})).json(), seen_api, counted)
                await asyncio.sleep(0.05)  # 20 readings/s: finer polling took a core from the system measured

        async def follow_sse(client: httpx.AsyncClient) -> None:
            counted: dict[str, int] = {}
            async with client.stream("GET", f"{url}/api/v1/stream", params={"watch": "orders:rep:day"},
                                     timeout=None) as response:
                async for line in response.aiter_lines():
                    if line.startswith("data: "):
                        doc = orjson.loads(line[6:])
                        if "reading" in doc:
                            note_seen(doc["reading"], seen_sse, counted)
                    if stop.is_set():
                        return

        async def watch_own_loop() -> None:
            """Stalls of this process's event loop: a probe seen late because the pollers
            could not run is the bench's latency, not the product's."""
            while not stop.is_set():
                asleep = time.monotonic()
                await asyncio.sleep(0.01)
                late = time.monotonic() - asleep - 0.01
                if late > BENCH_STALL_SECONDS:
                    stalls.append(late)

        stalls: list[float] = []
        routed = await self.routed(load)
        # The paced load is hundreds of thousands of tuples; a full collection walking them stopped
        # this loop (and so the pollers) for 0.1-0.2 s every 12 s and 1.1 s at the end, and
        # the probes seen then looked that much later (a ~12 s period, 60 s at 5,000 events/s).
        # Frozen, collections skip them; refcounting frees them afterwards all the same.
        gc.collect()
        gc.freeze()

        async def produce() -> None:
            tick, probe = 0.01, 0
            per_tick = rate * tick
            started, i, credit = time.monotonic(), 0, 0.0
            next_probe = started
            sent: list[asyncio.Future] = []
            while i < len(routed):
                credit += per_tick
                batches: dict[str, Batches] = {}
                while credit >= 1 and i < len(routed):
                    topic, partition, key, value = routed[i]
                    out = batches.get(topic)
                    if out is None:
                        out = batches[topic] = Batches(self.producer, topic)
                    out.add(partition, key, value)
                    i, credit = i + 1, credit - 1
                for out in batches.values():
                    sent += [future for _, future in await out.send()]
                if len(sent) > 1000:  # settled ones go: held to the end, they were most of what a collection walked
                    for future in sent:
                        if future.done() and future.exception() is not None:
                            raise future.exception()
                    sent = [future for future in sent if not future.done()]
                now = time.monotonic()
                if now >= next_probe:
                    probe += 1
                    at = datetime.now(timezone.utc).isoformat()
                    rep, customer = f"{PROBE_REP}{probe % PROBE_CUSTOMERS}", f"bench-probe-customer-{probe % PROBE_CUSTOMERS}"
                    order = {"specversion": "1.0", "id": str(uuid.uuid4()), "source": "bench/probe",
                             "type": "order.placed", "time": at, "datacontenttype": "application/json",
                             "data": {"order_id": f"probe-{uuid.uuid4().hex}", "customer_id": customer,
                                      "rep_id": rep, "placed_at": at, "currency": "EUR", "channel": "web",
                                      "lines": [{"product": "crm-seat", "quantity": 1, "unit_price": "49.00",
                                                 "unit_cost": "9.50"}]}}
                    sent_at[probe] = time.monotonic()
                    probes_of.setdefault(rep, []).append(probe)
                    await self.producer.send("sales.orders", orjson.dumps(order), key=customer.encode())
                    next_probe += 1 / PROBES_PER_SECOND
                await asyncio.sleep(max(0.0, started + (i / rate) - time.monotonic()))
            await asyncio.gather(*sent)
            return time.monotonic() - started

        async with httpx.AsyncClient(timeout=10) as client:
            pollers = [asyncio.create_task(poll_api(client)), asyncio.create_task(follow_sse(client)),
                       asyncio.create_task(watch_own_loop())]
            share = CpuShare({"bench": os.getpid(), "api": self.api.pid, "kafka": self.kafka.proc.pid,
                              "redis": self.redis.proc.pid, **{w.name: w.proc.pid for w in running}})
            batches_before = {w.name: await w.batch_figures() for w in running}
            share.start()
            elapsed = await produce()
            cores = share.stop()
            batches = {w.name: per_event(batches_before[w.name], await w.batch_figures()) for w in running}
            deadline = time.monotonic() + 30
            while (len(seen_api) < len(sent_at) or len(seen_sse) < len(sent_at)) and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            stop.set()
            for task in pollers:
                task.cancel()
            await asyncio.gather(*pollers, return_exceptions=True)
        gc.unfreeze()
        self.api_peak_mib = peak_rss_mib(self.api.pid)
        api = [seen_api[k] - sent_at[k] for k in sent_at if k in seen_api]
        sse = [seen_sse[k] - sent_at[k] for k in sent_at if k in seen_sse]
        return {"workers": len(running), "rate": rate, "achieved_rate": round((len(routed) + len(sent_at)) / elapsed), "seconds": round(elapsed, 1),
                "probes": len(sent_at), "api": percentiles(api), "sse": percentiles(sse), "cpu_cores": cores,
                "batches": batches,
                "probes_never_seen": {"api": len(sent_at) - len(api), "sse": len(sent_at) - len(sse)},
                "bench_loop_stalls": {"over_ms": BENCH_STALL_SECONDS * 1000, "count": len(stalls),
                                      "max_ms": round(max(stalls, default=0) * 1000, 1)}}

    def memory(self) -> dict:
        for w in self.workers:
            w.note_memory()
        workers = {w.name: w.peak_mib for w in self.workers}
        return {"kafka_broker_mib": peak_rss_mib(self.kafka.proc.pid), "redis_mib": peak_rss_mib(self.redis.proc.pid),
                "api_mib": self.api_peak_mib, "workers_mib": workers,
                "bench_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
