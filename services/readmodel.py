"""The Redis read model: the one module that talks to Redis, for the processor and the API.

Layout (prefix `sp:`):
- `sp:m:{period}:{start}:{dim}:{key}`  hash, one field per source partition number (`3`: partition
  3 of every sales.* topic) holding that partition's partial measures `{"m": {...}, "t": epoch}`.
  The processor writes whole partial rows (idempotent); readers sum them. (Earlier versions
  wrote a field per topic and partition, `sales.orders/3`; a full copy of a partition drops them.)
- `sp:k:{period}:{start}:{dim}`        set of the dimension values with a row in that bucket.
- `sp:years`                            set of the year buckets with a row (where date windows start).
- `sp:targets`                          hash, field kpi/by/key/period -> target document.
- `sp:rules`, `sp:profiles`             hash, name -> alert rule / wallboard profile document.
- `sp:versions:{targets|rules|profiles}` hash, field -> offset on its compacted topic (one
  partition) of the document (or deletion) copied last: as `sp:dirv:` for the directory, so an
  API's copy from the topic and another's write of a later version may land in any order.
- `sp:copies:loaded`                    set before an API copies targets, rules, profiles and the
  directory from their topics; missing (Redis restarted empty) makes the API copy them again.
- `sp:alerts:active`                    hash, alert series -> its latest alert event (not resolved).
- `sp:alerts:history`                   list of alert events, newest first, capped.
- `sp:alerts:loaded`                    set once the alert state was copied from kpi.alerts.
- `sp:dir:{reps|products|customers}`   hash, key -> directory record (as on directory.*).
- `sp:dirv:{reps|products|customers}`  hash, key -> offset on its directory.* topic (one partition)
  of the record (or deletion) copied last: a copy of an older record is refused, so the API's
  write and the processors' copies of the same topic may land in any order.
- `sp:wh:state:{call|deal}:{id}`       what provider webhooks told of a call or deal so far (merged).
- `sp:wh:seen:{provider}:{event id}`   a provider event already taken (expires).
- `sp:unflushed:{partition}`            set of that partition's measure rows (state keys) a worker
  copied here when the changelog did not have them yet (made since its last flush): a worker
  taking the partition over drops from here those its restored rows lack (processor.app).
- `sp:synced`                           hash, source partition number -> time its rows were last
  copied in full; a missing field (Redis restarted empty) makes its owner copy them again.
- `sp:version`                          counter, bumped in the same round trip as every write a
  KPI reading shows (rows, directory records, targets): the API's live streams read again
  when it moves.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import hiredis
import orjson
import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, WatchError

from salespulse.contracts.topics import SOURCE_TOPICS
from salespulse.domain.aggregation import RowKey, merge_measures
from salespulse.domain.targets import TargetBook, TargetId

PREFIX = "sp:"
TARGETS = PREFIX + "targets"
ALERTS_ACTIVE = PREFIX + "alerts:active"
ALERTS_HISTORY = PREFIX + "alerts:history"
ALERTS_LOADED = PREFIX + "alerts:loaded"
COPIES_LOADED = PREFIX + "copies:loaded"
SYNCED = PREFIX + "synced"
YEARS = PREFIX + "years"
DIRECTORY = PREFIX + "dir:"
DIRECTORY_VERSIONS = PREFIX + "dirv:"
VERSIONS = PREFIX + "versions:"
WEBHOOK = PREFIX + "wh:"
VERSION = PREFIX + "version"


@dataclass(frozen=True)
class Copies:
    """Documents copied from a compacted topic of one partition: `hash`, field -> document,
    and `versions`, field -> the offset of the document (or deletion) copied last. A copy of an
    older version is refused, so writers of the same topic (the API that produced a record, an
    API or worker copying the topic) may land in any order."""

    hash: str
    versions: str


TARGET_COPIES = Copies(TARGETS, VERSIONS + "targets")


def document_copies(collection: str) -> Copies:
    return Copies(PREFIX + collection, VERSIONS + collection)


def directory_copies(kind: str) -> Copies:
    return Copies(f"{DIRECTORY}{kind}", f"{DIRECTORY_VERSIONS}{kind}")


def row_hash(row: RowKey) -> str:
    return f"{PREFIX}m:{row.period}:{row.start}:{row.dim}:{row.key}"


def keys_set(period: str, start: str, dim: str) -> str:
    return f"{PREFIX}k:{period}:{start}:{dim}"


def unflushed_set(partition: int) -> str:
    return f"{PREFIX}unflushed:{partition}"


class MergedRow(dict):
    """Merged measures of one row, with `as_of`: when its newest part was written."""

    as_of: float | None = None


def _merge(parts: Mapping[bytes, bytes]) -> MergedRow:
    docs = [orjson.loads(v) for v in parts.values()]
    merged = MergedRow(merge_measures(d["m"] for d in docs))
    merged.as_of = max((d["t"] for d in docs), default=None)
    return merged


# Whole partial rows written in one command: KEYS are the rows' hashes, then the key sets they
# join; ARGV the number of topics whose per-topic fields (an earlier version's) each row drops,
# and their names (none but in a whole copy: `write_rows(whole=True)`), then the number of rows,
# a field and value per row, then for each key set the number of its members and the members. A batch writes thousands of rows;
# one command per row cost the processor a fifth of its time in the client (packing and reading
# back each reply), not in Redis, and so did one SADD per key set beside the script (some 100
# a batch; write_rows of 60 live batches, cProfile: 0.50-0.70 -> 0.27-0.31 s of client time
# for 51,022 rows, though not measurable in a worker's cores under load). Dropping
# the per-topic fields ("sales.orders/3") with one HDEL command a row sent by the client
# tripled the time of a copy (4.0 s against 1.4 for 193,000 rows); here it costs next to nothing.
_WRITE_ROWS = """
local topics = tonumber(ARGV[1])
local at = topics + 2
local rows = tonumber(ARGV[at])
for i = 1, rows do
  local partition = ARGV[at + 2 * i - 1]
  for t = 2, topics + 1 do
    redis.call('HDEL', KEYS[i], ARGV[t] .. '/' .. partition)
  end
  redis.call('HSET', KEYS[i], partition, ARGV[at + 2 * i])
