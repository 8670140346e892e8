"""The operator controls as the run loop sees them: a live snapshot, folded per run at each check.

Every process registers the `controls` topic with its live configuration, so `current` is a
plain attribute read: the loop checks it at every step boundary and before every tool execution
(including a call a human approved before the switch) without touching the database. The last
check runs in the tool's own thread right before the function (`tether.runtime.tool_calls`), under
the snapshot's swap lock, so it is wholly before or after a reload: no call starts after its
process had the switch. Each check adds the controls that bore on the run to its totals, so the
next checkpoint records them on the run row (`controls_applied`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Protocol

from tether.agent.config import ProjectConfig
from tether.agent.tools import Tool
from tether.controls.effect import EMPTY, NOTHING, ControlSet, Effective
from tether.live import LiveConfig, LiveValue
from tether.models.routing import FallbackChain
from tether.runtime.agents import LoadedRelease
from tether.runtime.models import build_chain
from tether.store.controls import TOPIC, ControlRecord
from tether.store.records import RunRecord, RunTotals
from tether.store.repository import ConflictError, Store, utc_now

log = logging.getLogger("tether.controls")


class ControlSnapshot(Protocol):
    """Where the loop reads the controls in force: the live value (or a drill's private one)."""

    @property
    def current(self) -> ControlSet: ...

    @property
    def swapping(self) -> AbstractContextManager[object]:
        """Held while `current` is replaced, and by a check made outside the event loop's thread."""


async def _load(store: Store) -> ControlSet:
    return ControlSet(tuple(await store.controls.active()))


def _applied(value: LiveValue[ControlSet]) -> None:
    # Pid and the wall-clock time the snapshot was in force, so a drill can tell when each process
    # had a change (benchmarks/kill_switch.py compares every tool start with it).
    ids = ",".join(c.id for c in value.current.controls) or "none"
    log.info("controls snapshot loaded (pid %d at %.6f): %s", os.getpid(), value.applied_at or 0.0, ids)


def watch_controls(live: LiveConfig) -> LiveValue[ControlSet]:
    """Register the `controls` topic: this process's snapshot of the controls in force."""
    return live.register(TOPIC, _load, EMPTY, on_applied=_applied)


_DEFAULT_RETRY_AFTER_S = 60
"""What a refused client is told to wait when the pause names no Retry-After and has no expiry."""


class NewRunsRefused(ConflictError):
    """A pause_runs or stop_background control covers this new run: answer 503, never queue it."""

    def __init__(self, control: ControlRecord, retry_after_s: int, maintenance: str | None) -> None:
        why = "new runs are paused" if control.kind == "pause_runs" else "background work is stopped"
        message = f"{why} by an operator ({control.reason}); retry in {retry_after_s}s"
        super().__init__(f"{maintenance} ({message})" if maintenance else message)
        self.control = control
        self.retry_after_s = retry_after_s
        self.maintenance = maintenance


def refusal(effective: Effective, now: datetime) -> NewRunsRefused | None:
    """Why a new production run may not be queued now, with the Retry-After to tell its client."""
    control = effective.refuses_new_runs
    if control is None:
        return None
    wait = int(control.value) if control.kind == "pause_runs" and control.value else _DEFAULT_RETRY_AFTER_S
    if control.expires_at is not None:
        wait = min(wait, max(1, int((control.expires_at - now).total_seconds()) + 1))
    notice = effective.maintenance.value if effective.maintenance is not None else None
    return NewRunsRefused(control, wait, notice)


def maintenance_notice(snapshot: ControlSnapshot, tenant_id: str, release_version: str) -> str | None:
    """The maintenance message users of this tenant and release should see now, if any."""
    found = snapshot.current.for_run(tenant_id, release_version, utc_now()).maintenance
    return found.value if found is not None else None


class RunControls:
    """One run's view of the controls: `check()` folds the snapshot for it as of now."""

    def __init__(
        self,
        snapshot: ControlSnapshot | None,
        run: RunRecord,
        totals: RunTotals,
        *,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._snapshot = snapshot
        self._run = run
        self._totals = totals
        self._clock = clock

    def check(self) -> Effective:
        if self._snapshot is None:
            return NOTHING
        effective = self._snapshot.current.for_run(
            self._run.tenant_id, self._run.release_version, self._clock()
        )
        for name in effective.labels:
            if name not in self._totals.controls_applied:
                self._totals.controls_applied.append(name)
        return effective

    def tool_refusal(self, tool: Tool) -> str | None:
        """The last check before `tool` runs, made in the tool's own thread: why it may not start.

        Under the snapshot's swap lock, so a reload cannot land between reading the snapshot and
        deciding; the function is entered right after, so a call that passes here started before
        its process had any switch that would have refused it."""
        if self._snapshot is None:
            return None
        with self._snapshot.swapping:
            return self.check().tool_refusal(tool.name, is_write=tool.is_write)


class ModelSwitcher:
    """Fallback chains that start with the model a `switch_model` control names, built once each."""

    def __init__(self, *, backoff_s: float) -> None:
        self._backoff_s = backoff_s
        self._chains: dict[tuple[str, str], FallbackChain] = {}

    def chain(self, loaded: LoadedRelease, model: str) -> tuple[FallbackChain, list[str]] | None:
        """The chain (and its model references) starting at `model`; None if the release does not
        configure that model (the control then leaves this release's runs alone)."""
        config = loaded.agent.config
        configured = config.model.chain
        if model not in configured:
            return None
        order = [model, *(ref for ref in configured if ref != model)]
        key = (loaded.release.id, model)
        if key not in self._chains:
            switched = _reordered(config, order)
            self._chains[key] = build_chain(switched, loaded.agent.resolve, backoff_s=self._backoff_s)
        return self._chains[key], order


def _reordered(config: ProjectConfig, order: list[str]) -> ProjectConfig:
    section = config.model.model_copy(update={"primary": order[0], "fallbacks": order[1:]})
    return config.model_copy(update={"model": section})
