"""Releases known to this deployment, and which one new runs use."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from tether.api.auth import Caller
from tether.api.deps import State, authenticated
from tether.api.schemas import Problem, ReleaseOut

router = APIRouter(prefix="/v1/releases", tags=["releases"])


@router.get("", response_model=list[ReleaseOut], responses={401: {"model": Problem}})
async def list_releases(state: State, caller: Annotated[Caller, Depends(authenticated)]) -> list[ReleaseOut]:
    releases = await state.store.list_releases(include_adhoc=True)
    return [
        ReleaseOut(
            version=r.version,
            kind=r.kind,
            content_hash=r.content_hash,
            model=str(r.snapshot.get("config", {}).get("model", {}).get("primary", "")),
            created_at=r.created_at,
            serving=r.id == state.release.id,
        )
        for r in releases
    ]
