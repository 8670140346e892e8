"""The changes an operator (or the canary controller) can make to a deployment, as pure functions.

Each takes the current `Deployment` and returns the next one, or raises `ValueError` saying why the
change makes no sense now. Storing it, the gate check and the audit entry are `rollout/service.py`'s
job, so these rules are tested without a database.
"""

from __future__ import annotations

from datetime import datetime

from tether.rollout.deployment import Canary, Deployment, Entry, Plan, Stage


def _without(deployment: Deployment, release_id: str) -> tuple[Entry, ...]:
    return tuple(e for e in deployment.entries if e.release_id != release_id)


def _retire(entries: tuple[Entry, ...], release_id: str | None) -> tuple[Entry, ...]:
    return tuple(
        Entry(e.release_id, e.version, Stage.RETIRED, 0.0) if e.release_id == release_id else e
        for e in entries
    )


def _drop_retired(entries: tuple[Entry, ...], keep: str | None) -> tuple[Entry, ...]:
    """Retired releases stay listed only while they are where a rollback would go."""
    return tuple(e for e in entries if e.stage != Stage.RETIRED or e.release_id == keep)


def switch(deployment: Deployment, release_id: str, version: str) -> Deployment:
    """Blue-green: all traffic to `release_id` at once; the old live release is kept for rollback."""
    old = deployment.live
    if old is not None and old.release_id == release_id and deployment.canary is None:
        raise ValueError(f"{version} is already live")
    entries = _retire(deployment.entries, deployment.canary.release_id if deployment.canary else None)
    entries = _retire(entries, old.release_id if old else None)
    previous = (
        old.release_id if old is not None and old.release_id != release_id else deployment.previous_live
    )
    entries = tuple(e for e in entries if e.release_id != release_id)
    entries = (*_drop_retired(entries, previous), Entry(release_id, version, Stage.LIVE, 100.0))
    return deployment.evolve(entries=entries, canary=None, previous_live=previous)


def rollback(deployment: Deployment) -> Deployment:
    """Stop a canary in progress (weight 0), or else return to the previous live release."""
    if deployment.canary is not None:
        return abort(deployment)
    previous = deployment.entry(deployment.previous_live) if deployment.previous_live else None
    if previous is None:
        raise ValueError("there is no previous live release to roll back to")
    return switch(deployment, previous.release_id, previous.version)


def start_canary(
    deployment: Deployment, release_id: str, version: str, plan: Plan, *, now: datetime
) -> Deployment:
    live = deployment.live
    if live is None:
        raise ValueError("a canary needs a live release to compare with; use `tether rollout switch` first")
    if live.release_id == release_id:
        raise ValueError(f"{version} is already live")
    if deployment.canary is not None:
        raise ValueError("a canary is already in progress; promote or abort it first")
    if not plan.steps or any(not 0 < s <= 100 for s in plan.steps) or list(plan.steps) != sorted(plan.steps):
        raise ValueError("canary steps must be increasing percentages between 0 and 100")
    entries = (*_without(deployment, release_id), Entry(release_id, version, Stage.CANARY, plan.steps[0]))
    canary = Canary(release_id, plan, step=0, step_started_at=now, started_at=now)
    return _weighted(deployment.evolve(entries=entries, canary=canary))


def advance(deployment: Deployment, *, now: datetime) -> Deployment:
    """The canary's next step, or promotion after its last one."""
    canary = _canary(deployment)
    if canary.step + 1 >= len(canary.plan.steps):
        return promote(deployment)
    moved = Canary(canary.release_id, canary.plan, canary.step + 1, now, canary.started_at, canary.paused)
    return _weighted(deployment.evolve(canary=moved))


def promote(deployment: Deployment) -> Deployment:
    entry = _canary_entry(deployment)
    return switch(deployment, entry.release_id, entry.version)


def abort(deployment: Deployment) -> Deployment:
    """The canary gets no more traffic (weight 0 everywhere at the next snapshot)."""
    entry = _canary_entry(deployment)
    entries = _drop_retired(_retire(deployment.entries, entry.release_id), deployment.previous_live)
    return _weighted(deployment.evolve(entries=entries, canary=None))


def pause(deployment: Deployment, *, paused: bool) -> Deployment:
    """Hold the canary at 0% (paused) or give it its step's weight again."""
    canary = _canary(deployment)
    if canary.paused == paused:
        raise ValueError("the canary is already " + ("paused" if paused else "running"))
    held = Canary(
        canary.release_id, canary.plan, canary.step, canary.step_started_at, canary.started_at, paused
    )
    return _weighted(deployment.evolve(canary=held))


def set_shadow(deployment: Deployment, release_id: str | None, version: str, share: float) -> Deployment:
    """Copy `share` of live runs to `release_id` (None: stop shadowing)."""
    if not 0 <= share <= 1:
        raise ValueError("the shadow share must be between 0 and 1")
    entries = tuple(e for e in deployment.entries if e.stage != Stage.SHADOW)
    if release_id is not None:
        if deployment.entry(release_id) is not None and deployment.entry(release_id) in entries:
            raise ValueError(f"{version} already has another stage in this deployment")
        entries = (*entries, Entry(release_id, version, Stage.SHADOW, 0.0))
    return deployment.evolve(entries=entries, shadow_share=share if release_id else 0.0)


def set_internal(
    deployment: Deployment,
    release_id: str | None,
    version: str,
    users: frozenset[str],
    tenants: frozenset[str],
) -> Deployment:
    """Internal users and tenants get `release_id` first (None: they follow everyone else)."""
    entries = tuple(e for e in deployment.entries if e.stage != Stage.INTERNAL)
    if release_id is not None:
        entries = (*entries, Entry(release_id, version, Stage.INTERNAL, 0.0))
    return deployment.evolve(entries=entries, internal_users=users, internal_tenants=tenants)


def _canary(deployment: Deployment) -> Canary:
    if deployment.canary is None:
        raise ValueError("no canary is in progress")
    return deployment.canary


def _canary_entry(deployment: Deployment) -> Entry:
    _canary(deployment)
    entry = deployment.canary_entry
    if entry is None:
        raise ValueError("the canary's release is missing from the deployment")
    return entry


def _weighted(deployment: Deployment) -> Deployment:
    """Entry weights that say what traffic gets: canary its step's share, live the rest."""
    share = deployment.canary.weight if deployment.canary is not None else 0.0
    canary_id = deployment.canary.release_id if deployment.canary is not None else None
    entries = tuple(
        Entry(e.release_id, e.version, e.stage, share)
        if e.release_id == canary_id
        else Entry(e.release_id, e.version, e.stage, 100.0 - share)
        if e.stage == Stage.LIVE
        else e
        for e in deployment.entries
    )
    return deployment.evolve(entries=entries)
