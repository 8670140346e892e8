"""`tether run`, `tether approve` and `tether runs list|show|cancel`: creating, deciding and reading runs."""

from __future__ import annotations

import asyncio
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
    OriginOption,
    ProjectOption,
    Session,
    StatusOption,
    dump_json,
    err,
    fail,
    open_session,
    out,
    print_run,
    print_table,
    run_command,
    run_json,
    show_run,
    warn_about_tools,
)

if TYPE_CHECKING:
    from tether.store.records import RunRecord, StepRecord

commands = typer.Typer()
group = typer.Typer(help="Inspect runs.", no_args_is_help=True)


# How often a command waiting for a run held by another process looks at it again: a store read,
# cheap enough to be prompt and rare enough not to load the database.
WAIT_POLL_S = 0.5

UserOption = Annotated[
    str | None,
    typer.Option(
        "--user",
        "-u",
        envvar="TETHER_USER",
        help="Who the run is for (required; the agent acts on this user's account).",
    ),
]


async def run_to_rest(session: Session, run_id: str, *, executors: list[str]) -> RunRecord:
    """Drive the run here, or wait for whoever executes it, until it ends or parks for approval.

    When live workers serve this database (`tether serve`, `tether worker`), the run is theirs and
    this only waits; it takes the run over if it is left queued with no live worker, or its
    holder's lease runs out. Without workers it executes the run in this process.
    """
    from tether.store.records import RunStatus
    from tether.store.repository import utc_now

    fresh_s = session.settings.worker_fresh_s
    result = await session.store.get_run(run_id) if executors else await session.runtime.execute(run_id)
    told = False
    while not result.status.is_final and result.status != RunStatus.WAITING_FOR_APPROVAL:
        if not told:
            holder = result.lease_owner or (", ".join(executors) if executors else "another process")
            err.print(
                f"run {run_id} is {result.status} ({'held by' if result.lease_owner else 'left to'} "
                f"worker {holder}); waiting for its answer. Ctrl-C stops waiting, not the run; "
                f"follow it with: tether runs show {run_id}",
                highlight=False,
            )
            told = True
        await asyncio.sleep(WAIT_POLL_S)
        result = await session.store.get_run(run_id)
        expired = result.lease_expires_at is not None and result.lease_expires_at < utc_now()
        orphaned = result.status == RunStatus.QUEUED and not await session.store.live_workers(
            within_s=fresh_s
        )
        if expired or orphaned:
            result = await session.runtime.execute(run_id)  # claims it only if still claimable
    return result


async def live_executors(session: Session) -> list[str]:
    """The ids of live workers on this database (the one inside `tether serve` included)."""
    workers = await session.store.live_workers(within_s=session.settings.worker_fresh_s)
    return [w.id for w in workers]


def _interrupted(run_id: str | None) -> typer.Exit:
    if run_id is not None:
        err.print(
            f"stopped waiting; run {run_id} is not cancelled. Follow it with: tether runs show {run_id} "
            f"(cancel: tether runs cancel {run_id})",
            highlight=False,
        )
    return typer.Exit(130)