end
at = at + 2 * rows + 1
for k = rows + 1, #KEYS do
  local count = tonumber(ARGV[at])
  redis.call('SADD', KEYS[k], unpack(ARGV, at + 1, at + count))
  at = at + count + 1
end
return rows
"""
# Copies (directory records, targets, rules, profiles), each written only if newer than the one
# copied last: KEYS are the documents hash, the versions hash and the version counter; ARGV
# field, offset, document triples (an empty document: deleted). Returns how many were written.
_WRITE_RECORDS = """
local written = 0
for i = 1, #ARGV, 3 do
  local key, offset = ARGV[i], tonumber(ARGV[i + 1])
  local seen = redis.call('HGET', KEYS[2], key)
  seen = seen and tonumber(seen)
  -- the same version again restores a document the hash lost (its key deleted or evicted alone)
  if not seen or seen < offset or (seen == offset and ARGV[i + 2] ~= '' and redis.call('HEXISTS', KEYS[1], key) == 0) then
    redis.call('HSET', KEYS[2], key, ARGV[i + 1])
    if ARGV[i + 2] == '' then
      redis.call('HDEL', KEYS[1], key)
    else
      redis.call('HSET', KEYS[1], key, ARGV[i + 2])
    end
    written = written + 1
  end
end
if written > 0 then
  redis.call('INCR', KEYS[3])
