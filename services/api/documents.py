"""Named JSON documents kept durably in a compacted topic and copied to Redis for reads:
alert rules (kpi.rules) and wallboard profiles (wallboard.profiles)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from pydantic import BaseModel

from salespulse.api.errors import ApiError
from salespulse.api.kafka import copy_topic
from salespulse.api.models import ProfileOut, RuleOut
from salespulse.contracts.topics import KPI_RULES, WALLBOARD_PROFILES
from salespulse.domain.alerts import Rule, rule_from_doc
from salespulse.domain.kpis import CATALOG
from salespulse.readmodel import ReadModel, document_copies


@dataclass(frozen=True)
class Documents:
    collection: str  # the Redis hash sp:{collection}
    topic: str
    noun: str  # in error messages
    model: type[BaseModel]  # what GET serves of a document: one it could not is not copied to Redis
    name_field: str  # the document's name in `model`

    async def all(self, readmodel: ReadModel) -> dict[str, dict[str, Any]]:
        return await readmodel.documents(self.collection)

    async def get(self, readmodel: ReadModel, name: str) -> dict[str, Any]:
        doc = (await self.all(readmodel)).get(name)
        if doc is None:
            raise ApiError(404, f"unknown_{self.collection.rstrip('s')}", f"no {self.noun} {name!r}")
        return doc

    async def put(self, producer: AIOKafkaProducer, readmodel: ReadModel, name: str, doc: dict[str, Any]) -> None:
        """The topic first: a document acknowledged is durable, Redis only a copy of it (kept
        with the record's offset: a copy of an older version landing later does not undo it)."""
        sent = await producer.send_and_wait(self.topic, orjson.dumps(doc), key=name.encode())
        await readmodel.put_document(self.collection, name, doc, sent.offset)

    async def delete(self, producer: AIOKafkaProducer, readmodel: ReadModel, name: str) -> None:
        await self.get(readmodel, name)  # 404 when there is none
        sent = await producer.send_and_wait(self.topic, None, key=name.encode())  # tombstone
        await readmodel.delete_document(self.collection, name, sent.offset)

    async def replay(self, bootstrap_servers: str, readmodel: ReadModel) -> int:
        """Copy the topic into Redis (at start, and what survives a wiped Redis)."""
        return await copy_topic(bootstrap_servers, self.topic, readmodel, document_copies(self.collection), self.check)

    def check(self, name: str, doc: Any) -> None:
        """ValueError unless `doc` is a document GET could serve."""
        if not isinstance(doc, dict):
            raise ValueError(f"a {self.noun} is a JSON object")
        self.model.model_validate({**doc, self.name_field: name})


class RuleDocuments(Documents):
    def check(self, name: str, doc: Any) -> None:
        served_rule(name, doc)


def served_rule(rule_id: str, doc: Any) -> dict[str, Any]:
    return checked_rule(rule_id, doc)[0]


def checked_rule(rule_id: str, doc: Any) -> tuple[dict[str, Any], Rule]:
    """A kpi.rules document as GET /rules serves it, and its rule; ValueError (what is wrong) if
    it is not one.

    The one test of a rule's record for the API's copy and the alerting service alike, so that
    a rule that is evaluated is listed, and can be deleted: anything may write to kpi.rules.
    `direction` is always the KPI's (what the evaluator uses, whatever the record says);
    `updated_at` is null when whatever wrote the record gave none."""
    if not isinstance(doc, dict):
        raise ValueError("a rule is a JSON object")
    kpi = CATALOG.get(doc["kpi"]) if isinstance(doc.get("kpi"), str) else None
    if kpi is None:
        raise ValueError(f"the rule watches {doc.get('kpi')!r:.60}, which is not in the catalog")
    served = {**doc, "id": rule_id, "direction": kpi.direction}
    RuleOut.model_validate(served)
    return served, rule_from_doc(rule_id, doc, kpi.direction)  # levels in order, exits on the good side


RULES = RuleDocuments("rules", KPI_RULES, "rule", RuleOut, "id")
PROFILES = Documents("profiles", WALLBOARD_PROFILES, "wallboard profile", ProfileOut, "name")
