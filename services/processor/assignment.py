"""Who owns which source partitions, and who keeps a warm standby copy of whose rows.

The group's leader assigns with the range assignor (a member gets the same partition numbers
of every sales.* topic: they are co-partitioned) and, in the same assignment, names for each
partition `replicas` other members that keep a standby copy of its rows (the members after
its owner, in member order). The standby partitions travel in the assignment's user data,
so every member learns its own from the group protocol itself; with static membership a
restarted member gets its previous assignment back, standbys included.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import orjson
from aiokafka.cluster import ClusterMetadata
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment, ConsumerProtocolMemberMetadata


def standbys(owners: Mapping[int, str], members: Iterable[str], replicas: int) -> dict[str, set[int]]:
    """Member -> partitions it keeps a standby copy of: each partition on the `replicas`
    members after its owner (in sorted order), never on its owner."""
    ring = sorted(set(members))
    out: dict[str, set[int]] = {member: set() for member in ring}
    copies = min(replicas, len(ring) - 1)
    for partition, owner in owners.items():
        start = ring.index(owner)
        for step in range(1, copies + 1):
            out[ring[(start + step) % len(ring)]].add(partition)
    return out


class StandbyAssignor(RangePartitionAssignor):
    """The range assignor, plus standby partitions in each member's user data.

    An instance per worker (aiokafka calls these methods on whatever it is given), so the
    leader knows `replicas` and each member hears of its standbys through `on_standbys`."""

    name = "range-standby"

    def __init__(self, replicas: int, on_standbys: Callable[[set[int]], None]) -> None:
        self.replicas = replicas
        self.on_standbys = on_standbys

    def assign(self, cluster: ClusterMetadata,
               members: Mapping[str, ConsumerProtocolMemberMetadata]) -> dict[str, ConsumerProtocolMemberAssignment]:
        assigned = RangePartitionAssignor.assign(cluster, members)
        owners: dict[int, str] = {}
        for member, assignment in assigned.items():
            for _, partitions in assignment.assignment:
                for partition in partitions:
                    owners[partition] = member
        copies = standbys(owners, members, self.replicas)
        return {member: ConsumerProtocolMemberAssignment(
                    assignment.version, assignment.assignment, orjson.dumps({"standby": sorted(copies[member])}))
                for member, assignment in assigned.items()}

    def metadata(self, topics: Iterable[str]) -> ConsumerProtocolMemberMetadata:
        return ConsumerProtocolMemberMetadata(self.version, list(topics), b"")

    def on_assignment(self, assignment: ConsumerProtocolMemberAssignment) -> None:
        data = orjson.loads(assignment.user_data) if assignment.user_data else {}
        self.on_standbys(set(data.get("standby", ())))
