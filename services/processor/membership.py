"""Fencing a worker the group has dropped: no changelog write without a recent membership proof.

A worker whose event loop is held longer than its session timeout (a long pause of the process,
a stalled host) stops heartbeating; the group drops it and gives its partitions to another
worker, which restores their rows from the changelog and handles their events from the last
committed offsets. The held worker knows nothing of it until its loop turns again, and then
it would finish the batch in hand: write its rows to the changelog and Redis after the new
owner's, older than them. Kafka refuses its offset commit (a stale generation), but nothing
refuses those writes: a later restore, and Redis until the new owner writes the same rows
again, would have figures missing the events the new owner counted meanwhile.

Kafka's own answer, transactions, fences by transactional id: that would need a producer and
a transaction per source partition (aiokafka 0.14's send_offsets_to_transaction carries no
group generation, so one transactional producer per worker fences nothing on a takeover).
Per-record epochs checked on restore are unsound on a compacted changelog: the newest record
of a key, a zombie's, would be the one compaction keeps and the restore ignores.

So a worker writes only while it holds a lease: the group answered one of its heartbeats,
sent less than a third of the session timeout ago. The group cannot give its partitions to
another worker before the session times out from that heartbeat on (a rebalance waits for
every live member, up to the rebalance timeout), so a write sent then reaches the broker
first, unless the worker is held again between the check and the send (a few milliseconds;
a write is sent as soon as its rows are encoded). A worker that cannot renew the lease drops
the batch, sends nothing of it, and lets the group give its partitions again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from aiokafka.protocol.group import JoinGroupRequest

log = logging.getLogger(__name__)

LEASE_SHARE = 1 / 3  # of the session timeout: how old the last answered heartbeat may be at a write


class Fenced(Exception):
    """The group no longer counts this worker as the owner of its partitions (or cannot say)."""


class Lease:
    """The right to write, renewed by a heartbeat the group answers (`confirm`, True: still a member).

    `confirmed_at` is when the last confirmed heartbeat was sent, not answered: the session
    runs from what the broker saw, at the latest its arrival."""

    def __init__(self, confirm: Callable[[], Awaitable[bool]], session_seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.confirm, self.clock = confirm, clock
        self.length = session_seconds * LEASE_SHARE
        self.confirmed_at = float("-inf")

    async def hold(self) -> None:
        """Return if the lease holds or is renewed now; raise Fenced if the group says no."""
        if self.clock() - self.confirmed_at <= self.length:
            return
        sent = self.clock()
        if not await self.confirm():
            raise Fenced("the group did not confirm this worker's membership (its session expired, or "
                         "the coordinator is unreachable)")
        self.confirmed_at = sent

    def end(self) -> None:
        """Forget the lease (the partitions were revoked): the next write asks the group first."""
        self.confirmed_at = float("-inf")


def heartbeat(consumer: AIOKafkaConsumer) -> Callable[[], Awaitable[bool]]:
    """A heartbeat of `consumer`'s group membership, sent now: True if the group answered that
    this member is in its current generation (a rebalance in progress included: the group
    waits for the member's next join before it hands its partitions out).

    It uses aiokafka's group coordinator (aiokafka 0.14, pinned; tests/integration/
    test_zombies.py runs it against the broker). On an expired session the coordinator resets
    its generation, so the consumer joins the group again at its next fetch."""

    async def confirm() -> bool:
        coordinator = consumer._coordinator
        if coordinator is None or coordinator.member_id == JoinGroupRequest.UNKNOWN_MEMBER_ID:
            return False
        try:
            return bool(await coordinator._do_heartbeat())
        except KafkaError as exc:  # e.g. its static instance id fenced by another process
            log.warning("membership heartbeat failed: %r", exc)
            return False

    return confirm
