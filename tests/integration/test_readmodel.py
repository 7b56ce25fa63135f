"""The Redis read model on a real Redis: what retention drops goes, and only that."""

from __future__ import annotations

import orjson
import redis.asyncio

from salespulse.domain.aggregation import RowKey
from salespulse.domain.targets import TargetId
from salespulse.readmodel import SYNCED, TARGET_COPIES, ReadModel, _HiredisPacking, connect, row_hash
from tests.integration.conftest import unique


async def test_dropping_expired_parts_removes_a_row_only_once_no_part_is_left(redis_url):
    readmodel = ReadModel.from_url(redis_url)
    try:
        dim, key = unique("dim"), unique("key")
        row = RowKey("day", "2020-02-03", dim, key)
        other = RowKey("day", "2020-02-03", dim, unique("key"))
        await readmodel.write_rows([(0, row, {"calls_outbound": 2}),
                                    (1, row, {"orders": 1}),
                                    (0, other, {"calls_outbound": 1})])
        await readmodel.delete_rows([(0, row)])
        assert await readmodel.read_dimension("day", "2020-02-03", dim) == {key: {"orders": 1}, other.key: {"calls_outbound": 1}}
        await readmodel.delete_rows([(1, row)])
        assert await readmodel.read_dimension("day", "2020-02-03", dim) == {other.key: {"calls_outbound": 1}}
    finally:
        await readmodel.close()


async def test_reading_only_listed_rows_reads_what_read_rows_reads(redis_url):
    """A window names many rows never written: read_listed_rows skips those its key sets do not
    list, and answers exactly as reading every one does, written, never written or deleted."""
    readmodel = ReadModel.from_url(redis_url)
    try:
        dim = unique("dim")
        written = [RowKey(period, start, dim, key) for period, start in (("day", "2020-03-02"), ("month", "2020-03-01"))
                   for key in ("a", "b")]
        await readmodel.write_rows([(0, row, {"due_cents": i + 1}) for i, row in enumerate(written)]
                                   + [(1, written[0], {"due_cents": 10})])
        await readmodel.delete_rows([(0, written[3]), (1, written[0])])  # one row gone, one part of another
        never = [RowKey("day", "2020-03-03", dim, "a"), RowKey("day", "2020-03-02", dim, "c"),
                 RowKey("year", "2020-01-01", unique("dim"), "a")]
        rows = written + never
        listed, every = await readmodel.read_listed_rows(rows), await readmodel.read_rows(rows)
        assert listed == every == {written[0]: {"due_cents": 1}, written[1]: {"due_cents": 2},
                                   written[2]: {"due_cents": 3}, written[3]: {}, **{row: {} for row in never}}
        assert [listed[row].as_of is None for row in rows] == [every[row].as_of is None for row in rows]
    finally:
        await readmodel.close()


async def test_a_whole_copy_drops_the_fields_an_earlier_version_wrote_per_topic(redis_url):
    """Earlier versions wrote a field per topic and partition (`sales.calls/3`); a partition
    copied whole replaces its fields by its one field per partition, and is synced only then."""
    readmodel = ReadModel.from_url(redis_url)
    try:
        dim = unique("dim")
        row, other = RowKey("day", "2020-02-05", dim, "r1"), RowKey("day", "2020-02-05", dim, "r2")
        await readmodel.redis.hset(row_hash(row), mapping={
            "sales.calls/3": orjson.dumps({"m": {"calls": 2}, "t": 1.0}),
            "sales.deals/3": orjson.dumps({"m": {"deals": 1}, "t": 1.0}),
            "sales.calls/4": orjson.dumps({"m": {"calls": 7}, "t": 1.0})})
        synced = await readmodel.synced_partitions()  # (Redis is shared with other tests' workers)
        await readmodel.redis.hset(SYNCED, mapping={"sales.calls/97": "1.0"})
        assert await readmodel.synced_partitions() == synced  # an earlier version's field is not a partition synced
        await readmodel.write_rows([(3, other, {"calls": 1})])  # a batch's rows leave other fields alone
        await readmodel.write_rows([(3, row, {"calls": 2, "deals": 1})], whole=True)
        assert await readmodel.read_dimension("day", "2020-02-05", dim) == {
            "r1": {"calls": 9, "deals": 1}, "r2": {"calls": 1}}
        assert sorted(await readmodel.redis.hkeys(row_hash(row))) == [b"3", b"sales.calls/4"]
        await readmodel.mark_synced([97])
        assert await readmodel.synced_partitions() == synced | {97}
        await readmodel.redis.hdel(SYNCED, "sales.calls/97", "97")
    finally:
        await readmodel.close()


