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
from salespulse.api.errors import ApiError
from salespulse.api.models import ERRORS, CustomerIn, CustomerOut, ProductIn, ProductOut, RepIn, RepOut
from salespulse.contracts.directory import DIRECTORY_TOPICS, InvalidRecord, check_record
from salespulse.domain.directory import CUSTOMERS, PRODUCTS, REPS, Assignment, RepRecord, identity_conflicts

router = APIRouter(prefix="/directory", tags=["directory"], responses=ERRORS)

Key = Annotated[str, Path(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f]+$")]  # as schemas/ ids
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


@router.get("/reps", response_model=list[RepOut])
async def read_reps(readmodel: ReadModelDep) -> list[dict]:
    return list((await readmodel.records(REPS)).values())


@router.get("/reps/{rep_id}", response_model=RepOut)
async def read_rep(rep_id: Key, readmodel: ReadModelDep) -> dict:
    return await _one(readmodel, REPS, rep_id)


@router.put("/reps/{rep_id}", response_model=RepOut, responses={409: ERRORS[400]})
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


@router.delete("/reps/{rep_id}", status_code=204, response_class=Response)
async def delete_rep(rep_id: Key, producer: ProducerDep, readmodel: ReadModelDep) -> Response:
    """Forget a rep: their next events count as `unassigned`; counted ones stay where they are."""
    return await _delete(producer, readmodel, REPS, rep_id)


@router.get("/products", response_model=list[ProductOut])
async def read_products(readmodel: ReadModelDep) -> list[dict]:
    return list((await readmodel.records(PRODUCTS)).values())


@router.get("/products/{product}", response_model=ProductOut)
async def read_product(product: Key, readmodel: ReadModelDep) -> dict:
    return await _one(readmodel, PRODUCTS, product)


@router.put("/products/{product}", response_model=ProductOut)
async def update_product(product: Key, body: ProductIn, producer: ProducerDep, readmodel: ReadModelDep) -> dict:
    """Set a product's category (orders placed from now on roll up under it)."""
    return await _publish(producer, readmodel, PRODUCTS, product, {"product": product, **body.model_dump()})


@router.delete("/products/{product}", status_code=204, response_class=Response)
async def delete_product(product: Key, producer: ProducerDep, readmodel: ReadModelDep) -> Response:
    return await _delete(producer, readmodel, PRODUCTS, product)


@router.get("/customers", response_model=list[CustomerOut])
async def read_customers(readmodel: ReadModelDep) -> list[dict]:
    return list((await readmodel.records(CUSTOMERS)).values())


@router.get("/customers/{customer_id}", response_model=CustomerOut)
async def read_customer(customer_id: Key, readmodel: ReadModelDep) -> dict:
    return await _one(readmodel, CUSTOMERS, customer_id)


@router.put("/customers/{customer_id}", response_model=CustomerOut)
async def update_customer(customer_id: Key, body: CustomerIn, producer: ProducerDep,
                          readmodel: ReadModelDep) -> dict:
    """Set a customer's sector (and region, name)."""
    return await _publish(producer, readmodel, CUSTOMERS, customer_id,
                          {"customer_id": customer_id, **body.model_dump()})


@router.delete("/customers/{customer_id}", status_code=204, response_class=Response)
async def delete_customer(customer_id: Key, producer: ProducerDep, readmodel: ReadModelDep) -> Response:
    return await _delete(producer, readmodel, CUSTOMERS, customer_id)
