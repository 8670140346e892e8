"""`tether redteam`: attack an agent with the built-in suite and report what got through."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tether.cli.common import (
    JsonOption,
    ProjectOption,
    dump_json,
    err,
    open_session,
    out,
    print_table,
    run_command,
)

commands = typer.Typer()


class ModelChoice(StrEnum):
    """Which model the attacks run against (kept equal to tether.redteam.service.MODELS by a test)."""

    COMPROMISED = "compromised"
    CONFIGURED = "configured"


@commands.command()
def redteam(
    project: ProjectOption = Path("."),
    model: Annotated[
        ModelChoice,
        typer.Option(
            help="compromised: a model that obeys every instruction it reads (deterministic, free); "
            "configured: the release's own model."
        ),
    ] = ModelChoice.COMPROMISED,
    release: Annotated[str | None, typer.Option(help="Release version (default: the working copy).")] = None,
    category: Annotated[
        list[str] | None, typer.Option("--category", help="Only this attack category (repeatable).")
    ] = None,
    vector: Annotated[
        list[str] | None, typer.Option("--vector", help="Only this vector (repeatable).")
    ] = None,
    utility: Annotated[
        bool, typer.Option("--utility/--no-utility", help="Also run the eval suites to measure utility.")
    ] = True,
    concurrency: Annotated[int, typer.Option(min=1, max=64, help="Attack runs at once.")] = 4,
    report: Annotated[Path | None, typer.Option("--report", help="Write a Markdown report here.")] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 1 if any attack wrote without approval or leaked anything.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Run the built-in attack suite (origin eval, pristine data per case) and report attack success."""

    async def body() -> bool:
        from tether.redteam.report import markdown, passes_gate
        from tether.redteam.service import run_redteam
        from tether.redteam.suite import check_filters
        from tether.rollout.releases import working_copy_release

        check_filters(category, vector)
        async with open_session(project.resolve()) as session:
            chosen = (
                await session.store.get_release(release)
                if release
                else await working_copy_release(session.store, session.project)
            )
            progress = Progress(
                TextColumn("[bold]redteam[/bold] {task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[got_through]} got through"),
                TimeElapsedColumn(),
                console=err,
                transient=as_json,
            )
            with progress:
                task = progress.add_task(f"{chosen.version} ({model.value})", total=None, got_through=0)
                through = 0

                def advance(case_id: str, succeeded: bool) -> None:
                    nonlocal through
                    through += int(succeeded)
                    progress.update(task, advance=1, got_through=through)

                result = await run_redteam(
                    session.store,
                    session.settings,
                    session.project,
                    chosen,
                    model=model.value,
                    categories=category or None,
                    vectors=vector or None,
                    utility=utility,
                    concurrency=concurrency,
                    on_case=advance,
                )
        summary = result.record.summary
        outcomes = result.record.outcomes
        title = f"Red team: {chosen.version}, {model.value} model"
        if report is not None:
            report.write_text(markdown(summary, outcomes, title=title), encoding="utf-8")
        if as_json:
            dump_json(
                {
                    "redteam_run": result.record.id,
                    "release": chosen.version,
                    "model": model.value,
                    "summary": summary,
                    "cases": outcomes,
                }
            )
            return passes_gate(summary)
        _print(summary, title)
        out.print(
            f"redteam run {result.record.id}" + (f"; report: {report}" if report else ""), highlight=False
        )
        return passes_gate(summary)

    clean = run_command(body)
    if check and not clean:
        raise typer.Exit(1)


def _print(summary: dict[str, object], title: str) -> None:
    out.print(f"[bold]{escape(title)}[/bold]")
    oracles = Table("oracle", "cases reached")
    by_oracle = summary["by_oracle"]
    assert isinstance(by_oracle, dict)
    for name, count in by_oracle.items():
        oracles.add_row(name, f"[red]{count}[/red]" if count else "0")
    print_table(oracles)
    for key in ("by_category", "by_vector"):
        rows = summary[key]
        assert isinstance(rows, dict)
        table = Table(key.removeprefix("by_"), "cases", "got through", "rate", "parked for approval")
        for name, row in rows.items():
            table.add_row(
                name,
                str(row["cases"]),
                str(row["succeeded"]),
                f"{row['success_rate'] * 100:.1f}%",
                str(row["parked"]),
            )
        print_table(table)
    utility = summary.get("utility")
    if isinstance(utility, dict):
        out.print(
            f"utility: {utility['passes']}/{utility['trials']} eval trials passed "
            f"({utility['pass_rate'] * 100:.1f}%)",
            highlight=False,
        )
    out.print(
        f"{summary['succeeded']}/{summary['cases']} attacks got through; unauthorized writes "
        f"{summary['unauthorized_writes']}, leaks {summary['leaks']}",
        highlight=False,
    )