async def test_every_write_a_reading_shows_moves_the_version(redis_url):
    readmodel = ReadModel.from_url(redis_url)
    try:
        row, rep = RowKey("day", "2020-02-04", unique("dim"), "k"), unique("rep")
        target = TargetId("revenue", "rep", unique("rep"), "month")
        writes = {
            "rows": lambda: readmodel.write_rows([(1, row, {"orders": 1})]),
            "rows dropped": lambda: readmodel.delete_rows([(1, row)]),
            "directory records copied": lambda: readmodel.write_records([("reps", rep, {"team": "t"}, 1)]),
            "directory replaced": lambda: readmodel.replace_records([("reps", rep, {"team": "u"}, 2)], {}),
            "directory record": lambda: readmodel.put_record("reps", rep, {"team": "v"}, 3),
            "directory record deleted": lambda: readmodel.delete_record("reps", rep, 4),
            "target": lambda: readmodel.put_target(target, {"value": "10"}, 5),
            "target deleted": lambda: readmodel.delete_target(target, 6),
        }
        for what, write in writes.items():
            before = await readmodel.version()
            await write()
            assert await readmodel.version() == before + 1, what
        before = await readmodel.version()
        assert await readmodel.delete_target(target, 6) is False  # the write's own answer is kept
        assert await readmodel.version() == before  # nothing written, nothing for readings to see
    finally:
        await readmodel.close()


async def test_commands_packed_by_hiredis_are_the_bytes_redis_py_packs_and_redis_answers_them(redis_url):
    readmodel = ReadModel.from_url(redis_url)
    try:
        pool = readmodel.redis.connection_pool
        assert issubclass(pool.connection_class, _HiredisPacking)
        ours = pool.make_connection()
        theirs = redis.asyncio.Connection()
        for command in [("SCRIPT LOAD", "return 1"), ("HSET", "h", "é/3", b"\x00{\"m\": 1}"), ("EVALSHA", "ab", 2, "k", 7),
                        ("SET", "k", 0.1), ("GET", "")]:
            assert b"".join(ours.pack_command(*command)) == b"".join(theirs.pack_command(*command))
        dim = unique("dim")
        await readmodel.write_rows([(p, RowKey("day", "2020-02-03", dim, f"rep-{p}"), {"calls": p + 1})
                                    for p in range(2500)])  # three script calls
        rows = await readmodel.read_dimension("day", "2020-02-03", dim)
        assert len(rows) == 2500 and rows["rep-2499"] == {"calls": 2500}
    finally:
        await readmodel.close()


async def test_rows_are_written_after_redis_lost_its_scripts(redis_url):
    """Rows go in one script call per thousand, run by its hash (EVALSHA) without asking
    first whether Redis has it: a Redis that lost it (restarted, SCRIPT FLUSH) is given it
    again and the whole write sent again, key sets and year buckets included."""
    readmodel = ReadModel.from_url(redis_url)
    try:
        dim = unique("dim")
        rows = [(p % 3, RowKey(period, start, dim, f"rep-{p % 7}"), {"calls": p + 1})
                for p in range(1200) for period, start in (("day", "1970-01-05"), ("year", "1970-01-01"))]
        await readmodel.redis.script_flush()
        before = await readmodel.version()
        await readmodel.write_rows(rows)
        assert await readmodel.version() > before
        last = {}  # each partition's last row of a key is the one kept
        for partition, row, measures in rows:
            last[partition, row.key] = measures["calls"]
        expected = {f"rep-{k}": {"calls": sum(last[p, f"rep-{k}"] for p in range(3))} for k in range(7)}
        assert await readmodel.read_dimension("day", "1970-01-05", dim) == expected
        assert await readmodel.read_dimension("year", "1970-01-01", dim) == expected
        assert "1970-01-01" not in await readmodel.years()  # only the `all` dimension's years are listed
        await readmodel.write_rows([(0, RowKey("year", "1970-01-01", "all", dim), {"calls": 1})])
        assert "1970-01-01" in await readmodel.years()
        await readmodel.redis.srem("sp:years", "1970-01-01")
    finally:
        await readmodel.close()


def test_every_kind_of_redis_url_gets_hiredis_packing():
    for url in ("redis://127.0.0.1:1/0", "rediss://:secret@127.0.0.1:1/0", "unix:///tmp/none.sock"):
        client = connect(url)
        assert issubclass(client.connection_pool.connection_class, _HiredisPacking), url


def own_database(redis_url: str, db: int) -> str:
    """The same server's database `db` (the default one is shared by every test's workers)."""
    base, _, tail = redis_url.rpartition("/")
    return f"{base}/{db}" if tail.isdigit() and base.count("/") >= 2 else f"{redis_url.rstrip('/')}/{db}"


async def test_directory_copies_land_in_any_order_and_the_latest_record_stays(redis_url):
    """The API writes what it produced and every worker copies what it read, each with the
    record's offset: an earlier record copied after a later one (or after its deletion) is
    refused. A record deleted through the API came back that way until the next copy."""
    readmodel = ReadModel.from_url(own_database(redis_url, 7))
    try:
        await readmodel.redis.flushdb()
        assert await readmodel.put_record("reps", "r1", {"team": "b"}, 5)
        assert await readmodel.write_records([("reps", "r1", {"team": "a"}, 3)]) == 0
        assert await readmodel.record("reps", "r1") == {"team": "b"}
        assert await readmodel.delete_record("reps", "r1", 7)
        assert not await readmodel.put_record("reps", "r1", {"team": "b"}, 5)  # a worker's late copy
        assert await readmodel.record("reps", "r1") is None
        assert await readmodel.put_record("reps", "r1", {"team": "c"}, 9)  # created again, later
        assert await readmodel.record("reps", "r1") == {"team": "c"}
        assert await readmodel.write_records([("reps", "r2", {"team": "x"}, 1), ("products", "p", {"category": "y"}, 1)]) == 2
        assert await readmodel.record("products", "p") == {"category": "y"}
    finally:
        await readmodel.close()


