"""`tether flags list|show|set|target|delete`: feature flags, changed at run time and audit-logged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from tether.cli.common import (
    ByOption,
    JsonOption,
    ProjectOption,
    ReasonOption,
    actor,
    dump_json,
    fail,
    open_session,
    out,
    print_table,
    run_command,
)

if TYPE_CHECKING:
    from tether.cli.common import Session
    from tether.store.flag_records import FlagRecord, FlagSpec

group = typer.Typer(help="Feature flags: targeting, switching, history.", no_args_is_help=True)


def show_value(value: object) -> str:
    return json.dumps(value)


async def save(
    session: Session, name: str, spec: FlagSpec, *, by: str, reason: str, action: str
) -> FlagRecord:
    from tether.rollout.flag_edits import save_flag

    return await save_flag(
        session.store, session.runtime.live, name, spec, actor=actor(by), reason=reason, action=action
    )


def print_flag(flag: FlagRecord) -> None:
    spec = flag.spec
    state = "[green]on[/green]" if spec.enabled else "[dim]off[/dim]"
    out.print(
        f"[bold]{escape(flag.name)}[/bold] ({spec.kind}) {state} · version {flag.version}", highlight=False
    )
    if spec.description:
        out.print(escape(spec.description), highlight=False)
    out.print(f"variations: {', '.join(show_value(v) for v in spec.variations)}", highlight=False)
    out.print(f"off serves {show_value(spec.off)}; default {show_value(spec.default)}", highlight=False)
    for number, rule in enumerate(spec.rules, start=1):
        out.print(f"  rule {number}: {escape(rule.describe())}", highlight=False)


@group.command("list")
def flags_list(project: ProjectOption = Path("."), as_json: JsonOption = False) -> None:
    """Every flag: on or off, what it serves by default, how many targeting rules."""

    async def body() -> None:
        async with open_session(project.resolve()) as session:
            flags = await session.store.flags.all()
        if as_json:
            dump_json([f.model_dump(mode="json") for f in flags])
            return
        table = Table("flag", "kind", "state", "default", "off", "rules", "version", "changed by", "changed")
        for f in flags:
            table.add_row(
                escape(f.name),
                f.spec.kind,
                "on" if f.spec.enabled else "off",
                escape(show_value(f.spec.default)),
                escape(show_value(f.spec.off)),
                str(len(f.spec.rules)),
                str(f.version),
                escape(f.updated_by),
                f.updated_at.isoformat(timespec="seconds"),
            )
        print_table(table)

    run_command(body)


@group.command("show")
def flags_show(
    name: Annotated[str, typer.Argument()],
    user: Annotated[str | None, typer.Option(help="Also say what this user gets, and why.")] = None,
    tenant: Annotated[str, typer.Option(help="The user's tenant (with --user).")] = "default",
    attr: Annotated[
        list[str] | None, typer.Option("--attr", metavar="KEY=VALUE", help="Run metadata (with --user).")
    ] = None,
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """A flag's definition, targeting rules and change history."""

    async def body() -> None:
        from tether.rollout.flag_edits import parse_attributes
        from tether.rollout.flags import explain
        from tether.runtime.submission import RunSubject
        from tether.store.records import RunOrigin

        async with open_session(project.resolve()) as session:
            flag = await session.store.flags.get(name)
            history = await session.store.flags.history(subject=name)
        decided = None
        if user is not None:
            metadata = {k: v[0] for k, v in parse_attributes(attr or []).items()}
            subject = RunSubject(tenant_id=tenant, user_id=user, origin=RunOrigin.API, metadata=metadata)
            decided = explain(flag.spec, flag.name, subject)
        if as_json:
            data = flag.model_dump(mode="json")
            data["history"] = [h.model_dump(mode="json") for h in history]
            if decided is not None:
                data["evaluation"] = {"user": user, "tenant": tenant, "value": decided[0], "why": decided[1]}
            dump_json(data)
            return
        print_flag(flag)
        if decided is not None:
            out.print(
                f"\n{escape(user or '')}@{escape(tenant)} gets {show_value(decided[0])}: {escape(decided[1])}"
            )
        table = Table("revision", "when", "action", "by", "reason")
        for change in history:
            table.add_row(
                str(change.revision),
                change.changed_at.isoformat(timespec="seconds"),
                change.action,
                escape(change.actor),
                escape(change.reason),
            )
        out.print()
        print_table(table)

    run_command(body)