end
return written
"""
ROWS_PER_SCRIPT = 1000  # keeps each script call short: Redis serves nothing else while it runs


class _HiredisPacking:
    """Commands packed by hiredis (C). redis-py's asyncio connections pack them in Python (its
    sync ones use hiredis): 6 ms for one 1,000-row HSET script call, 0.7 with hiredis, a
    twentieth of a worker's time. Same bytes (tests/integration/test_readmodel.py)."""

    def pack_command(self, *args: Any) -> list[bytes]:
        if isinstance(args[0], str) and " " in args[0]:  # a two-word command name: "SCRIPT LOAD"
            args = (*args[0].split(), *args[1:])
        return [hiredis.pack_command(args)]


class _Connection(_HiredisPacking, aioredis.Connection):
    pass


class _SSLConnection(_HiredisPacking, aioredis.SSLConnection):
    pass


class _UnixConnection(_HiredisPacking, aioredis.UnixDomainSocketConnection):
    pass


_HIREDIS_PACKING = {aioredis.Connection: _Connection, aioredis.SSLConnection: _SSLConnection,
                    aioredis.UnixDomainSocketConnection: _UnixConnection}


def connect(url: str, **options: Any) -> aioredis.Redis:
    """A client for `url` (redis://, rediss:// or unix://) whose connections pack with hiredis."""
    pool = aioredis.ConnectionPool.from_url(url, **options)
    pool.connection_class = _HIREDIS_PACKING.get(pool.connection_class, pool.connection_class)
    return aioredis.Redis.from_pool(pool)


