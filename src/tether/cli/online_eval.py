"""`tether online-eval summary|scores`: how live traffic scores, per release, and one run's scores."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

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
)

group = typer.Typer(
    help="Scores of sampled production runs ([online_eval] in tether.toml).", no_args_is_help=True
)


@group.command("summary")
def online_summary(
    hours: Annotated[
        float, typer.Option(min=0.01, max=24 * 90, help="The window: this many hours back.")
    ] = 24,
    release: Annotated[str | None, typer.Option(help="Only this release version.")] = None,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's runs.")] = None,
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Mean score per release and scorer over the window (feedback: share of thumbs up)."""

    async def body() -> None:
        from datetime import timedelta

        async with open_session(project.resolve()) as session:
            store = session.store
            release_id = None if release is None else (await store.get_release(release)).id
            now = store.online_eval.now()
            rows = await store.online_eval.summary(
                since=now - timedelta(hours=hours), until=now, release_id=release_id, tenant_id=tenant
            )
            versions = {row.key: (await store.get_release(row.key)).version for row in rows}
        if as_json:
            dump_json(
                [
                    {"release": versions[r.key], "scorer": r.scorer, "mean": r.mean, "count": r.count}
                    for r in rows
                ]
            )
            return
        if not rows:
            out.print(f"no online scores in the last {hours:g} h (is [online_eval] sample_rate above 0?)")
            return
        table = Table("release", "scorer", "mean", "scores")
        for r in rows:
            table.add_row(escape(versions[r.key]), r.scorer, f"{r.mean:.3f}", str(r.count))
        print_table(table)

    run_command(body)


@group.command("scores")
def online_scores(
    run_id: Annotated[str, typer.Argument(help="The run's id.")],
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """One run's online scores (none when it was not sampled, or is not scored yet)."""

    async def body() -> None:
        async with open_session(project.resolve()) as session:
            await session.store.get_run(run_id)  # an unknown id is an error, not "no scores"
            scores = await session.store.online_eval.scores_for_run(run_id)
        if as_json:
            dump_json([s.model_dump(mode="json") for s in scores])
            return
        if not scores:
            out.print(f"run {run_id} has no online scores (not sampled, or not scored yet)", highlight=False)
            return
        table = Table("scorer", "score", "passed", "judge cost", "detail")
        for s in scores:
            table.add_row(
                s.scorer,
                f"{s.score:.3f}",
                "yes" if s.passed else "no",
                f"${s.cost_usd:.6f}",
                escape(s.detail or "-"),
            )
        print_table(table)

    run_command(body)
