"""Standby copies: who keeps which partition warm, and what a takeover gets from a copy."""

from __future__ import annotations

import orjson
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment, ConsumerProtocolMemberMetadata
from hypothesis import given
from hypothesis import strategies as st

from salespulse.processor.assignment import StandbyAssignor, standbys
from salespulse.processor.state import Standby, marker_key


@given(st.lists(st.text("abcdef", min_size=1, max_size=4), min_size=1, max_size=5, unique=True),
       st.integers(1, 12), st.integers(0, 4), st.randoms())
def test_each_partition_has_its_copies_on_other_members(members, partitions, replicas, rnd):
    owners = {p: rnd.choice(members) for p in range(partitions)}
    copies = standbys(owners, members, replicas)
    assert set(copies) == set(members)
    for partition, owner in owners.items():
        keepers = [m for m, kept in copies.items() if partition in kept]
        assert owner not in keepers
        assert len(keepers) == min(replicas, len(members) - 1)


class Cluster:
    """What the range assignor asks of the cluster metadata (a fake: pure code under test)."""

    def partitions_for_topic(self, topic: str) -> set[int]:
        return set(range(6))


def test_the_assignment_names_each_members_standbys_and_the_member_hears_of_them():
    heard: list[set[int]] = []
    assignor = StandbyAssignor(1, heard.append)
    topics = ["sales.calls", "sales.orders"]
    members = {"w1-x": ConsumerProtocolMemberMetadata(0, topics, b""),
               "w2-y": ConsumerProtocolMemberMetadata(0, topics, b""),
               "w3-z": ConsumerProtocolMemberMetadata(0, topics, b"")}
    assigned = assignor.assign(Cluster(), members)
    owned = {m: {p for _, ps in a.assignment for p in ps} for m, a in assigned.items()}
    assert owned == {"w1-x": {0, 1}, "w2-y": {2, 3}, "w3-z": {4, 5}}  # the range assignor's
    for member, assignment in assigned.items():
        assignor.on_assignment(ConsumerProtocolMemberAssignment.decode(assignment.encode()))
    assert heard == [{4, 5}, {0, 1}, {2, 3}]  # each keeps the previous member's partitions warm
    assert orjson.loads(assigned["w1-x"].user_data) == {"standby": [4, 5]}


def test_a_copy_hands_over_its_rows_decoded_with_the_unfinished_write_to_undo():
    standby = Standby({}, "changelog")
    standby.follow({3, 4})
    copy = standby.copies[3]
    row, later = "3|m|sales.orders|day|2026-11-23|all|all", "3|e|sales.orders|order:o1"
    for key, value in [(row, b'{"o":1,"m":{"orders":1}}'), (marker_key(3), b"{}"),
                       (row, b'{"o":2,"m":{"orders":2}}'), (later, b'{"o":2,"s":{}}')]:
        copy.record(key, value)
    standby.positions[3] = 42
    rows, before, position = standby.take(3)
    assert rows == {row: {"o": 2, "m": {"orders": 2}}, later: {"o": 2, "s": {}}}
    assert position == 42
    assert before[row] == {"o": 1, "m": {"orders": 1}} and later in before  # absent before: to delete
    assert set(standby.copies) == {4} and standby.take(3) is None