@group.command("set")
def flags_set(
    name: Annotated[str, typer.Argument()],
    reason: ReasonOption,
    on: Annotated[bool | None, typer.Option("--on/--off", help="Switch the flag on or off.")] = None,
    kind: Annotated[str, typer.Option(help="bool or string (new flags only).")] = "bool",
    variations: Annotated[
        str | None, typer.Option(help="A string flag's values, comma-separated (new flags only).")
    ] = None,
    default: Annotated[
        str | None, typer.Option(help="What the flag serves when on and no rule matches.")
    ] = None,
    off_value: Annotated[str | None, typer.Option("--off-value", help="What it serves when off.")] = None,
    description: Annotated[str | None, typer.Option(help="What the flag is for.")] = None,
    by: ByOption = "",
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Create a flag (off until --on) or change its switch, default or description.

    Every node sees the change within a second; runs already submitted keep the flags they got.
    """
    if kind not in ("bool", "string"):
        raise fail(f"--kind must be bool or string, not {kind!r}")

    async def body() -> None:
        from tether.rollout.flag_edits import edit, new_spec
        from tether.store.flags import FlagNotFoundError

        async with open_session(project.resolve()) as session:
            try:
                current = await session.store.flags.get(name)
            except FlagNotFoundError:
                spec = new_spec(
                    "string" if kind == "string" else "bool",
                    variations=[v.strip() for v in (variations or "").split(",") if v.strip()],
                    default=default,
                    off=off_value,
                    enabled=bool(on),
                    description=description or "",
                )
                action = "create"
            else:
                if variations is not None or (kind != current.spec.kind and kind != "bool"):
                    raise ValueError(
                        "kind and variations are fixed once a flag exists (delete and re-create it)"
                    )
                spec = edit(current.spec, enabled=on, default=default, off=off_value, description=description)
                action = "switch" if on is not None and on != current.spec.enabled else "set"
            saved = await save(session, name, spec, by=by, reason=reason, action=action)
        if as_json:
            dump_json(saved.model_dump(mode="json"))
        else:
            print_flag(saved)

    run_command(body)


@group.command("target")
def flags_target(
    name: Annotated[str, typer.Argument()],
    reason: ReasonOption,
    value: Annotated[str | None, typer.Option(help="What the matching runs get.")] = None,
    tenant: Annotated[
        list[str] | None, typer.Option("--tenant", help="Match these tenants (repeatable).")
    ] = None,
    user: Annotated[list[str] | None, typer.Option("--user", help="Match these users (repeatable).")] = None,
    attr: Annotated[
        list[str] | None,
        typer.Option("--attr", metavar="KEY=V1,V2", help="Match run metadata (repeatable; also origin=...)."),
    ] = None,
    percent: Annotated[
        float, typer.Option(min=0, max=100, help="Sticky share of the matching users (by bucket).")
    ] = 100.0,
    remove: Annotated[
        int | None, typer.Option(help="Remove rule N instead (numbers from `flags show`).")
    ] = None,
    clear: Annotated[bool, typer.Option(help="Remove every rule instead.")] = False,
    by: ByOption = "",
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Add a targeting rule (rules are checked in order; the first match decides), or remove rules."""
    if sum((value is not None, remove is not None, clear)) != 1:
        raise fail("give exactly one of --value (add a rule), --remove N or --clear")

    async def body() -> None:
        from tether.rollout.flag_edits import add_rule, clear_rules, remove_rule

        async with open_session(project.resolve()) as session:
            flag = await session.store.flags.get(name)
            if clear:
                spec = clear_rules(flag.spec)
            elif remove is not None:
                spec = remove_rule(flag.spec, remove)
            else:
                spec = add_rule(
                    flag.spec,
                    value=value or "",
                    tenants=tenant or [],
                    users=user or [],
                    attributes=attr or [],
                    percentage=percent,
                )
            saved = await save(session, name, spec, by=by, reason=reason, action="target")
        if as_json:
            dump_json(saved.model_dump(mode="json"))
        else:
            print_flag(saved)

    run_command(body)


@group.command("delete")
def flags_delete(
    name: Annotated[str, typer.Argument()],
    reason: ReasonOption,
    by: ByOption = "",
    project: ProjectOption = Path("."),
) -> None:
    """Delete a flag: new runs no longer get it (tools and prompts see it as missing); history stays."""

    async def body() -> None:
        from tether.rollout.flag_edits import delete_flag

        async with open_session(project.resolve()) as session:
            await delete_flag(session.store, session.runtime.live, name, actor=actor(by), reason=reason)
        out.print(f"deleted flag {escape(name)}", highlight=False)

    run_command(body)
