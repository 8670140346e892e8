"""`tether eval`, `tether gate`, `tether cost` and `tether readiness`: the evals room on the command line."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

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

if TYPE_CHECKING:
    from tether.agent.config import ProjectConfig
    from tether.store.records import ReleaseRecord

commands = typer.Typer()
eval_group = typer.Typer(help="Run eval suites and turn runs into eval cases.", no_args_is_help=True)
cost_group = typer.Typer(help="Cost estimates from measured runs.", no_args_is_help=True)

RequiredRelease = Annotated[str, typer.Option("--release", help="Release version.")]


class CategoryChoice(StrEnum):
    """Case categories, named here so that --help does not import the evals room;
    tests/test_cli_startup.py keeps it equal to tether.evals.cases.Category."""

    FUNCTIONAL = "functional"
    TOOL_USAGE = "tool_usage"
    SAFETY = "safety"
    LATENCY = "latency"
    COST = "cost"
    REGRESSION = "regression"


@eval_group.command("run")
def eval_run(
    project: ProjectOption = Path("."),
    suite: Annotated[
        list[str] | None, typer.Option("--suite", "-s", help="Suite name (repeatable; default: all).")
    ] = None,
    release: Annotated[str | None, typer.Option(help="Release version (default: the working copy).")] = None,
    trials: Annotated[
        int | None, typer.Option(min=1, max=100, help="Runs per case (default: evals.trials in tether.toml).")
    ] = None,
    concurrency: Annotated[
        int | None, typer.Option(min=1, max=64, help="Runs at once (default: evals.concurrency).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Run every case of the suites K times through the run loop and store the results on the release."""

    async def body() -> None:
        from tether.evals.cases import load_suites
        from tether.evals.runner import EvalRunner
        from tether.rollout.releases import snapshot_of, working_copy_release

        async with open_session(project.resolve()) as session:
            suites = load_suites(session.project, suite or None)
            chosen = (
                await session.store.get_release(release)
                if release
                else await working_copy_release(session.store, session.project)
            )
            evals = snapshot_of(chosen).parsed_config().evals
            progress = Progress(
                TextColumn("[bold]eval[/bold] {task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[failed]} failed"),
                TimeElapsedColumn(),
                console=err,
                transient=as_json,
            )
            runner = EvalRunner(
                session.store,
                session.runtime.settings,
                session.project,
                chosen,
                trials=trials or evals.trials,
                concurrency=concurrency or evals.concurrency,
            )
            err.print(escape(runner.data.note), highlight=False)
            failed = 0
            with progress:
                task = progress.add_task(chosen.version, total=runner.total_trials(suites), failed=0)

                def advance(case_id: str, passed: bool) -> None:
                    nonlocal failed
                    failed += 0 if passed else 1
                    progress.update(task, advance=1, failed=failed)

                runner.on_trial = advance
                eval_run_record, results = await runner.run(suites)
        if as_json:
            dump_json(
                {
                    "eval_run": eval_run_record.id,
                    "release": chosen.version,
                    "summary": eval_run_record.summary,
                    "cases": [r.model_dump(mode="json", exclude={"trial_results"}) for r in results],
                }
            )
            return
        table = Table("suite", "case", "category", "passed", "95% CI", "latency ms", "tokens", "cost")
        for r in results:
            style = "green" if r.passes == r.trials else ("red" if r.passes == 0 else "yellow")
            n = len(r.trial_results)
            table.add_row(
                r.suite,
                escape(r.case_id) + (" [red](P0)[/red]" if r.p0 else ""),
                r.category,
                f"[{style}]{r.passes}/{r.trials}[/{style}]",
                f"{r.ci_low:.2f}-{r.ci_high:.2f}",
                f"{sum(t['latency_ms'] for t in r.trial_results) / n:.0f}",
                str(sum(t["input_tokens"] + t["output_tokens"] for t in r.trial_results) // n),
                f"${sum(t['cost_usd'] for t in r.trial_results) / n:.6f}",
            )
        print_table(table)
        s = eval_run_record.summary
        out.print(
            f"eval run {eval_run_record.id} on {chosen.version}: {s['passes']}/{s['trials']} trials passed "
            f"({s['pass_rate'] * 100:.1f}%, 95% CI {s['ci_low'] * 100:.1f}-{s['ci_high'] * 100:.1f}%), "
            f"p95 latency {s['p95_latency_ms']:.0f} ms, mean cost ${s['mean_cost_usd']:.6f}/run",
            highlight=False,
        )
        out.print(f"next: tether gate --release {chosen.version}", highlight=False)

    run_command(body)


@eval_group.command("add-from-run")
def eval_add_from_run(
    run_id: Annotated[str, typer.Argument(help="The run to turn into a case.")],
    suite: Annotated[str, typer.Option("--suite", "-s", help="Suite to append to (created if new).")],
    expect: Annotated[
        list[str] | None,
        typer.Option(
            "--expect",
            "-e",
            help="KEY=VALUE expectation (repeatable), e.g. status=succeeded, tools_not_called=issue_refund. "
            "Default: what the run did (its status and tool calls).",
        ),
    ] = None,
    case_id: Annotated[str | None, typer.Option("--id", help="Case id (default: run-<id>).")] = None,
    category: Annotated[CategoryChoice, typer.Option(help="Case category.")] = CategoryChoice.REGRESSION,
    p0: Annotated[bool, typer.Option("--p0", help="A failure of this case blocks a release.")] = False,
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Turn a stored run (input, thread history, what happened) into a case appended to a suite."""

    async def body() -> None:
        from tether.evals.capture import append_case, case_as_data, case_from_run, parse_expectations
        from tether.evals.cases import Category

        expectations = parse_expectations(expect or [])
        async with open_session(project.resolve()) as session:
            case = await case_from_run(
                session.store,
                run_id,
                case_id=case_id,
                expect=expectations,
                category=Category(category),
                p0=p0,
            )
            path = append_case(session.project, suite, case)
        if as_json:
            dump_json({"suite": suite, "file": str(path), "case": case_as_data(case)})
        else:
            out.print(f"added case [bold]{escape(case.id)}[/bold] to {escape(str(path))}")

    run_command(body)


@commands.command()
def gate(
    release: RequiredRelease,
    project: ProjectOption = Path("."),
    baseline: Annotated[
        str | None,
        typer.Option(help="Compare with this release (default: the last release whose gate passed)."),
    ] = None,
    report_md: Annotated[
        Path | None, typer.Option("--report-md", help="Write the Markdown report here.")
    ] = None,
    junit: Annotated[Path | None, typer.Option("--junit", help="Write JUnit XML here.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Apply the gate policy in tether.toml to the release's latest eval results; exit 1 when it fails."""

    async def body() -> bool:
        from tether.evals.gate import run_gate
        from tether.evals.reports import junit_xml, markdown

        async with open_session(project.resolve()) as session:
            chosen = await session.store.get_release(release)
            policy = _project_config(session.project, chosen).gate
            result = await run_gate(session.store, chosen, policy, baseline=baseline)
        text = markdown(result)
        if report_md is not None:
            report_md.write_text(text, encoding="utf-8")
        if junit is not None:
            junit.write_text(junit_xml(result), encoding="utf-8")
        if as_json:
            dump_json(
                {
                    "release": chosen.version,
                    "passed": result.passed,
                    "baseline": result.baseline.version if result.baseline else None,
                    "eval_run": result.eval_run.id,
                    "checks": [c.as_dict() for c in result.checks],
                    "regressions": [vars(r) for r in result.regressions],
                    "policy": result.policy,
                }
            )
        else:
            table = Table("check", "result", "value", "threshold", "detail")
            for check in result.checks:
                mark = "[green]pass[/green]" if check.passed else "[red]FAIL[/red]"
                table.add_row(
                    check.name, mark, escape(check.value), escape(check.threshold), escape(check.detail)
                )
            print_table(table)
            verdict = "[green]PASSED[/green]" if result.passed else "[red]FAILED[/red]"
            base = f" (baseline {result.baseline.version})" if result.baseline else " (no baseline)"
            out.print(f"gate {verdict} for {escape(chosen.version)}{escape(base)}")
        return result.passed

    if not run_command(body):
        raise typer.Exit(1)


def _project_config(project: Path, release: ReleaseRecord) -> ProjectConfig:
    """The policy in the project's tether.toml as it is now (else the release's own copy of it)."""
    from tether.agent.config import load_config
    from tether.agent.project import CONFIG_FILE
    from tether.rollout.releases import snapshot_of

    path = project / CONFIG_FILE
    return load_config(path) if path.is_file() else snapshot_of(release).parsed_config()


@cost_group.command("estimate")
def cost_estimate(
    release: RequiredRelease,
    runs_per_day: Annotated[float, typer.Option("--runs-per-day", min=0, help="Expected runs a day.")],
    monthly_budget: Annotated[
        float | None,
        typer.Option("--monthly-budget", min=0, help="USD a month (default: gate.monthly_budget_usd)."),
    ] = None,
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Project daily and monthly spend from the release's measured eval runs; exit 1 when over budget."""

    async def body() -> bool:
        from tether.evals.cost import estimate
        from tether.evals.gate import GateError

        async with open_session(project.resolve()) as session:
            chosen = await session.store.get_release(release)
            eval_run = await session.store.latest_eval_run(chosen.id)
            if eval_run is None:
                raise GateError(
                    f"release {chosen.version} has no measured runs; "
                    f"run `tether eval run --release {chosen.version}`"
                )
            cases = await session.store.list_eval_case_results(eval_run.id)
        gate_config = _project_config(session.project, chosen).gate
        result = estimate(
            chosen,
            eval_run,
            cases,
            runs_per_day=runs_per_day,
            monthly_budget_usd=monthly_budget
            if monthly_budget is not None
            else gate_config.monthly_budget_usd,
            warning_fraction=gate_config.cost_ceiling_warning,
        )
        if as_json:
            dump_json(result.as_dict())
            return not result.over_budget
        table = Table("per run", "mean", "p50", "p95", "max")
        c, t = result.cost, result.tokens
        table.add_row("cost", f"${c.mean:.6f}", f"${c.p50:.6f}", f"${c.p95:.6f}", f"${c.max:.6f}")
        table.add_row("tokens", f"{t.mean:.0f}", f"{t.p50:.0f}", f"{t.p95:.0f}", f"{t.max:.0f}")
        if result.per_conversation is not None:
            pc = result.per_conversation
            table.add_row(
                "cost per conversation",
                f"${pc.mean:.6f}",
                f"${pc.p50:.6f}",
                f"${pc.p95:.6f}",
                f"${pc.max:.6f}",
            )
        print_table(table)
        out.print(
            f"from {result.runs_measured} measured runs of eval run {eval_run.id}; "
            f"at {runs_per_day:,.0f} runs/day: "
            f"${result.daily_usd:,.2f}/day, ${result.monthly_usd:,.2f}/month "
            f"(${result.monthly_p95_usd:,.2f}/month if every run cost the p95)",
            highlight=False,
        )
        for near in result.near_ceiling:
            out.print(
                f"[yellow]near ceiling:[/yellow] {escape(near.suite)}/{escape(near.case_id)} {near.what} "
                f"{near.value:g} of {near.ceiling:g} ({near.fraction * 100:.0f}%)"
            )
        if result.monthly_budget_usd is not None:
            state = "[red]OVER BUDGET[/red]" if result.over_budget else "[green]within budget[/green]"
            out.print(f"monthly budget ${result.monthly_budget_usd:,.2f}: {state}")
        return not result.over_budget

    if not run_command(body):
        raise typer.Exit(1)


@commands.command()
def readiness(
    release: RequiredRelease,
    project: ProjectOption = Path("."),
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the Markdown and HTML review.")] = Path(
        "readiness"
    ),
    runs_per_day: Annotated[
        float,
        typer.Option(
            "--runs-per-day", min=0, help="Traffic for the cost section (use your cost estimate's)."
        ),
    ] = 1000,
    drills_only: Annotated[
        bool,
        typer.Option(
            "--drills-only",
            help="Exit by the drills alone, ignoring the gate verdict (e.g. before any eval has run).",
        ),
    ] = False,
) -> None:
    """Write the one-page production readiness review, executing its three drills.

    Exits 1 when the verdict is NOT READY (the gate has not passed, or a drill failed); with
    --drills-only, only when a drill failed.
    """

    async def body() -> bool:
        from tether.evals.readiness import build_review, write

        async with open_session(project.resolve()) as session:
            chosen = await session.store.get_release(release)
            review = await build_review(
                session.store, session.runtime.settings, session.project, chosen, runs_per_day=runs_per_day
            )
        md_path, html_path = write(review, out_dir)
        for drill in review.drills:
            mark = "[green]passed[/green]" if drill.passed else "[red]FAILED[/red]"
            out.print(
                f"drill {drill.title}: {mark} ({drill.run.status}, run {drill.run.id})", highlight=False
            )
        verdict = "[green]READY[/green]" if review.ready else "[red]NOT READY[/red]"
        out.print(f"{verdict}: wrote {escape(str(md_path))} and {escape(str(html_path))}")
        v = chosen.version
        if review.verdict is None:
            out.print(
                f"why: no gate verdict for {v}. "
                f"Next: tether eval run --release {v} && tether gate --release {v}",
                highlight=False,
                soft_wrap=True,
            )
        elif not review.verdict.passed:
            out.print(
                f"why: the gate failed for {v}. Next: tether gate --release {v} --report-md gate.md",
                highlight=False,
                soft_wrap=True,
            )
        if not all(d.passed for d in review.drills):
            out.print(f"why: a drill failed; see {escape(str(md_path))}", highlight=False)
        return all(d.passed for d in review.drills) if drills_only else review.ready

    if not run_command(body):
        raise typer.Exit(1)
