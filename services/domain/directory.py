"""Reference data: the rep directory, the product catalog and customer records.

Events name a rep, a product or a customer; these records add what they belong to (team and
region, category, sector) so that KPIs roll up by those dimensions. A rep's team and region
are dated: each assignment holds from its `since` instant until the next one, so an event
counts for the team its rep was in at the event's own time. History stays where it was
earned when a rep moves, and a replay of the topics gives the same attribution again.
Before a rep's first dated assignment, the first one applies (the directory learnt of the
rep late, not the other way round).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

UNASSIGNED = "unassigned"  # the team, region, category or sector of something not in the directory

REPS, PRODUCTS, CUSTOMERS = "reps", "products", "customers"

# Systems whose user, agent, owner or line ids a rep record can carry (POST /webhooks/{provider}).
PROVIDERS = ("twilio", "aircall", "asterisk", "hubspot", "pipedrive", "salesforce")


@dataclass(frozen=True, slots=True)
class Assignment:
    team: str
    region: str
    since: datetime | None = None  # None: from the beginning


@dataclass(frozen=True, slots=True)
class RepRecord:
    rep_id: str
    assignments: tuple[Assignment, ...]
    name: str | None = None
    extension: str | None = None
    # provider -> the rep's ids there (users, agents, owners, lines); see identity_index()
    identities: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def at(self, moment: datetime) -> Assignment:
        current = self.assignments[0]
        for assignment in self.assignments[1:]:
            if assignment.since is not None and assignment.since <= moment:
                current = assignment
        return current

    def assign(self, team: str, region: str, since: datetime | None) -> RepRecord:
        """Move the rep from `since` on; assignments that started at or after it are replaced."""
        kept = () if since is None else tuple(
            a for a in self.assignments if a.since is None or a.since < since)
        return replace(self, assignments=kept + (Assignment(team, region, since),))

    def to_doc(self) -> dict[str, Any]:
        return {"rep_id": self.rep_id, "name": self.name, "extension": self.extension,
                "identities": {provider: list(ids) for provider, ids in self.identities},
                "assignments": [{"team": a.team, "region": a.region,
                                 "since": a.since.isoformat() if a.since else None}
                                for a in self.assignments]}

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> RepRecord:
        assignments = tuple(
            Assignment(a["team"], a["region"], datetime.fromisoformat(a["since"]) if a.get("since") else None)
            for a in doc["assignments"])
        identities = tuple(sorted((p, tuple(ids)) for p, ids in (doc.get("identities") or {}).items() if ids))
        return cls(doc["rep_id"], _ordered(assignments), doc.get("name"), doc.get("extension"), identities)


def identity_index(reps: Mapping[str, RepRecord]) -> dict[tuple[str, str], str]:
    """(provider, id there) -> rep_id. A rep's telephony extension is also its Asterisk id."""
    index: dict[tuple[str, str], str] = {}
    for rep_id, record in reps.items():
        if record.extension:
            index.setdefault(("asterisk", record.extension), rep_id)
        for provider, ids in record.identities:
            for native in ids:
                index[(provider, native)] = rep_id
    return index


def identity_conflicts(reps: Mapping[str, RepRecord], record: RepRecord) -> list[str]:
    """The ids of `record` that another rep already holds (an id maps to one rep only)."""
    others = identity_index({k: v for k, v in reps.items() if k != record.rep_id})
    mine = identity_index({record.rep_id: record})
    return [f"{provider} {native!r} is {others[(provider, native)]}'s" for provider, native in mine
            if (provider, native) in others]


def _ordered(assignments: tuple[Assignment, ...]) -> tuple[Assignment, ...]:
    undated = [a for a in assignments if a.since is None][-1:]
    dated = sorted((a for a in assignments if a.since is not None), key=lambda a: a.since)
    return tuple(undated + dated)


@dataclass(frozen=True, slots=True)
class ProductRecord:
    product: str
    category: str
    name: str | None = None

    def to_doc(self) -> dict[str, Any]:
        return {"product": self.product, "category": self.category, "name": self.name}

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> ProductRecord:
        return cls(doc["product"], doc["category"], doc.get("name"))


@dataclass(frozen=True, slots=True)
class CustomerRecord:
    customer_id: str
    sector: str
    region: str | None = None
    name: str | None = None

    def to_doc(self) -> dict[str, Any]:
        return {"customer_id": self.customer_id, "sector": self.sector, "region": self.region,
                "name": self.name}

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> CustomerRecord:
        return cls(doc["customer_id"], doc["sector"], doc.get("region"), doc.get("name"))


RECORD_CLASSES: dict[str, type] = {REPS: RepRecord, PRODUCTS: ProductRecord, CUSTOMERS: CustomerRecord}


class Directory:
    """The three kinds of record, looked up by the aggregator; a plain in-memory map."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, Any]] = {kind: {} for kind in RECORD_CLASSES}

    def put(self, kind: str, key: str, doc: Mapping[str, Any] | None) -> None:
        """Store a record (a dict as on the topic), or forget it when `doc` is None."""
        if doc is None:
            self.records[kind].pop(key, None)
        else:
            self.records[kind][key] = RECORD_CLASSES[kind].from_doc(doc)

    def docs(self) -> list[tuple[str, str, dict[str, Any]]]:
        """Every record as (kind, key, dict as on the topic)."""
        return [(kind, key, record.to_doc()) for kind, records in self.records.items()
                for key, record in records.items()]

    def team_region(self, rep_id: str, moment: datetime) -> tuple[str, str]:
        record = self.records[REPS].get(rep_id)
        if record is None:
            return UNASSIGNED, UNASSIGNED
        assignment = record.at(moment)
        return assignment.team, assignment.region

    def category(self, product: str) -> str:
        record = self.records[PRODUCTS].get(product)
        return record.category if record else UNASSIGNED

    def sector(self, customer_id: str) -> str:
        record = self.records[CUSTOMERS].get(customer_id)
        return record.sector if record else UNASSIGNED
