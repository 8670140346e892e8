"""`tether run`, `tether approve` and `tether runs list|show|cancel`: creating, deciding and reading runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

from tether.cli.common import (
    STATUS_STYLE,
    JsonOption,
    ProjectOption,
    StatusOption,
    dump_json,
    open_session,
    out,
    print_run,
    run_command,
    run_json,
    show_run,
)

if TYPE_CHECKING:
    from tether.store.records import StepRecord

commands = typer.Typer()
group = typer.Typer(help="Inspect runs.", no_args_is_help=True)


@commands.command()
def run(
    task: Annotated[str, typer.Argument(help="What the agent should do.")],
    project: ProjectOption = Path("."),
    user: Annotated[str, typer.Option("--user", "-u", help="Who the run is for.")] = "local",
    thread: Annotated[str | None, typer.Option(help="Continue this thread (created if new).")] = None,
    release: Annotated[str | None, typer.Option(help="Release version (default: the working copy).")] = None,
    queue_only: Annotated[bool, typer.Option("--queue", help="Only queue it, for `tether worker`.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Run the agent on one task and print the run record."""

    async def body() -> None:
        from tether.rollout.releases import working_copy_release

        async with open_session(project.resolve()) as session:
            chosen = (
                await session.store.get_release(release)
                if release
                else await working_copy_release(session.store, session.project)
            )
            queued = await session.runtime.submit(chosen, user_id=user, input=task, thread_id=thread)
            result = queued if queue_only else await session.runtime.execute(queued.id)
            await show_run(session, result, as_json)

    run_command(body)


@commands.command()
def approve(
    run_id: Annotated[str, typer.Argument(help="The run waiting for approval.")],
    project: ProjectOption = Path("."),
    reject: Annotated[bool, typer.Option("--reject", help="Reject the pending call instead.")] = False,
    reason: Annotated[str | None, typer.Option(help="Why (shown to the agent on rejection).")] = None,
    by: Annotated[str, typer.Option(help="Who decides (recorded).")] = "cli",
    queue_only: Annotated[
        bool, typer.Option("--queue", help="Leave the resumed run to `tether worker`.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Approve (or --reject) a run's pending tool call, then resume the run."""

    async def body() -> None:
        async with open_session(project.resolve()) as session:
            decision = await session.runtime.decide(run_id, approve=not reject, reason=reason, decided_by=by)
            if not as_json:
                out.print(f"{decision.status} {decision.tool} for run {run_id}", highlight=False)
            result = (
                await session.store.get_run(run_id) if queue_only else await session.runtime.execute(run_id)
            )
            await show_run(session, result, as_json)

    run_command(body)


@group.command("list")
def runs_list(
    project: ProjectOption = Path("."),
    status: StatusOption = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
    as_json: JsonOption = False,
) -> None:
    """The most recent runs, newest first."""

    async def body() -> None:
        from tether.store.records import RunStatus

        async with open_session(project.resolve()) as session:
            wanted = RunStatus(status) if status else None
            records = await session.store.list_runs(status=wanted, limit=limit)
        if as_json:
            dump_json([run_json(r, []) for r in records])
            return
        table = Table("run_id", "status", "release", "user", "steps", "tokens", "cost", "created")
        for r in records:
            style = STATUS_STYLE.get(r.status, "cyan")
            table.add_row(
                r.id,
                f"[{style}]{r.status}[/{style}]",
                r.release_version,
                r.user_id,
                str(r.steps_used),
                str(r.input_tokens + r.output_tokens),
                f"${r.estimated_cost_usd:.6f}",
                r.created_at.isoformat(timespec="seconds"),
            )
        out.print(table)

    run_command(body)


def _step_label(step: StepRecord) -> str:
    from tether.store.records import StepKind

    status_style = {"succeeded": "green", "failed": "red", "started": "yellow"}[step.status]
    if step.kind == StepKind.MODEL_CALL:
        calls = (step.message or {}).get("tool_calls") or []
        what = ", ".join(c["name"] for c in calls) if calls else "final answer"
        detail = f"{step.input_tokens}+{step.output_tokens} tokens, ${step.cost_usd:.6f}"
        label = f"{step.name} → {what} ({detail})"
        return f"[{status_style}]#{step.index} model[/{status_style}] {escape(label)}"
    args = json.dumps(step.arguments, sort_keys=True)
    return f"[{status_style}]#{step.index} tool[/{status_style}] {escape(f'{step.name}({args})')}"


@group.command("show")
def runs_show(
    run_id: Annotated[str, typer.Argument()],
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """One run with its steps as a tree."""

    async def body() -> None:
        from tether.store.records import StepKind

        async with open_session(project.resolve()) as session:
            record = await session.store.get_run(run_id)
            steps = await session.store.list_steps(run_id)
            approvals = await session.store.list_approvals(run_id=run_id)
        if as_json:
            data = run_json(record, approvals)
            data["steps"] = [s.model_dump(mode="json") for s in steps]
            data["approvals"] = [a.model_dump(mode="json") for a in approvals]
            dump_json(data)
            return
        print_run(record, approvals, project.resolve())
        tree = Tree(f"[bold]{record.id}[/bold] · {escape(repr(record.input))}", highlight=False)
        for step in steps:
            branch = tree.add(_step_label(step), highlight=False)
            text = (step.message or {}).get("content") if step.kind == StepKind.MODEL_CALL else step.result
            if step.error:
                branch.add(f"[red]error:[/red] {escape(step.error)}", highlight=False)
            elif text:
                branch.add(escape(text if len(text) <= 400 else text[:399] + "…"), highlight=False)
        for approval in approvals:
            line = (
                f"approval ({approval.kind}) {approval.tool}: {approval.status}"
                + (f" by {approval.decided_by}" if approval.decided_by else "")
                + (f" — {approval.decision_reason}" if approval.decision_reason else "")
            )
            tree.add(escape(line), highlight=False)
        out.print()
        out.print(tree)

    run_command(body)


@group.command("cancel")
def runs_cancel(
    run_id: Annotated[str, typer.Argument()],
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Cancel a run: a queued or waiting run ends now, a running one at its next step boundary."""

    async def body() -> None:
        async with open_session(project.resolve()) as session:
            record = await session.store.request_cancel(run_id)
            await show_run(session, record, as_json)

    run_command(body)
