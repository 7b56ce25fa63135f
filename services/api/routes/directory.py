"""Reference data: reps (team, region, extension), products (category), customers (sector).

Each record is produced to its compacted directory.* topic (the durable copy, read by the
processor before every batch) and then written to Redis for reads, with its offset: the
processors copy the same records to Redis, and an earlier one landing after it is refused
(ReadModel.write_records), so a client reads what it just wrote.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Response

from salespulse.api.dependencies import ProducerDep, ReadModelDep
from salespulse.api import pathids  # noqa: F401 - registers {name:id}
from salespulse.api.errors import ApiError
from salespulse.api.models import CustomerIn, CustomerOut, ProductIn, ProductOut, RepIn, RepOut, errors
from salespulse.contracts.directory import DIRECTORY_TOPICS, InvalidRecord, check_record
from salespulse.domain.directory import CUSTOMERS, PRODUCTS, REPS, Assignment, RepRecord, identity_conflicts

router = APIRouter(prefix="/directory", tags=["directory"])
LIST, WRITE = errors(503), errors(422, 503)
ONE = errors(404, 422, 503, e404="Not in the directory (`unknown_rep`, `unknown_product`, `unknown_customer`).")

Key = Annotated[str, Path(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f]+$",  # as schemas/ ids
                          description="The id events carry (`rep_id`, `product`, `customer_id`); a `/` in it is "
                                      "sent percent-encoded, as `%2F`, like any reserved character.")]
NOUN = {REPS: "rep", PRODUCTS: "product", CUSTOMERS: "customer"}


async def _publish(producer, readmodel, kind: str, key: str, doc: dict[str, Any]) -> dict[str, Any]:
    try:
        check_record(kind, key, doc)
    except InvalidRecord as exc:
        raise ApiError(422, "invalid_record", str(exc)) from None
    sent = await producer.send_and_wait(DIRECTORY_TOPICS[kind], orjson.dumps(doc), key=key.encode())
    await readmodel.put_record(kind, key, doc, sent.offset)
    return doc


async def _delete(producer, readmodel, kind: str, key: str) -> Response:
    if await readmodel.record(kind, key) is None:
        raise ApiError(404, f"unknown_{NOUN[kind]}", f"no {NOUN[kind]} {key!r} in the directory")
    sent = await producer.send_and_wait(DIRECTORY_TOPICS[kind], None, key=key.encode())  # tombstone
    await readmodel.delete_record(kind, key, sent.offset)
    return Response(status_code=204)


async def _one(readmodel, kind: str, key: str) -> dict[str, Any]:
    doc = await readmodel.record(kind, key)
    if doc is None:
        raise ApiError(404, f"unknown_{NOUN[kind]}", f"no {NOUN[kind]} {key!r} in the directory")
    return doc


@router.get("/reps", response_model=list[RepOut], responses=LIST, summary="List the reps")
async def read_reps(readmodel: ReadModelDep) -> list[dict]:
    """Every rep: team and region over time, name, extension, ids in other systems."""
    return list((await readmodel.records(REPS)).values())


@router.get("/reps/{rep_id:id}", response_model=RepOut, responses=ONE, summary="Read a rep")
async def read_rep(rep_id: Key, readmodel: ReadModelDep) -> dict:
    """One rep: team and region over time, name, extension, ids in other systems."""
    return await _one(readmodel, REPS, rep_id)


@router.put("/reps/{rep_id:id}", response_model=RepOut, summary="Create or move a rep",
            responses=errors(409, 422, 503, e409="An identity is another rep's already (`identity_taken`)."))
async def update_rep(rep_id: Key, body: RepIn, producer: ProducerDep, readmodel: ReadModelDep) -> dict:
    """Create a rep, or move one to a team and region from `since` on (history stays put).

    `identities` tie the rep to their ids in telephony and CRM systems (POST /webhooks/{provider}).
    """
    known = await readmodel.record(REPS, rep_id)
    if known is None:
        record = RepRecord(rep_id, (Assignment(body.team, body.region, body.since),))
    else:
        record = RepRecord.from_doc(known)
        current = record.assignments[-1]
        if (current.team, current.region) != (body.team, body.region) or body.since is not None:
            record = record.assign(body.team, body.region, body.since or datetime.now(timezone.utc))
    identities = record.identities if body.identities is None else tuple(
        sorted((provider, tuple(dict.fromkeys(ids))) for provider, ids in body.identities.items() if ids))
    record = RepRecord(rep_id, record.assignments,
                       body.name if body.name is not None else record.name,
                       body.extension if body.extension is not None else record.extension,
                       identities)
    reps = {key: RepRecord.from_doc(doc) for key, doc in (await readmodel.records(REPS)).items()}
    taken = identity_conflicts(reps, record)
    if taken:
        raise ApiError(409, "identity_taken", f"already another rep's: {'; '.join(taken)}")
    return await _publish(producer, readmodel, REPS, rep_id, record.to_doc())


@router.delete("/reps/{rep_id:id}", status_code=204, response_class=Response, responses=ONE, summary="Forget a rep")
async def delete_rep(rep_id: Key, producer: ProducerDep, readmodel: ReadModelDep) -> Response:
    """Forget a rep: their next events count as `unassigned`; counted ones stay where they are."""
    return await _delete(producer, readmodel, REPS, rep_id)


@router.get("/products", response_model=list[ProductOut], responses=LIST, summary="List the products")
async def read_products(readmodel: ReadModelDep) -> list[dict]:
    """Every product with its category."""
    return list((await readmodel.records(PRODUCTS)).values())


@router.get("/products/{product:id}", response_model=ProductOut, responses=ONE, summary="Read a product")
async def read_product(product: Key, readmodel: ReadModelDep) -> dict:
    """One product with its category."""
    return await _one(readmodel, PRODUCTS, product)


@router.put("/products/{product:id}", response_model=ProductOut, responses=WRITE, summary="Set a product's category")
async def update_product(product: Key, body: ProductIn, producer: ProducerDep, readmodel: ReadModelDep) -> dict:
    """Set a product's category (orders placed from now on roll up under it)."""
    return await _publish(producer, readmodel, PRODUCTS, product, {"product": product, **body.model_dump()})


