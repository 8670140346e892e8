"""`tether control set|list|clear`: operator controls (kill switches), changed without a deploy."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from tether.cli.common import (
    ByOption,
    JsonOption,
    ProjectOption,
    actor,
    dump_json,
    open_session,
    out,
    print_table,
    run_command,
)

if TYPE_CHECKING:
    from tether.store.controls import ControlRecord

group = typer.Typer(help="Operator controls: kill switches that act on every process within a second.")

# Named here for --help, which must not import the controls room; a test keeps it equal to ControlKind.
KIND_NAMES = (
    "disable_tool",
    "pause_runs",
    "force_review",
    "cap_steps",
    "switch_model",
    "stop_background",
    "read_only",
    "maintenance",
)


@group.command("set")
def control_set(
    kind: Annotated[str, typer.Argument(help=f"One of: {', '.join(KIND_NAMES)}.")],
    value: Annotated[
        str,
        typer.Argument(
            help="disable_tool: the tool; force_review: writes|all; cap_steps: N; switch_model: a "
            "configured model; maintenance: the message; pause_runs: Retry-After seconds (optional)."
        ),
    ] = "",
    reason: Annotated[str, typer.Option("--reason", "-r", help="Why (required; recorded).")] = "",
    scope: Annotated[str, typer.Option(help="all, tenant:<id>, release:<version> or tool:<name>.")] = "all",
    expires: Annotated[
        str | None, typer.Option(help="Stop applying after this long on its own: 45s, 30m, 2h, 1d.")
    ] = None,
    by: ByOption = "",
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Set a control. Every API process and worker honours it within a second."""

    async def body() -> None:
        from tether.controls.kinds import parse_duration
        from tether.controls.service import set_control

        expires_in = parse_duration(expires) if expires else None
        async with open_session(project.resolve()) as session:
            change = await set_control(
                session.store,
                await session.live(),
                kind=kind,
                scope=scope,
                value=value,
                reason=reason,
                by=actor(by),
                expires_in=expires_in,
            )
        if as_json:
            dump_json(
                {
                    **change.control.model_dump(mode="json"),
                    "cancelled_runs": list(change.cancelled_runs),
                }
            )
            return
        out.print(f"set {escape(_describe(change.control))}", highlight=False)
        if change.cancelled_runs:
            out.print(f"cancelled {len(change.cancelled_runs)} queued or waiting run(s)")
        out.print(f"undo: tether control clear {change.control.id} --reason '...'", highlight=False)

    run_command(body)


@group.command("list")
def control_list(
    history: Annotated[
        bool, typer.Option("--history", help="Every change (set, cleared, expired), newest first.")
    ] = False,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="With --history: how many.")] = 50,
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """The controls in force now (or their history)."""

    async def body() -> None:
        async with open_session(project.resolve()) as session:
            controls = await (
                session.store.controls.history(limit=limit) if history else session.store.controls.active()
            )
        if as_json:
            dump_json([c.model_dump(mode="json") for c in controls])
            return
        if not controls:
            out.print("no controls in force" if not history else "no control was ever set")
            return
        table = Table()
        for column in ("id", "kind", "value", "scope", "by", "set", "until", "reason", "state"):
            table.add_column(column)
        for c in controls:
            table.add_row(
                c.id,
                c.kind,
                escape(c.value or "-"),
                escape(c.scope),
                escape(c.created_by),
                c.created_at.isoformat(timespec="seconds"),
                c.expires_at.isoformat(timespec="seconds") if c.expires_at else "-",
                escape(c.reason),
                _state(c),
            )
        print_table(table)

    run_command(body)


@group.command("clear")
def control_clear(
    control_id: Annotated[str, typer.Argument(help="The control to end (see `tether control list`).")],
    reason: Annotated[str, typer.Option("--reason", "-r", help="Why it can end (recorded).")] = "",
    by: ByOption = "",
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """End a control now; every process stops applying it within a second."""

    async def body() -> None:
        from tether.controls.service import clear_control

        async with open_session(project.resolve()) as session:
            control = await clear_control(
                session.store, await session.live(), control_id, by=actor(by), reason=reason
            )
        if as_json:
            dump_json(control.model_dump(mode="json"))
        else:
            out.print(f"cleared {escape(_describe(control))}", highlight=False)

    run_command(body)


def _describe(control: ControlRecord) -> str:
    value = f" {control.value}" if control.value else ""
    until = f" until {control.expires_at.isoformat(timespec='seconds')}" if control.expires_at else ""
    return f"{control.id}: {control.kind}{value} @{control.scope}{until} ({control.reason})"


def _state(control: ControlRecord) -> str:
    from tether.store.repository import utc_now

    if control.cleared_at is not None:
        return f"cleared by {escape(control.cleared_by or '?')}"
    return "in force" if control.active_at(utc_now()) else "expired"
