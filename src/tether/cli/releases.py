"""`tether release create|list|show`: immutable snapshots of an agent project."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from tether.cli.common import (
    JsonOption,
    ProjectOption,
    dump_json,
    open_session,
    out,
    print_table,
    run_command,
    warn_about_tools,
)

if TYPE_CHECKING:
    from tether.store.records import ReleaseRecord
    from tether.store.repository import Store

group = typer.Typer(help="Create and inspect releases.", no_args_is_help=True)


@group.command("create")
def release_create(
    project: ProjectOption = Path("."),
    version: Annotated[str | None, typer.Option(help="Version name (default: <name>-<date>).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Snapshot the project into an immutable release (unchanged inputs reuse the existing one)."""

    async def body() -> None:
        from tether.rollout.releases import create_release

        async with open_session(project.resolve()) as session:
            result = await create_release(session.store, session.project, version=version)
        release = result.release
        warn_about_tools(release)
        if as_json:
            dump_json(
                {"version": release.version, "content_hash": release.content_hash, "created": result.created}
            )
        elif result.created:
            out.print(f"created release [bold]{release.version}[/bold] ({release.content_hash[:12]})")
        else:
            note = f"; not creating {escape(version)}" if version and version != release.version else ""
            short = release.content_hash[:12]
            out.print(f"unchanged: already released as [bold]{release.version}[/bold] ({short}){note}")
        if not as_json:
            v = release.version
            out.print(
                f"next: tether release show {v} --diff   (what changed since the release before)\n"
                f"      tether eval run --release {v}, then tether gate --release {v}\n"
                f'      tether run --release {v} --user USER "..."',
                highlight=False,
                markup=False,
                soft_wrap=True,
            )

    run_command(body)


@group.command("list")
def release_list(
    project: ProjectOption = Path("."),
    adhoc: Annotated[bool, typer.Option("--adhoc", help="Include working-copy releases.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Releases, newest first."""

    async def body() -> None:
        from tether.rollout.releases import snapshot_of

        async with open_session(project.resolve()) as session:
            releases = await session.store.list_releases(include_adhoc=adhoc)
        if as_json:
            dump_json([r.model_dump(mode="json", exclude={"snapshot"}) for r in releases])
            return
        table = Table("version", "kind", "hash", "model", "created")
        for r in releases:
            model = snapshot_of(r).config.get("model", {}).get("primary", "?")
            table.add_row(
                r.version, r.kind, r.content_hash[:12], model, r.created_at.isoformat(timespec="seconds")
            )
        print_table(table)

    run_command(body)


async def _previous(store: Store, release: ReleaseRecord) -> ReleaseRecord:
    """The named release created just before this one."""
    older = [
        r
        for r in await store.list_releases()
        if r.created_at < release.created_at or (r.created_at == release.created_at and r.id < release.id)
    ]
    if not older:
        raise ValueError(
            f"{release.version} is the first release: there is nothing before it to diff against "
            "(name one: tether release show VERSION --diff OTHER)"
        )
    return max(older, key=lambda r: (r.created_at, r.id))


@group.command("show")
def release_show(
    name: Annotated[str, typer.Argument(help="Release version.")],
    against: Annotated[
        str | None,
        typer.Argument(help="With --diff: the release to compare with (default: the one before NAME)."),
    ] = None,
    project: ProjectOption = Path("."),
    diff: Annotated[
        bool,
        typer.Option("--diff", help="Show what changed (prompts, config, tools) since the previous release."),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """A release's content, and with --diff what changed since the release before it (or AGAINST).

    `tether release show v3 --diff` compares v3 with the release created before it;
    `tether release show v3 --diff v1` compares it with v1.
    """

    async def body() -> None:
        from tether.agent.release import diff_snapshots
        from tether.rollout.releases import snapshot_of

        async with open_session(project.resolve()) as session:
            release = await session.store.get_release(name)
            other = None
            if against:
                other = await session.store.get_release(against)
            elif diff:
                other = await _previous(session.store, release)
        snapshot = snapshot_of(release)
        changes = (
            diff_snapshots(snapshot_of(other), snapshot, old_name=other.version, new_name=release.version)
            if other
            else None
        )
        if as_json:
            data = release.model_dump(mode="json")
            if other is not None:
                data["diff"] = changes
            dump_json(data)
            return
        config = snapshot.parsed_config()
        names = config.agent.enabled_tools
        enabled = [t for t in snapshot.tools if names is None or t["name"] in names]
        table = Table(show_header=False, box=None)
        for key, value in (
            ("version", release.version),
            ("kind", release.kind),
            ("content hash", release.content_hash),
            ("owner", config.agent.owner),
            ("model", " → ".join(config.model.chain)),
            ("tools", ", ".join(f"{t['name']} ({t['side_effect']}, {t['risk']})" for t in enabled) or "-"),
            ("not enabled", ", ".join(t["name"] for t in snapshot.tools if t not in enabled) or "-"),
            ("write tools", "enabled" if config.agent.write_tools_enabled else "disabled"),
            ("force human review", str(config.agent.force_human_review).lower()),
            (
                "limits",
                f"{config.limits.max_steps} steps, {config.limits.max_tokens_per_run} tokens, "
                f"${config.limits.max_cost_usd_per_run} per run",
            ),
            ("prompts", ", ".join(snapshot.prompts)),
            ("created", release.created_at.isoformat(timespec="seconds")),
        ):
            table.add_row(f"[bold]{key}[/bold]", value)
        print_table(table)
        if other is not None:
            out.print(f"\n[bold]changes since {other.version}[/bold]")
            out.print(changes or "(no differences)", highlight=False, markup=False)

    run_command(body)
