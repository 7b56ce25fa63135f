"""Dead letters as records, which of them a command picks, and what may be sent again. Pure:
no Kafka here (the command's I/O is in __main__).

The processor's letters carry the original key and bytes of an event and the headers
`salespulse.reason`, `salespulse.source.topic`, `.partition` and `.offset`; the API's webhook
intake writes letters of `webhooks/{provider}` with the provider's payload. Only the first can
be sent again: the intake keeps the call or deal a webhook letter was about, and the next event
of it after the directory or stage map is fixed counts it whole.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import orjson

from salespulse.contracts.events import SOURCE_TOPICS

REASON = "salespulse.reason"
SOURCE = "salespulse.source.topic"
SOURCE_PARTITION = "salespulse.source.partition"
SOURCE_OFFSET = "salespulse.source.offset"
RESENT_FROM = "salespulse.resent.from"  # on an event sent again: the letter it came from

NOT_FROM_A_TOPIC = ("a webhook letter holds the provider's payload, not an event: the API kept its call or deal, "
                    "and the next event of it after the directory or stage map is fixed counts it whole")


@dataclass(frozen=True)
class DeadLetter:
    partition: int
    offset: int
    written_at: datetime
    source: str  # the topic the event was read from (sales.orders), or webhooks/{provider}
    reason: str
    key: bytes | None
    value: bytes
    source_partition: int | None = None
    source_offset: int | None = None

    @classmethod
    def from_record(cls, partition: int, offset: int, timestamp_ms: int, key: bytes | None, value: bytes | None,
                    headers: Sequence[tuple[str, bytes]]) -> DeadLetter:
        named = {name: raw.decode("utf-8", "replace") for name, raw in headers}

        def number(name: str) -> int | None:
            text = named.get(name)
            return int(text) if text is not None and text.isdigit() else None

        return cls(partition, offset, datetime.fromtimestamp(timestamp_ms / 1000, timezone.utc),
                   named.get(SOURCE, "unknown"), named.get(REASON, "no reason given"), key, value or b"",
                   number(SOURCE_PARTITION), number(SOURCE_OFFSET))

    @property
    def why_not_resendable(self) -> str | None:
        if self.source in SOURCE_TOPICS:
            return None
        if self.source.startswith("webhooks/"):
            return NOT_FROM_A_TOPIC
        return f"{self.source} is not a topic SalesPulse reads events from"

    def to_doc(self) -> dict[str, Any]:
        """What `show` prints: where it is, where it came from, why, and the event (its JSON
        when it is JSON, else its bytes as text)."""
        try:
            event: Any = orjson.loads(self.value)
        except orjson.JSONDecodeError:
            event = self.value.decode("utf-8", "replace")
        return {"partition": self.partition, "offset": self.offset,
                "written_at": self.written_at.isoformat(timespec="seconds"), "source": self.source,
                "source_partition": self.source_partition, "source_offset": self.source_offset,
                "reason": self.reason, "key": None if self.key is None else self.key.decode("utf-8", "replace"),
                "event": event}


@dataclass(frozen=True)
class Selection:
    """Which letters a command takes: all of these that are given must hold."""

    sources: frozenset[str] = frozenset()
    reason: str | None = None  # a part of the reason, any case
    since: datetime | None = None  # written at or after
    until: datetime | None = None  # written before

    @property
    def everything(self) -> bool:
        return not self.sources and self.reason is None and self.since is None and self.until is None

    def __call__(self, letter: DeadLetter) -> bool:
        return ((not self.sources or letter.source in self.sources)
                and (self.reason is None or self.reason.casefold() in letter.reason.casefold())
                and (self.since is None or letter.written_at >= self.since)
                and (self.until is None or letter.written_at < self.until))


@dataclass
class Group:
    source: str
    reason: str
    count: int = 0
    first: datetime | None = None
    last: datetime | None = None

    def to_doc(self) -> dict[str, Any]:
        return {"source": self.source, "reason": self.reason, "count": self.count,
                "first": self.first.isoformat(timespec="seconds") if self.first else None,
                "last": self.last.isoformat(timespec="seconds") if self.last else None}


def summarize(letters: Iterable[DeadLetter]) -> list[Group]:
    """Letters per (source, reason), the largest groups first."""
    groups: dict[tuple[str, str], Group] = {}
    for letter in letters:
        group = groups.get((letter.source, letter.reason))
        if group is None:
            group = groups[(letter.source, letter.reason)] = Group(letter.source, letter.reason)
        group.count += 1
        group.first = letter.written_at if group.first is None else min(group.first, letter.written_at)
        group.last = letter.written_at if group.last is None else max(group.last, letter.written_at)
    return sorted(groups.values(), key=lambda g: (-g.count, g.source, g.reason))


@dataclass
class Plan:
    """What `resend` does with the letters it took: each distinct event once, to its topic."""

    send: list[DeadLetter] = field(default_factory=list)
    copies: int = 0  # letters of an event already in `send` (dead-lettered again after an earlier resend)
    skipped: list[tuple[DeadLetter, str]] = field(default_factory=list)


def plan_resend(letters: Iterable[DeadLetter]) -> Plan:
    """Each event once, in the order its letters were written per dead-letter partition: an
    event dead-lettered again after a resend has a letter per attempt, and sending them all
    would double them at every run (the processor would count the event once either way: it
    knows events by id)."""
    plan, seen = Plan(), set()
    for letter in letters:
        why_not = letter.why_not_resendable
        if why_not is not None:
            plan.skipped.append((letter, why_not))
            continue
        identity = (letter.source, letter.key, hashlib.blake2b(letter.value, digest_size=16).digest())
        if identity in seen:
            plan.copies += 1
            continue
        seen.add(identity)
        plan.send.append(letter)
    return plan
