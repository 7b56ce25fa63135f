"""The changelog's rollback rule: a restore keeps each partition's whole writes, never part of one."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from salespulse.processor.state import Replay, marker_key

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