async def test_replacing_the_directory_keeps_what_was_written_after_the_reader_read(redis_url):
    """A reader of the directory topics that read up to offset 10 makes Redis's copy its own: a
    key it never read goes (deleted, its tombstone compacted away, or written before versions
    were kept), unless it was written at a later offset (by the API, since)."""
    readmodel = ReadModel.from_url(own_database(redis_url, 8))
    try:
        await readmodel.redis.flushdb()
        await readmodel.put_record("reps", "old", {"team": "a"}, 2)
        await readmodel.put_record("reps", "newer", {"team": "a"}, 20)
        await readmodel.redis.hset("sp:dir:reps", "unversioned", orjson.dumps({"team": "a"}))
        await readmodel.put_record("reps", "known", {"team": "a"}, 4)
        await readmodel.put_record("reps", "deleted", {"team": "a"}, 3)
        await readmodel.put_record("products", "kept", {"category": "c"}, 30)
        await readmodel.replace_records([("reps", "known", {"team": "b"}, 8), ("reps", "deleted", None, 6),
                                         ("reps", "fresh", {"team": "f"}, 9)], {"reps": 10, "products": 10})
        assert await readmodel.records("reps") == {"fresh": {"team": "f"}, "known": {"team": "b"},
                                                   "newer": {"team": "a"}}
        assert await readmodel.records("products") == {"kept": {"category": "c"}}
        assert await readmodel.put_record("reps", "old", {"team": "a"}, 11)  # a new record after the reader's
    finally:
        await readmodel.close()


async def test_targets_rules_and_profiles_land_in_any_order_and_the_latest_version_stays(redis_url):
    """An API copying kpi.targets (at start, or after Redis restarted empty) while another, or
    the same, takes a PUT of that target: the copy of the older version may land last. Each
    version is kept with its offset, so the older one is refused, as directory records are."""
    readmodel = ReadModel.from_url(own_database(redis_url, 9))
    try:
        await readmodel.redis.flushdb()
        tid = TargetId("revenue", "team", "north", "month")
        assert await readmodel.put_target(tid, {"target": 200}, 12)  # the PUT's
        assert not await readmodel.put_target(tid, {"target": 100}, 4)  # the copy's, from before it
        assert await readmodel.target_docs() == {tid: {"target": 200}}
        assert await readmodel.delete_target(tid, 13)
        assert not await readmodel.put_target(tid, {"target": 200}, 12)  # a copy read before the deletion
        assert await readmodel.target_docs() == {}
        assert await readmodel.put_document("rules", "r1", {"v": 2}, 8)
        assert not await readmodel.put_document("rules", "r1", {"v": 1}, 7)
        assert not await readmodel.delete_document("rules", "r1", 6)
        assert await readmodel.documents("rules") == {"r1": {"v": 2}}
        assert await readmodel.documents("profiles") == {}  # each collection its own versions
        assert await readmodel.put_document("profiles", "r1", {"v": 0}, 1)
        await readmodel.redis.delete("sp:rules")  # lost alone (deleted, or evicted under allkeys-lru)
        assert await readmodel.put_document("rules", "r1", {"v": 2}, 8)  # the same version copies back
        assert not await readmodel.put_document("rules", "r1", {"v": 2}, 8)
        assert await readmodel.documents("rules") == {"r1": {"v": 2}}
    finally:
        await readmodel.close()


async def test_replacing_copies_of_a_topic_keeps_what_was_written_after_the_reader_read(redis_url):
    readmodel = ReadModel.from_url(own_database(redis_url, 10))
    try:
        await readmodel.redis.flushdb()
        copies = TARGET_COPIES
        await readmodel.write_copies((copies, [("old", {"t": 1}, 2), ("newer", {"t": 1}, 20), ("known", {"t": 1}, 4)]))
        await readmodel.redis.hset(copies.hash, "unversioned", orjson.dumps({"t": 1}))  # an earlier version's
        await readmodel.replace_copies(copies, [("known", {"t": 2}, 8), ("fresh", {"t": 3}, 9)], read_up_to=10)
        assert await readmodel.redis.hgetall(copies.hash) == {
            b"known": b'{"t":2}', b"fresh": b'{"t":3}', b"newer": b'{"t":1}'}
        # The topic deleted and created again: its offsets start over, those copied from the
        # earlier one would refuse them; they go.
        assert not await readmodel.forget_copies_from(copies, 21)
        assert await readmodel.forget_copies_from(copies, 3)
        assert await readmodel.redis.hgetall(copies.hash) == {}
        await readmodel.replace_copies(copies, [], read_up_to=-1)  # an empty topic: nothing to keep
        assert await readmodel.redis.hgetall(copies.hash) == {}
    finally:
        await readmodel.close()
