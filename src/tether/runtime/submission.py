"""What a run is given when it is submitted: its feature flags and its experiment arm.

The runtime cannot know about flags or experiments (they live in `tether.rollout`, which depends on
the runtime), so `Runtime.submit` asks a `RunDecider` that the process wiring installs
(`tether.rollout.wiring.install`). The decision is taken once, stored on the run, and never
re-evaluated: a run keeps the flags it started with even if they change while it executes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from tether.store.records import RunOrigin

FlagValue = bool | str


@dataclass(frozen=True)
class RunSubject:
    """Who a run is for and where it came from: everything targeting may look at."""

    tenant_id: str
    user_id: str
    origin: RunOrigin
    metadata: Mapping[str, Any] = field(default_factory=dict)
    claimed: tuple[str, str] | None = None
    """(experiment, arm) that release assignment already put this run in (an arm naming a release)."""

    def attribute(self, key: str) -> str | None:
        """A targeting attribute as text: `origin`, `tenant`, `user`, or a run metadata key."""
        if key == "origin":
            return str(self.origin)
        if key == "tenant":
            return self.tenant_id
        if key == "user":
            return self.user_id
        value = self.metadata.get(key)
        if value is None:
            return None
        return str(value).lower() if isinstance(value, bool) else str(value)


@dataclass(frozen=True)
class RunDecision:
    flags: Mapping[str, FlagValue] = field(default_factory=dict)
    experiment: tuple[str, str] | None = None
    """(experiment, arm) the run is enrolled in."""


NO_DECISION = RunDecision()


class RunDecider(Protocol):
    def __call__(self, subject: RunSubject) -> RunDecision: ...
