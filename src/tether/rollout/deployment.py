"""An agent's deployment as an immutable value: which releases get traffic, at which stage and weight.

Every process holds the current deployments as one `Deployments` snapshot (live topic `deployment`),
so choosing a release for a run is a dictionary lookup and a hash, never a database read. The
stored form is the plain JSON of `Deployment.to_state()`; changes build a new value (see
`rollout/changes.py`) and store it as the next revision.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any


class Stage(StrEnum):
    INTERNAL = "internal"
    SHADOW = "shadow"
    CANARY = "canary"
    LIVE = "live"
    RETIRED = "retired"


TRAFFIC_STAGES = (Stage.CANARY, Stage.LIVE)
"""Stages whose release needs a passing gate verdict (or an audited override)."""


@dataclass(frozen=True)
class Entry:
    """One release in the deployment. `weight` is its percent of user traffic (canary and live)."""

    release_id: str
    version: str
    stage: Stage
    weight: float = 0.0


@dataclass(frozen=True)
class Plan:
    """A canary's steps (percent of traffic) and what each step needs before the next."""

    steps: tuple[float, ...] = (5.0, 25.0, 50.0, 100.0)
    min_runs: int = 50
    """Canary runs (finished) a step needs before it can pass."""
    min_seconds: float = 300.0
    """Time a step lasts at least."""


@dataclass(frozen=True)
class Canary:
    """The canary in progress: its release, the plan, where in the plan it is, and since when."""

    release_id: str
    plan: Plan
    step: int
    step_started_at: datetime
    started_at: datetime
    paused: bool = False

    @property
    def weight(self) -> float:
        return 0.0 if self.paused else self.plan.steps[self.step]


@dataclass(frozen=True)
class Deployment:
    agent_name: str
    revision: int
    entries: tuple[Entry, ...] = ()
    canary: Canary | None = None
    shadow_share: float = 0.0
    """Share (0..1) of live runs copied to the shadow release."""
    internal_users: frozenset[str] = field(default_factory=frozenset)
    internal_tenants: frozenset[str] = field(default_factory=frozenset)
    salt: str = ""
    """Mixed into every bucket hash: a new salt reshuffles who is in the canary."""
    previous_live: str | None = None
    """The release id that was live before the current one: where `rollback` goes."""

    def with_stage(self, stage: Stage) -> Entry | None:
        return next((entry for entry in self.entries if entry.stage == stage), None)

    @property
    def live(self) -> Entry | None:
        return self.with_stage(Stage.LIVE)

    @property
    def canary_entry(self) -> Entry | None:
        if self.canary is None:
            return None
        return next((entry for entry in self.entries if entry.release_id == self.canary.release_id), None)

    def entry(self, release_id: str) -> Entry | None:
        return next((entry for entry in self.entries if entry.release_id == release_id), None)

    def evolve(self, **changes: Any) -> Deployment:
        return replace(self, **changes)

    # -- stored form ----------------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        canary = None
        if self.canary is not None:
            canary = {
                "release_id": self.canary.release_id,
                "steps": list(self.canary.plan.steps),
                "min_runs": self.canary.plan.min_runs,
                "min_seconds": self.canary.plan.min_seconds,
                "step": self.canary.step,
                "step_started_at": self.canary.step_started_at.isoformat(),
                "started_at": self.canary.started_at.isoformat(),
                "paused": self.canary.paused,
            }
        return {
            "entries": [
                {"release_id": e.release_id, "version": e.version, "stage": str(e.stage), "weight": e.weight}
                for e in self.entries
            ],
            "canary": canary,
            "shadow_share": self.shadow_share,
            "internal_users": sorted(self.internal_users),
            "internal_tenants": sorted(self.internal_tenants),
            "salt": self.salt,
            "previous_live": self.previous_live,
        }

    @classmethod
    def from_state(cls, agent_name: str, revision: int, state: dict[str, Any]) -> Deployment:
        raw = state.get("canary")
        canary = None
        if raw:
            canary = Canary(
                release_id=raw["release_id"],
                plan=Plan(
                    steps=tuple(float(s) for s in raw["steps"]),
                    min_runs=int(raw["min_runs"]),
                    min_seconds=float(raw["min_seconds"]),
                ),
                step=int(raw["step"]),
                step_started_at=datetime.fromisoformat(raw["step_started_at"]),
                started_at=datetime.fromisoformat(raw["started_at"]),
                paused=bool(raw.get("paused", False)),
            )
        return cls(
            agent_name=agent_name,
            revision=revision,
            entries=tuple(
                Entry(e["release_id"], e["version"], Stage(e["stage"]), float(e.get("weight", 0.0)))
                for e in state.get("entries", [])
            ),
            canary=canary,
            shadow_share=float(state.get("shadow_share", 0.0)),
            internal_users=frozenset(state.get("internal_users", [])),
            internal_tenants=frozenset(state.get("internal_tenants", [])),
            salt=str(state.get("salt", "")),
            previous_live=state.get("previous_live"),
        )


@dataclass(frozen=True)
class Deployments:
    """Every agent's current deployment: the immutable snapshot of live topic `deployment`."""

    by_agent: tuple[Deployment, ...] = ()

    def get(self, agent_name: str) -> Deployment | None:
        return next((d for d in self.by_agent if d.agent_name == agent_name), None)


EMPTY = Deployments()
