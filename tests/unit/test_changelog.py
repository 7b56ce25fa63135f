"""The changelog's rollback rule (a restore keeps each partition's whole writes, never part of
one) and its staged rows (written once a flush, put back by a worker that may not write them)."""

from __future__ import annotations

import asyncio

import orjson
from hypothesis import given
from hypothesis import strategies as st

from salespulse.domain.aggregation import key_partition
from salespulse.processor.state import Replay, State, marker_key

KEYS = [f"{p}|m|sales.orders|day|2026-11-23|rep|r{i}" for p in (0, 1) for i in range(3)]
values = st.one_of(st.none(), st.builds(lambda n: {"o": n, "m": {"orders": n}}, st.integers(0, 9)))
writes = st.dictionaries(st.sampled_from(KEYS), values, min_size=1, max_size=4)


def records_of(write: dict) -> list:
    """A write's records as State.write sends them: rows, then a marker per partition written."""
    partitions = sorted({int(key.split("|", 1)[0]) for key in write})
    return list(write.items()) + [(marker_key(p), {}) for p in partitions]


def applied(data: dict, write: dict) -> dict:
    out = dict(data)
    for key, value in write.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


@given(st.lists(writes, max_size=6), writes, st.data())
def test_a_restore_keeps_whole_writes_and_undoes_the_one_cut_short(done, cut, data):
    legacy = {KEYS[0]: {"o": 0, "m": {"orders": 1}}}  # written by a version without markers
    records = list(legacy.items()) + [(marker_key(0), {}), (marker_key(1), {})]  # markers on taking the partitions
    for write in done:
        records += records_of(write)
    cut_records = records_of(cut)
    cut_records = cut_records[:data.draw(st.integers(0, len(cut_records)), label="records of the last write sent")]
    replay = Replay({})
    for key, value in records + cut_records:
        replay.record(key, value)
    replay.undo()

    expected = legacy
    for write in done:
        expected = applied(expected, write)
    # A partition whose marker of the cut write was sent has it whole; the others have none of it.
    marked = {int(key.split("|", 1)[0]) for key, _ in cut_records if key.endswith("|commit")}
    expected = applied(expected, {k: v for k, v in cut.items() if int(k.split("|", 1)[0]) in marked})
    assert replay.data == expected


def test_records_before_the_first_marker_are_kept_as_they_are():
    """A changelog written by an earlier version has no markers: nothing of it is undone."""
    replay = Replay({})
    replay.record(KEYS[0], {"o": 1, "m": {}})
    replay.record(KEYS[0], None)
    replay.record(KEYS[1], {"o": 2, "m": {}})
    assert replay.undo() == {}
    assert replay.data == {KEYS[1]: {"o": 2, "m": {}}}


def test_undoing_names_each_row_put_back_or_gone():
    replay = Replay({})
    for key, value in [(KEYS[0], {"o": 1, "m": {}}), (marker_key(0), {}),
                       (KEYS[0], {"o": 5, "m": {}}), (KEYS[1], {"o": 5, "m": {}}), (KEYS[0], None)]:
        replay.record(key, value)
    assert replay.undo() == {KEYS[0]: {"o": 1, "m": {}}, KEYS[1]: None}
    assert replay.data == {KEYS[0]: {"o": 1, "m": {}}}


class _Batch:
    def __init__(self, records: list) -> None:
        self.records = records

    def append(self, timestamp, key, value):
        self.records.append((key, value))
        return type("Metadata", (), {"offset": len(self.records) - 1})

    def close(self) -> None:
        pass


class RecordingProducer:
    """Keeps what a State sends, as records (key, value) in order: no broker (the state's
    writes against a real one are tests/integration/test_changelog.py's)."""

    def __init__(self) -> None:
        self.records: list[tuple[bytes, bytes | None]] = []

    def create_batch(self) -> _Batch:
        return _Batch(self.records)

    async def send_batch(self, batch, topic, partition):
        done = asyncio.get_running_loop().create_future()
        done.set_result(type("RecordMetadata", (), {"offset": 0}))
        return done


rows = st.dictionaries(st.sampled_from(KEYS), st.builds(lambda n: {"o": n, "m": {"orders": n}}, st.integers(0, 9)),
                       min_size=1, max_size=4)
steps = st.lists(st.one_of(st.tuples(st.just("stage"), rows), st.just(("flush", None)), st.just(("unstage", None))),
                 max_size=12)


@given(st.dictionaries(st.sampled_from(KEYS), st.just({"o": 0, "m": {}}), max_size=3), steps)
def test_staged_rows_are_written_once_a_flush_and_put_back_unflushed(restored, steps):
    """Batches' rows are staged (seen by the next batch at once) and written by the next flush
    one record per row, the latest; rows put back (a fenced worker) are what the changelog has."""
    producer = RecordingProducer()
    state = State(producer, "changelog")
    state.data.update(restored)

    async def run() -> None:
        changelog = dict(restored)  # what a restore of the records sent so far gives
        latest: dict = {}
        for step, staged in steps:
            if step == "stage":
                state.stage(staged)
                latest.update(staged)
                assert state.data == {**changelog, **latest}
            elif step == "flush":
                sent_before = len(producer.records)
                await asyncio.gather(*await state.flush())
                records = producer.records[sent_before:]
                written = {orjson.loads(k): orjson.loads(v) for k, v in records if not orjson.loads(k).endswith("commit")}
                assert len(written) == len(records) - len({key_partition(k) for k in latest}) == len(latest)
                assert written == latest
                changelog.update(written)
                latest = {}
            else:
                state.unstage()
                latest = {}
                assert state.data == changelog
        replay = Replay(dict(restored))
        for key, value in producer.records:
            replay.record(orjson.loads(key), None if value is None else orjson.loads(value))
        assert replay.data == changelog

    asyncio.run(run())
