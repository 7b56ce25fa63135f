"""membership.Lease: a worker writes only within a third of its session timeout of a heartbeat
the group answered, and asks the group again otherwise (tests/integration/test_zombies.py runs
it against the broker)."""

from __future__ import annotations

import pytest

from salespulse.processor.membership import Fenced, Lease


class Group:
    """Answers heartbeats as told, on a clock the test moves."""

    def __init__(self) -> None:
        self.now = 100.0
        self.member = True
        self.asked: list[float] = []

    async def confirm(self) -> bool:
        self.asked.append(self.now)
        self.now += 0.01  # the round trip
        return self.member


def leased() -> tuple[Group, Lease]:
    """A group and a lease on it, for a 30 s session (a 10 s lease)."""
    group = Group()
    return group, Lease(group.confirm, session_seconds=30, clock=lambda: group.now)


async def test_the_first_write_asks_the_group_and_later_ones_within_the_lease_do_not():
    group, lease = leased()
    await lease.hold()
    assert group.asked == [100.0]
    group.now += 9.9  # the lease runs from the heartbeat's sending, 10 s for a 30 s session
    await lease.hold()
    assert group.asked == [100.0]
    group.now += 0.2
    await lease.hold()
    assert len(group.asked) == 2


async def test_a_worker_the_group_dropped_is_fenced_and_stays_so_until_it_is_a_member_again():
    group, lease = leased()
    await lease.hold()
    group.now += 45  # its loop was held past the session timeout
    group.member = False
    with pytest.raises(Fenced):
        await lease.hold()
    with pytest.raises(Fenced):  # a refusal grants nothing: every write asks again
        await lease.hold()
    group.member = True  # it joined the group again
    await lease.hold()
    assert len(group.asked) == 4


async def test_an_ended_lease_is_renewed_before_the_next_write():
    group, lease = leased()
    await lease.hold()
    lease.end()  # partitions revoked
    await lease.hold()
    assert len(group.asked) == 2