@router.delete("/products/{product:id}", status_code=204, response_class=Response, responses=ONE,
               summary="Forget a product")
async def delete_product(product: Key, producer: ProducerDep, readmodel: ReadModelDep) -> Response:
    """Forget a product: its next orders count under category `unassigned`; counted ones stay."""
    return await _delete(producer, readmodel, PRODUCTS, product)


@router.get("/customers", response_model=list[CustomerOut], responses=LIST, summary="List the customers")
async def read_customers(readmodel: ReadModelDep) -> list[dict]:
    """Every customer with its sector, region and name."""
    return list((await readmodel.records(CUSTOMERS)).values())


@router.get("/customers/{customer_id:id}", response_model=CustomerOut, responses=ONE, summary="Read a customer")
async def read_customer(customer_id: Key, readmodel: ReadModelDep) -> dict:
    """One customer with its sector, region and name."""
    return await _one(readmodel, CUSTOMERS, customer_id)


@router.put("/customers/{customer_id:id}", response_model=CustomerOut, responses=WRITE,
            summary="Set a customer's sector")
async def update_customer(customer_id: Key, body: CustomerIn, producer: ProducerDep,
                          readmodel: ReadModelDep) -> dict:
    """Set a customer's sector (and region, name)."""
    return await _publish(producer, readmodel, CUSTOMERS, customer_id,
                          {"customer_id": customer_id, **body.model_dump()})


@router.delete("/customers/{customer_id:id}", status_code=204, response_class=Response, responses=ONE,
               summary="Forget a customer")
async def delete_customer(customer_id: Key, producer: ProducerDep, readmodel: ReadModelDep) -> Response:
    """Forget a customer: its next events count under sector `unassigned`; counted ones stay."""
    return await _delete(producer, readmodel, CUSTOMERS, customer_id)
