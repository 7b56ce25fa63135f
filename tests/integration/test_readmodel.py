"""The Redis read model on a real Redis: what retention drops goes, and only that."""

from __future__ import annotations

from salespulse.domain.aggregation import RowKey
from salespulse.readmodel import ReadModel
from tests.integration.conftest import unique


async def test_dropping_expired_parts_removes_a_row_only_once_no_part_is_left(redis_url):
    readmodel = ReadModel.from_url(redis_url)
    try:
        dim, key = unique("dim"), unique("key")
        row = RowKey("day", "2020-02-03", dim, key)
        other = RowKey("day", "2020-02-03", dim, unique("key"))
        await readmodel.write_rows([("sales.calls", 0, row, {"calls_outbound": 2}),
                                    ("sales.orders", 1, row, {"orders": 1}),
                                    ("sales.calls", 0, other, {"calls_outbound": 1})])
        await readmodel.delete_rows([("sales.calls", 0, row)])
        assert await readmodel.read_dimension("day", "2020-02-03", dim) == {key: {"orders": 1}, other.key: {"calls_outbound": 1}}
        await readmodel.delete_rows([("sales.orders", 1, row)])
        assert await readmodel.read_dimension("day", "2020-02-03", dim) == {other.key: {"calls_outbound": 1}}
    finally:
        await readmodel.close()
