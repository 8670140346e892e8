"""How the controls in force combine into what one run may do at this moment.

The most restrictive wins: any matching pause, stop or read-only applies; disabled tools add up;
review of every call beats review of writes; the lowest step cap wins. Where only one can win
(the model to switch to, the maintenance message), the most specific scope wins (release, then
tenant, then all), and the newest among equals. Expiry is checked here, against the clock of the
check, so an expired control stops applying on every process without anyone acting.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from tether.controls.kinds import ControlKind
from tether.store.controls import ControlRecord

_SPECIFICITY = {"all": 0, "tenant": 1, "release": 2, "tool": 2}


def label(control: ControlRecord) -> str:
    """How a run record names a control that applied to it: `ctl_… kind=value @scope`."""
    value = f"={control.value}" if control.value else ""
    return f"{control.id} {control.kind}{value} @{control.scope}"


def _covers(control: ControlRecord, tenant_id: str, release_version: str) -> bool:
    kind, _, name = control.scope.partition(":")
    if kind == "tenant":
        return name == tenant_id
    if kind == "release":
        return name == release_version
    return True  # all, and tool scopes (narrowed per call, below)


def _most_specific(controls: list[ControlRecord]) -> ControlRecord | None:
    ranked = sorted(controls, key=lambda c: (_SPECIFICITY[c.scope.partition(":")[0]], c.created_at))
    return ranked[-1] if ranked else None


@dataclass(frozen=True)
class Effective:
    """The controls that bear on one run now, folded; every field is None/empty when none do."""

    applied: tuple[ControlRecord, ...] = ()
    stop: ControlRecord | None = None
    pause: ControlRecord | None = None
    read_only: ControlRecord | None = None
    disabled: tuple[ControlRecord, ...] = ()
    review: tuple[ControlRecord, ...] = ()
    step_cap: ControlRecord | None = None
    model: ControlRecord | None = None
    maintenance: ControlRecord | None = None
    labels: tuple[str, ...] = field(default=())

    @property
    def refuses_new_runs(self) -> ControlRecord | None:
        return self.stop or self.pause

    def max_steps(self, release_limit: int) -> int:
        return min(release_limit, int(self.step_cap.value)) if self.step_cap else release_limit

    def tool_refusal(self, tool: str, *, is_write: bool) -> str | None:
        """Why this tool may not run now (what the model is told), or None.

        A stop refuses every tool too: a stop that arrives between the step boundary and the call
        must not let the call start; the run then ends `cancelled` at the next boundary."""
        if self.stop is not None:
            return (
                f"{tool} was not called: an operator stopped background work ({self.stop.reason}); "
                "the run is being stopped"
            )
        for control in self.disabled:
            if control.value == tool:
                return f"{tool} is unavailable: an operator disabled it ({control.reason}); it was not called"
        if is_write and self.read_only is not None:
            return (
                f"{tool} is unavailable: the service is in read-only mode ({self.read_only.reason}); "
                "no write tool runs, it was not called"
            )
        return None

    def review_reason(self, tool: str, *, is_write: bool) -> str | None:
        """Why a human must approve this call before it runs, or None."""
        for control in self.review:
            narrowed = control.scope.startswith("tool:")
            if narrowed and control.scope != f"tool:{tool}":
                continue
            if control.value == "all" or is_write or narrowed:
                return f"an operator requires human review ({control.reason})"
        return None


NOTHING = Effective()


@dataclass(frozen=True)
class ControlSet:
    """The live snapshot every process holds: the controls in force when it was loaded."""

    controls: tuple[ControlRecord, ...] = ()

    def for_run(self, tenant_id: str, release_version: str, now: datetime) -> Effective:
        matching = [c for c in self.controls if c.active_at(now) and _covers(c, tenant_id, release_version)]
        if not matching:
            return NOTHING
        by_kind: dict[str, list[ControlRecord]] = {}
        for control in matching:
            by_kind.setdefault(control.kind, []).append(control)

        def first(kind: ControlKind) -> ControlRecord | None:
            found = by_kind.get(kind)
            return found[0] if found else None

        caps = by_kind.get(ControlKind.CAP_STEPS, [])
        return Effective(
            applied=tuple(matching),
            stop=first(ControlKind.STOP_BACKGROUND),
            pause=first(ControlKind.PAUSE_RUNS),
            read_only=first(ControlKind.READ_ONLY),
            disabled=tuple(by_kind.get(ControlKind.DISABLE_TOOL, [])),
            review=tuple(sorted(by_kind.get(ControlKind.FORCE_REVIEW, []), key=lambda c: c.value != "all")),
            step_cap=min(caps, key=lambda c: int(c.value)) if caps else None,
            model=_most_specific(by_kind.get(ControlKind.SWITCH_MODEL, [])),
            maintenance=_most_specific(by_kind.get(ControlKind.MAINTENANCE, [])),
            labels=tuple(label(c) for c in matching),
        )


EMPTY = ControlSet()