@commands.command()
def run(
    task: Annotated[str, typer.Argument(help="What the agent should do.")],
    project: ProjectOption = Path("."),
    user: UserOption = None,
    thread: Annotated[str | None, typer.Option(help="Continue this thread (created if new).")] = None,
    release: Annotated[str | None, typer.Option(help="Release version (default: the working copy).")] = None,
    queue_only: Annotated[bool, typer.Option("--queue", help="Only queue it, for `tether worker`.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Run the agent on one task for a user and print the run record.

    If `tether serve` or `tether worker` is running on the same database, its worker executes the
    run and this command waits for the answer; otherwise the run executes in this process.
    """
    if not user or not user.strip():
        raise fail(
            "who is this run for? Pass --user USER_ID (or set TETHER_USER): "
            "the agent acts on that user's account and thread"
        )
    started: str | None = None

    async def body() -> None:
        nonlocal started
        from tether.rollout.releases import working_copy_release
        from tether.store.records import RunOrigin

        async with open_session(project.resolve()) as session:
            chosen = (
                await session.store.get_release(release)
                if release
                else await working_copy_release(session.store, session.project)
            )
            warn_about_tools(chosen)
            queued = await session.runtime.submit(
                chosen, user_id=user, input=task, origin=RunOrigin.CLI, thread_id=thread
            )
            started = queued.id
            if not as_json:
                err.print(f"run {queued.id} for user {user} on release {chosen.version}", highlight=False)
            if queue_only:
                result = queued
            else:
                result = await run_to_rest(session, queued.id, executors=await live_executors(session))
            await show_run(session, result, as_json)
            if not as_json:
                _next_steps(result)

    try:
        run_command(body)
    except KeyboardInterrupt:
        raise _interrupted(started) from None


def _next_steps(run: RunRecord) -> None:
    """One line on what to do now that the command is done with the run."""
    if run.status == "queued":
        err.print(
            f"next: a worker runs it (`tether worker`, or `tether serve`); follow: tether runs show {run.id}",
            highlight=False,
        )
    elif run.status != "waiting_for_approval":  # a parked run already lists its approve/reject commands
        err.print(f"next: every step of it: tether runs show {run.id}", highlight=False)


@commands.command()
def approve(
    run_id: Annotated[str, typer.Argument(help="The run waiting for approval.")],
    project: ProjectOption = Path("."),
    reject: Annotated[
        bool, typer.Option("--reject", help="Reject the pending call instead (needs --reason).")
    ] = False,
    reason: Annotated[
        str | None,
        typer.Option(help="Why (recorded; shown to the agent on rejection, where it is required)."),
    ] = None,
    by: Annotated[str, typer.Option(help="Who decides (recorded).")] = "cli",
    queue_only: Annotated[
        bool, typer.Option("--queue", help="Leave the resumed run to `tether worker`.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Approve (or --reject with a --reason) a run's pending tool call, then resume the run.

    If a worker (`tether serve`, `tether worker`) serves this database, it resumes the run and this
    command waits for the answer.
    """
    if reject and not (reason and reason.strip()):
        raise fail('a rejection needs a reason the agent can act on: --reject --reason "..."')

    async def body() -> None:
        async with open_session(project.resolve()) as session:
            decision = await session.runtime.decide(run_id, approve=not reject, reason=reason, decided_by=by)
            if not as_json:
                out.print(f"{decision.status} {decision.tool} for run {run_id}", highlight=False)
            if queue_only:
                result = await session.store.get_run(run_id)
            else:
                result = await run_to_rest(session, run_id, executors=await live_executors(session))
            await show_run(session, result, as_json)
            if not as_json:
                _next_steps(result)

    try:
        run_command(body)
    except KeyboardInterrupt:
        raise _interrupted(run_id) from None


@group.command("list")
def runs_list(
    project: ProjectOption = Path("."),
    status: StatusOption = None,
    origin: OriginOption = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
    as_json: JsonOption = False,
) -> None:
    """The most recent runs, newest first: production runs (api, cli) unless --origin says otherwise."""

    async def body() -> None:
        from tether.store.records import PRODUCTION_ORIGINS, RunStatus, parse_origins

        origins = parse_origins(origin)
        async with open_session(project.resolve()) as session:
            wanted = RunStatus(status) if status else None
            records = await session.store.list_runs(status=wanted, origins=origins, limit=limit)
        if as_json:
            dump_json([run_json(r, []) for r in records])
            return
        table = Table("run_id", "status", "origin", "release", "user", "steps", "tokens", "cost", "created")
        for r in records:
            style = STATUS_STYLE.get(r.status, "cyan")
            table.add_row(
                r.id,
                f"[{style}]{r.status}[/{style}]",
                r.origin,
                r.release_version,
                r.user_id,
                str(r.steps_used),
                str(r.input_tokens + r.output_tokens),
                f"${r.estimated_cost_usd:.6f}",
                r.created_at.isoformat(timespec="seconds"),
            )
        print_table(table)
        if origins == PRODUCTION_ORIGINS:
            err.print("production runs (api, cli) only; --origin all adds eval and drill runs", style="dim")

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
    if step.kind == StepKind.GUARDRAIL:
        decision = f"{step.arguments.get('action', '?')} at {step.arguments.get('stage', '?')}"
        return f"[magenta]#{step.index} guard[/magenta] {escape(f'{step.name}: {decision}')}"
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
            if record.status.is_final:  # ended here, not in a run loop: its trace needs its root
                await session.runtime.observer.run_ended_idle(record)
            await show_run(session, record, as_json)

    run_command(body)
