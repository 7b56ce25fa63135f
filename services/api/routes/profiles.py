"""Saved wallboard profiles (which boards, scope, period, language, theme), in wallboard.profiles."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated

from fastapi import APIRouter, Path, Response

from salespulse.api.dependencies import ProducerDep, ReadModelDep
from salespulse.api.documents import PROFILES
from salespulse.api.errors import ApiError
from salespulse.api.models import ProfileIn, ProfileOut, errors

router = APIRouter(prefix="/profiles", tags=["wallboard"])
UNKNOWN = errors(404, 422, 503, e404="No profile of that name (`unknown_profile`).")

Name = Annotated[str, Path(max_length=100, pattern=r"^[A-Za-z0-9._-]+$",
                           description="The profile's name: letters, digits, `.`, `_`, `-`.")]


@router.get("", response_model=list[ProfileOut], responses=errors(503), summary="List the wallboard profiles")
async def read_profiles(readmodel: ReadModelDep) -> list[dict]:
    """Every saved wallboard profile, by name."""
    return [{"name": name, **doc} for name, doc in (await PROFILES.all(readmodel)).items()]


@router.get("/{name}", response_model=ProfileOut, responses=UNKNOWN, summary="Read a wallboard profile")
async def read_profile(name: Name, readmodel: ReadModelDep) -> dict:
    """One saved profile (the wallboard reads it for `/?profile={name}`)."""
    return {"name": name, **await PROFILES.get(readmodel, name)}


@router.put("/{name}", response_model=ProfileOut, responses=errors(422, 503), summary="Save a wallboard profile")
async def put_profile(name: Name, body: ProfileIn, producer: ProducerDep, readmodel: ReadModelDep) -> dict:
    """Save a screen under a name: its boards and their rotation, the team, region or rep it
    shows, the period, language and theme. Open it as `/?profile={name}`. Kept in the
    compacted `wallboard.profiles` topic: it survives restarts."""
    if (body.by == "all") != (body.key == "all"):
        raise ApiError(422, "invalid_scope", "`by` all goes with `key` all; a team, region or rep needs its key")
    doc = {**body.model_dump(), "updated_at": datetime.now(timezone.utc).isoformat()}
    await PROFILES.put(producer, readmodel, name, doc)
    return {"name": name, **doc}


@router.delete("/{name}", status_code=204, response_class=Response, responses=UNKNOWN,
               summary="Delete a wallboard profile")
async def delete_profile(name: Name, producer: ProducerDep, readmodel: ReadModelDep) -> Response:
    """Delete a saved profile; a screen that opens it afterwards says so and shows what its URL
    asks for."""
    await PROFILES.delete(producer, readmodel, name)
    return Response(status_code=204)