class ReadModel:
    def __init__(self, client: aioredis.Redis) -> None:
        self.redis = client
        self._write_rows_sha = client.register_script(_WRITE_ROWS).sha
        self._write_records = client.register_script(_WRITE_RECORDS)

    @classmethod
    def from_url(cls, url: str) -> "ReadModel":
        return cls(connect(url, socket_timeout=5, socket_connect_timeout=3))

    async def close(self) -> None:
        await self.redis.aclose()

    async def ping(self) -> bool:
        return bool(await self.redis.ping())

    async def version(self) -> int:
        """The count of writes a KPI reading shows so far (VERSION)."""
        return int(await self.redis.get(VERSION) or 0)

    async def _changing(self, command: Callable[[Any], Any]) -> Any:
        """Run one write a reading shows, with the version bump, in one round trip; its result."""
        pipe = self.redis.pipeline(transaction=False)
        command(pipe)
        pipe.incr(VERSION)
        return (await pipe.execute())[0]

    # --- written by the processor -----------------------------------------------------

    async def write_rows(self, rows: Iterable[tuple[int, RowKey, Mapping[str, int]]], whole: bool = False,
                         unflushed: Mapping[int, Iterable[str]] | None = None) -> None:
        """Store whole partial rows: (source partition, row, measures). `whole`: a full copy of
        the partitions, which also drops what an earlier version wrote of them per topic.
        `unflushed`: partition -> state keys of those rows the changelog does not have yet,
        noted in `sp:unflushed:{partition}` before the rows are written."""
        now = time.time()
        dropped: list[Any] = [len(SOURCE_TOPICS), *SOURCE_TOPICS] if whole else [0]
        calls: list[list[Any]] = []  # the arguments of each EVALSHA of _WRITE_ROWS
        hashes: list[str] = []
        fields: list[Any] = []
        # Each key set's new members, (period, start, dim) -> keys: a batch writes thousands of
        # rows over a few dozen sets, so names are made once per set.
        members: dict[tuple[str, str, str], set[str]] = {}

        def call() -> None:
            sets, listed = [], []
            for (period, start, dim), keys in members.items():
                sets.append(keys_set(period, start, dim))
                listed += (len(keys), *keys)
                if period == "year" and dim == "all":
                    sets.append(YEARS)
                    listed += (1, start)
            calls.append([self._write_rows_sha, len(hashes) + len(sets), *hashes, *sets,
                          *dropped, len(hashes), *fields, *listed])

        dumps = orjson.dumps
        for partition, row, measures in rows:
            hashes.append(row_hash(row))
            fields += (partition, dumps({"m": measures, "t": now}))
            keys = members.get(row[:3])  # (period, start, dim)
            if keys is None:
                keys = members[row[:3]] = set()
            keys.add(row.key)
            if len(hashes) == ROWS_PER_SCRIPT:
                call()
                hashes, fields, members = [], [], {}
        if hashes:
            call()
        if not calls:
            return
        for attempt in (1, 2):
            pipe = self.redis.pipeline(transaction=False)
            for partition, keys in (unflushed or {}).items():
                if keys:
                    pipe.sadd(unflushed_set(partition), *keys)
            for args in calls:
                pipe.execute_command("EVALSHA", *args)
            pipe.incr(VERSION)
            try:
                await pipe.execute()
                return
            except NoScriptError:
                # Redis lost its scripts (restarted, or SCRIPT FLUSH): loaded, and everything
                # sent again, which changes nothing already written (whole rows, set members).
                # Not asked for every time, as redis-py's scripts in a pipeline do (SCRIPT
                # EXISTS: a round trip more each batch).
                if attempt == 2:
                    raise
                await self.redis.script_load(_WRITE_ROWS)

    async def delete_rows(self, rows: Iterable[tuple[int, RowKey]]) -> None:
        """Drop partial rows (source partition, row); a row left with no part leaves its key set."""
        rows = list(rows)
        pipe = self.redis.pipeline(transaction=False)
        for partition, row in rows:
            pipe.hdel(row_hash(row), partition)
        await pipe.execute()
        emptied = sorted({row for _, row in rows}, key=row_hash)
        pipe = self.redis.pipeline(transaction=False)
        for row in emptied:
            pipe.exists(row_hash(row))
        gone = [row for row, exists in zip(emptied, await pipe.execute()) if not exists]
        pipe = self.redis.pipeline(transaction=False)
        for row in gone:
            pipe.srem(keys_set(row.period, row.start, row.dim), row.key)
        pipe.incr(VERSION)
        await pipe.execute()

    async def unflushed_rows(self, partitions: Iterable[int]) -> dict[int, set[str]]:
        """Partition -> the state keys of its rows noted as copied here before the changelog had them."""
        partitions = sorted(partitions)
        pipe = self.redis.pipeline(transaction=False)
        for partition in partitions:
            pipe.smembers(unflushed_set(partition))
        return {p: {k.decode() for k in keys} for p, keys in zip(partitions, await pipe.execute())}

    async def forget_unflushed(self, keys: Mapping[int, Iterable[str]]) -> None:
        """The changelog has these rows now (or the state never will): no longer noted."""
        pipe = self.redis.pipeline(transaction=False)
        for partition, members in keys.items():
            members = list(members)
            if members:
                pipe.srem(unflushed_set(partition), *members)
        await pipe.execute()

    async def synced_partitions(self) -> set[int]:
        """The source partition numbers Redis has every row of (an earlier version's fields,
        one per topic and partition, are not: its rows are copied again)."""
        return {int(k) for k in await self.redis.hkeys(SYNCED) if k.isdigit()}

    async def mark_synced(self, partitions: Iterable[int]) -> None:
        mapping = {p: str(time.time()) for p in partitions}
        if mapping:
            await self.redis.hset(SYNCED, mapping=mapping)

    # --- read by the API and the processor --------------------------------------------

    async def read_rows(self, rows: Iterable[RowKey]) -> dict[RowKey, MergedRow]:
        rows = list(rows)
        pipe = self.redis.pipeline(transaction=False)
        for row in rows:
            pipe.hgetall(row_hash(row))
        results = await pipe.execute()
        return {row: _merge(parts) for row, parts in zip(rows, results)}

    async def read_listed_rows(self, rows: Iterable[RowKey]) -> dict[RowKey, MergedRow]:
        """As read_rows, reading only the rows listed in their bucket's key set (every row
        written is, until it is deleted): the rest are empty. A date window per customer names
        thousands of day, month and year rows, few of them ever written; reading each cost
        ~50 us in the client (400 customers' overdue receivables: 6,800 rows, 0.25 s)."""
        rows = list(rows)
        buckets = sorted({row[:3] for row in rows})
        pipe = self.redis.pipeline(transaction=False)
        for period, start, dim in buckets:
            pipe.smembers(keys_set(period, start, dim))
        listed = {bucket: {key.decode() for key in keys} for bucket, keys in zip(buckets, await pipe.execute())}
        read = await self.read_rows(row for row in rows if row.key in listed[row[:3]])
        return {row: read.get(row) or MergedRow() for row in rows}

    async def years(self) -> list[str]:
        """Start dates of the year buckets that have rows, oldest first."""
        return sorted(y.decode() for y in await self.redis.smembers(YEARS))

    async def dimension_keys(self, buckets: Iterable[tuple[str, str]], dim: str) -> list[str]:
        """The values of `dim` with a row in any of the (period, start) buckets."""
        pipe = self.redis.pipeline(transaction=False)
        for period, start in buckets:
            pipe.smembers(keys_set(period, start, dim))
        return sorted({k.decode() for members in await pipe.execute() for k in members})

    async def read_dimension(self, period: str, start: str, dim: str) -> dict[str, MergedRow]:
        """Merged measures of every value of `dim` in one bucket."""
        keys = sorted(k.decode() for k in await self.redis.smembers(keys_set(period, start, dim)))
        merged = await self.read_rows(RowKey(period, start, dim, k) for k in keys)
        return {row.key: m for row, m in merged.items()}

    # --- directory records (written by the API, copied from the directory.* topics) ------

    async def put_record(self, kind: str, key: str, doc: Mapping[str, Any], offset: int) -> bool:
        """Store a record produced at `offset` of its directory topic, unless a later record (or
        deletion) of its key is here already; whether it was stored."""
        return bool(await self.write_records([(kind, key, doc, offset)]))

    async def delete_record(self, kind: str, key: str, offset: int) -> bool:
        """Drop a record deleted at `offset` (its tombstone's), unless a later record is here."""
        return bool(await self.write_records([(kind, key, None, offset)]))

    async def write_records(self, records: Iterable[tuple[str, str, Mapping[str, Any] | None, int]]) -> int:
        """Copy (kind, key, record or None to delete, its offset) from the directory topics, in one
        round trip, each only over an older one: the API writes what it produced, every worker
        copies what it read, and a worker's copy of an earlier record may arrive after the API's
        of a later one (a record deleted through the API came back until the next copy). How
        many were written."""
        by_kind: dict[str, list[tuple[str, Mapping[str, Any] | None, int]]] = {}
        for kind, key, doc, offset in records:
            by_kind.setdefault(kind, []).append((key, doc, offset))
        return await self.write_copies(*((directory_copies(kind), docs) for kind, docs in by_kind.items()))

    async def write_copies(self, *writes: tuple[Copies, Iterable[tuple[str, Mapping[str, Any] | None, int]]]) -> int:
        """Write each (copies, [(field, document or None to delete, its offset)]) in one round
        trip, each document only over an older version (Copies). How many were written."""
        pipe, calls = self.redis.pipeline(transaction=False), 0
        for copies, docs in writes:
            args: list[Any] = []
            for field, doc, offset in docs:
                args += (field, offset, b"" if doc is None else orjson.dumps(doc))
            if args:
                await self._write_records(keys=[copies.hash, copies.versions, VERSION], args=args, client=pipe)
                calls += 1
        return sum(await pipe.execute()) if calls else 0

    async def replace_records(self, records: Iterable[tuple[str, str, Mapping[str, Any] | None, int]],
                              read_up_to: Mapping[str, int]) -> int:
        """Make Redis's directory what a reader of the directory topics knows (after Redis restarted
        or missed copies): `records` as write_records takes them, every key it read with its last
        offset, and `read_up_to`, kind -> the offset of the last record it read. A key here that
        the reader never read was deleted, its tombstone compacted away, unless it was written
        after that offset (by the API, since): those go, these stay. How many were written."""
        by_kind: dict[str, list[tuple[str, Mapping[str, Any] | None, int]]] = {kind: [] for kind in read_up_to}
        for kind, key, doc, offset in records:
            by_kind.setdefault(kind, []).append((key, doc, offset))
        written = 0
        for kind, docs in by_kind.items():
            if kind in read_up_to:
                written += await self.replace_copies(directory_copies(kind), docs, read_up_to[kind])
            else:
                written += await self.write_copies((directory_copies(kind), docs))
        return written

    async def replace_copies(self, copies: Copies, docs: Iterable[tuple[str, Mapping[str, Any] | None, int]],
                             read_up_to: int) -> int:
        """replace_records for one Copies: `docs` all a reader of its topic read, up to offset
        `read_up_to` (-1: none)."""
        docs = list(docs)
        known = {field for field, _, _ in docs}
        docs += [(key.decode(), None, read_up_to) for key in await self.redis.hkeys(copies.hash)
                 if key.decode() not in known]
        return await self.write_copies((copies, docs))

    async def forget_records_from(self, kind: str, end: int) -> bool:
        """Drop every record of `kind` and its offset if any offset is at or past `end`, the end of
        its topic now: those were copied from an earlier topic of that name (deleted and created
        again, its offsets from 0), and would refuse the new one's records. Whether they were."""
        return await self.forget_copies_from(directory_copies(kind), end)

    async def forget_copies_from(self, copies: Copies, end: int) -> bool:
        """forget_records_from for any Copies."""
        offsets = await self.redis.hvals(copies.versions)
        if not any(int(offset) >= end for offset in offsets):
            return False
        await self._changing(lambda pipe: pipe.delete(copies.hash, copies.versions))
        return True

    async def record(self, kind: str, key: str) -> dict[str, Any] | None:
        raw = await self.redis.hget(f"{DIRECTORY}{kind}", key)
        return None if raw is None else orjson.loads(raw)

    async def records(self, kind: str) -> dict[str, dict[str, Any]]:
        raw = await self.redis.hgetall(f"{DIRECTORY}{kind}")
        return {k.decode(): orjson.loads(v) for k, v in sorted(raw.items())}

    # --- targets ----------------------------------------------------------------------

    async def put_target(self, tid: TargetId, doc: Mapping[str, Any], offset: int) -> bool:
        """Store a target produced at `offset` of kpi.targets, unless a later version is here."""
        return bool(await self.write_copies((TARGET_COPIES, [(tid.encode(), doc, offset)])))

    async def delete_target(self, tid: TargetId, offset: int) -> bool:
        """Drop a target deleted at `offset` (its tombstone's), unless a later version is here."""
        return bool(await self.write_copies((TARGET_COPIES, [(tid.encode(), None, offset)])))

    async def target_docs(self) -> dict[TargetId, dict[str, Any]]:
        raw = await self.redis.hgetall(TARGETS)
        return {TargetId.decode(k.decode()): orjson.loads(v) for k, v in raw.items()}

    async def target_book(self) -> TargetBook:
        return TargetBook(await self.target_docs())

    async def mark_copies_loading(self) -> None:
        """Noted before the copy of targets, rules, profiles and directory starts: a Redis
        emptied at any moment after it lacks the mark, so the copy is made again."""
        await self.redis.set(COPIES_LOADED, 1)

    async def copies_known(self) -> bool:
        return bool(await self.redis.exists(COPIES_LOADED))

    async def unmark_copies(self) -> None:
        """A copy that failed midway: the next check makes it again."""
        await self.redis.delete(COPIES_LOADED)

    # --- alert rules and alerts --------------------------------------------------------

    async def put_document(self, collection: str, name: str, doc: Mapping[str, Any], offset: int) -> bool:
        """Store a rule or profile produced at `offset` of its topic, unless a later version is here."""
        return bool(await self.write_copies((document_copies(collection), [(name, doc, offset)])))

    async def delete_document(self, collection: str, name: str, offset: int) -> bool:
        return bool(await self.write_copies((document_copies(collection), [(name, None, offset)])))

    async def documents(self, collection: str) -> dict[str, dict[str, Any]]:
        raw = await self.redis.hgetall(PREFIX + collection)
        return {k.decode(): orjson.loads(v) for k, v in sorted(raw.items())}

    async def record_alerts(self, events: Iterable[Mapping[str, Any]], history_size: int) -> None:
        """Apply alert events in order: the active set and the capped history."""
        async with self.redis.pipeline(transaction=True) as pipe:
            for event in events:
                series = event["series"]
                if event["state"] == "resolved":
                    pipe.hdel(ALERTS_ACTIVE, series)
                else:
                    pipe.hset(ALERTS_ACTIVE, series, orjson.dumps(event))
                pipe.lpush(ALERTS_HISTORY, orjson.dumps(event))
            pipe.ltrim(ALERTS_HISTORY, 0, history_size - 1)
            await pipe.execute()

    async def replace_alerts(self, events: list[Mapping[str, Any]], history_size: int) -> None:
        """Rebuild the alert state from the whole kpi.alerts log (oldest first)."""
        latest = {e["series"]: e for e in events}
        active = {series: orjson.dumps(e) for series, e in latest.items() if e["state"] != "resolved"}
        history = [orjson.dumps(e) for e in reversed(events[-history_size:])]
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(ALERTS_ACTIVE, ALERTS_HISTORY)
            if active:
                pipe.hset(ALERTS_ACTIVE, mapping=active)
            if history:
                pipe.rpush(ALERTS_HISTORY, *history)
            pipe.set(ALERTS_LOADED, 1)
            await pipe.execute()

    async def active_alerts(self) -> list[dict[str, Any]]:
        raw = await self.redis.hgetall(ALERTS_ACTIVE)
        return sorted((orjson.loads(v) for v in raw.values()), key=lambda e: e["at"], reverse=True)

    async def alert_history(self, limit: int) -> list[dict[str, Any]]:
        return [orjson.loads(v) for v in await self.redis.lrange(ALERTS_HISTORY, 0, limit - 1)]

    async def alerts_known(self) -> bool:
        """False until the alert state was copied from kpi.alerts, and after Redis lost it."""
        return bool(await self.redis.exists(ALERTS_LOADED))

    # --- provider webhooks (API) ---------------------------------------------------------

    async def update_webhook_state(self, kind: str, entity_id: str,
                                   update: Callable[[dict[str, Any] | None], dict[str, Any]],
                                   ttl_seconds: int | None) -> dict[str, Any]:
        """Replace the merged state of a call or deal by `update(current)`, atomically: two API
        replicas taking two events of one deal at once both land (optimistic retry)."""
        key = f"{WEBHOOK}state:{kind}:{entity_id}"
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    raw = await pipe.get(key)
                    new = update(None if raw is None else orjson.loads(raw))
                    pipe.multi()
                    pipe.set(key, orjson.dumps(new), ex=ttl_seconds)
                    await pipe.execute()
                    return new
                except WatchError:
                    continue

    async def webhook_seen(self, provider: str, native_ids: Iterable[str]) -> set[str]:
        ids = list(native_ids)
        pipe = self.redis.pipeline(transaction=False)
        for native in ids:
            pipe.exists(f"{WEBHOOK}seen:{provider}:{native}")
        return {native for native, found in zip(ids, await pipe.execute()) if found}

    async def mark_webhook_seen(self, provider: str, native_ids: Iterable[str], ttl_seconds: int) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for native in native_ids:
            pipe.set(f"{WEBHOOK}seen:{provider}:{native}", b"1", ex=ttl_seconds)
        await pipe.execute()
