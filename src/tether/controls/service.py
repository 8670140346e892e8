"""Setting and clearing controls: the one path the CLI, the API and the dashboard share.

The change and its live revision commit together (store/controls.py); then this process reloads
at once and, with Redis, announces it so every other process reloads at once too. Without Redis
the others notice the new revision at their next poll (`TETHER_LIVE_POLL_S`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from tether.controls.kinds import ControlError, ControlKind, normalise, parse_scope
from tether.store.controls import TOPIC, ControlRecord
from tether.store.repository import Store


class Announcer(Protocol):
    """What is told after a change commits (`tether.live.LiveConfig` is one)."""

    async def changed(self, topic: str) -> None: ...


@dataclass(frozen=True)
class ControlChange:
    control: ControlRecord
    cancelled_runs: tuple[str, ...] = ()
    """Queued or parked runs a stop_background control cancelled as it was set."""


def configured_models(snapshot: dict[str, object]) -> list[str]:
    """The primary model and fallbacks a release snapshot declares."""
    config = snapshot.get("config")
    model = config.get("model") if isinstance(config, dict) else None
    if not isinstance(model, dict):
        return []
    return [str(model.get("primary", "")), *(str(m) for m in model.get("fallbacks", []) or [])]


async def set_control(
    store: Store,
    live: Announcer | None,
    *,
    kind: str,
    scope: str = "all",
    value: str = "",
    reason: str,
    by: str,
    expires_in: timedelta | None = None,
) -> ControlChange:
    """Validate, store (with who, why, when, until when) and announce a control."""
    try:
        chosen = ControlKind(kind)
    except ValueError:
        raise ControlError(f"unknown control {kind!r}; choose from {', '.join(ControlKind)}") from None
    where = parse_scope(scope)
    stored_value = normalise(chosen, where, value)
    if not reason.strip():
        raise ControlError("say why (a reason is recorded with every control change)")
    if not by.strip():
        raise ControlError("say who is changing the control")
    if expires_in is not None and expires_in <= timedelta(0):
        raise ControlError("an expiry must be in the future")
    if where.kind == "release":
        release = await store.get_release(where.name)  # NotFoundError names it
        if chosen == ControlKind.SWITCH_MODEL:
            models = configured_models(release.snapshot)
            if stored_value not in models:
                raise ControlError(
                    f"{stored_value} is not configured for release {release.version}; "
                    f"choose one of: {', '.join(models)}"
                )
    control, cancelled = await store.controls.add(
        kind=chosen,
        scope=str(where),
        value=stored_value,
        reason=reason.strip(),
        created_by=by.strip(),
        expires_in=expires_in,
        cancel_idle_runs=chosen == ControlKind.STOP_BACKGROUND,
    )
    if live is not None:
        await live.changed(TOPIC)
    return ControlChange(control, tuple(cancelled))


async def clear_control(
    store: Store, live: Announcer | None, control_id: str, *, by: str, reason: str
) -> ControlRecord:
    """End a control now; it stops applying everywhere within the live-configuration bound."""
    if not by.strip():
        raise ControlError("say who is clearing the control")
    control = await store.controls.clear(control_id, cleared_by=by.strip(), reason=reason.strip())
    if live is not None:
        await live.changed(TOPIC)
    return control
