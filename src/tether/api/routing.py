"""Which release a new API run gets (the deployment's choice, or an operator's pin) and its shadow copy."""

from __future__ import annotations

import logging

from fastapi import HTTPException

from tether.api.auth import Caller
from tether.api.deps import ServiceState
from tether.rollout.assign import Pin
from tether.rollout.service import Choice
from tether.store.records import RunOrigin, RunRecord
from tether.store.repository import NotFoundError

log = logging.getLogger("tether.api")


async def choose_release(state: ServiceState, caller: Caller, pinned: str | None) -> Choice:
    """The deployment's choice for this caller; `pinned` (operator scope only) overrides it."""
    pin = None
    if pinned is not None:
        if not caller.has("operator"):
            raise HTTPException(403, "pinning a run to a release needs the operator scope")
        try:
            release = await state.store.get_release(pinned)
        except NotFoundError:
            raise HTTPException(404, f"no release {pinned!r}") from None
        if release.agent_name != state.release.agent_name:
            raise HTTPException(400, f"{pinned} is a release of {release.agent_name}, not of this agent")
        pin = Pin(release.id, release.version, by=f"{caller.user_id} ({caller.key_id})")
    if state.rollout is None:
        return Choice(state.release, None)
    return await state.rollout.choose(state.release, tenant=caller.tenant_id, user=caller.user_id, pin=pin)


async def submit_shadow_copy(state: ServiceState, run: RunRecord) -> None:
    """Queue a shadow copy of a sampled live run: same input, origin `shadow`, never shown to the user.

    A failure here is logged and the user's run goes on: shadow traffic must never cost a user
    their answer.
    """
    if state.rollout is None:
        return
    try:
        release = await state.store.get_release(run.release_id)
        shadow = await state.rollout.shadow_for(release, run.id, run.stage)
        if shadow is None:
            return
        await state.runtime.submit(
            shadow,
            user_id=run.user_id,
            tenant_id=run.tenant_id,
            input=run.input,
            origin=RunOrigin.SHADOW,
            metadata={"shadow_of": run.id},
            assignment={"stage": "shadow", "release": shadow.version, "reason": f"copy of {run.id}"},
        )
    except Exception:
        log.exception("could not queue the shadow copy of run %s", run.id)
