"""Saved wallboard profiles (which boards, scope, period, language, theme), in wallboard.profiles."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated

from fastapi import APIRouter, Path, Response

from salespulse.api.dependencies import ProducerDep, ReadModelDep
from salespulse.api.documents import PROFILES
from salespulse.api.errors import ApiError
from salespulse.api.models import ERRORS, ProfileIn, ProfileOut

router = APIRouter(prefix="/profiles", tags=["wallboard"], responses=ERRORS)

Name = Annotated[str, Path(max_length=100, pattern=r"^[A-Za-z0-9._-]+$",
                           description="The profile's name: letters, digits, `.`, `_`, `-`.")]


@router.get("", response_model=list[ProfileOut])
async def read_profiles(readmodel: ReadModelDep) -> list[dict]:
    return [{"name": name, **doc} for name, doc in (await PROFILES.all(readmodel)).items()]


@router.get("/{name}", response_model=ProfileOut)
async def read_profile(name: Name, readmodel: ReadModelDep) -> dict:
    return {"name": name, **await PROFILES.get(readmodel, name)}


@router.put("/{name}", response_model=ProfileOut)
async def put_profile(name: Name, body: ProfileIn, producer: ProducerDep, readmodel: ReadModelDep) -> dict:
    if (body.by == "all") != (body.key == "all"):
        raise ApiError(422, "invalid_scope", "`by` all goes with `key` all; a team, region or rep needs its key")
    doc = {**body.model_dump(), "updated_at": datetime.now(timezone.utc).isoformat()}
    await PROFILES.put(producer, readmodel, name, doc)
    return {"name": name, **doc}


@router.delete("/{name}", status_code=204, response_class=Response)
async def delete_profile(name: Name, producer: ProducerDep, readmodel: ReadModelDep) -> Response:
    await PROFILES.delete(producer, readmodel, name)
    return Response(status_code=204)
