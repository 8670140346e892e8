"""The `tether` command."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shlex
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
import uvicorn
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

from tether import cli_evals
from tether.agent.config import ConfigError, load_config
from tether.agent.project import CONFIG_FILE
from tether.agent.release import diff_snapshots
from tether.api.app import ServiceOptions, create_app
from tether.api.auth import SCOPES, issue_key
from tether.api.routes.observe import TraceOut
from tether.models.pricing import UnknownPriceError
from tether.observe.alerts import AlertEvaluator, parse_duration, rules_for
from tether.observe.logs import configure_logging, secrets_from_environment
from tether.observe.service import Telemetry
from tether.rollout.releases import create_release, snapshot_of, working_copy_release
from tether.runtime.notify import notifier_for
from tether.runtime.service import Runtime
from tether.runtime.worker import Worker
from tether.scaffold import scaffold
from tether.settings import Settings
from tether.store import db
from tether.store.insights import RunFilter
from tether.store.records import ApprovalRecord, RunRecord, RunStatus, StepKind, StepRecord
from tether.store.repository import ConflictError, LeaseLostError, NotFoundError, Store, utc_now
from tether.store.telemetry import ERROR_TYPES

app = typer.Typer(help="Run LLM agents in production with controlled autonomy.", no_args_is_help=True)
runs_app = typer.Typer(help="Inspect runs.", no_args_is_help=True)
release_app = typer.Typer(help="Create and inspect releases.", no_args_is_help=True)
db_app = typer.Typer(help="Manage the database schema.", no_args_is_help=True)
keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(runs_app, name="runs")
app.add_typer(release_app, name="release")
app.add_typer(db_app, name="db")
traces_app = typer.Typer(help="Search runs by what happened in them (their traces).", no_args_is_help=True)
alerts_app = typer.Typer(help="Evaluate and list alerts.", no_args_is_help=True)
app.add_typer(traces_app, name="traces")
app.add_typer(alerts_app, name="alerts")

out = Console()
err = Console(stderr=True, soft_wrap=True)

ProjectOption = Annotated[
    Path,
    typer.Option(
        "--project", "-p", envvar="TETHER_PROJECT", help="Agent project folder (holds tether.toml)."
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]

T = TypeVar("T")
_USER_ERRORS = (
    ConfigError,
    UnknownPriceError,
    NotFoundError,
    ConflictError,
    db.DatabaseError,
    ValueError,
    FileExistsError,
    LeaseLostError,
)


def _run(coro: Callable[[], Awaitable[T]]) -> T:
    """Run a command body; known failures become one clear line on stderr and exit code 2."""
    try:
        return asyncio.run(coro())  # type: ignore[arg-type]
    except _USER_ERRORS as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from None
    except Exception as exc:
        if os.environ.get("TETHER_DEBUG", "").lower() in ("1", "true", "yes"):
            raise
        err.print(
            f"[red]internal error:[/red] {exc!r} (set TETHER_DEBUG=1 for the traceback)", highlight=False
        )
        raise typer.Exit(1) from None


@dataclass
class Session:
    project: Path
    store: Store
    runtime: Runtime
    telemetry: Telemetry | None = None


@asynccontextmanager
async def _session(project: Path) -> AsyncIterator[Session]:
    settings = Settings()
    if settings.database_url is None and not (project / CONFIG_FILE).is_file():
        raise ConfigError(
            f"{project} is not an agent project (no {CONFIG_FILE}); pass --project or set TETHER_DATABASE_URL"
        )
    url = settings.database_url or db.default_url(project)
    # Every event a CLI process or worker writes wakes the API nodes streaming that run.
    notifier = notifier_for(settings.redis_url)
    try:
        store = await Store.open(url, on_event=notifier.publish)
        data_dir = Path(settings.data_dir) if settings.data_dir else project / "data"
        telemetry = Telemetry(store, settings)
        try:
            runtime = Runtime(store, settings, data_dir=data_dir, observer=telemetry.observer)
            yield Session(project, store, runtime, telemetry)
        finally:
            await telemetry.close()
            await store.close()
    finally:
        await notifier.close()


def _dump(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


def _run_json(run: RunRecord, approvals: list[ApprovalRecord]) -> dict[str, Any]:
    data = run.model_dump(mode="json", by_alias=True)
    data["run_id"] = data.pop("id")
    pending = [a for a in approvals if a.status == "pending"]
    data["pending_approval"] = pending[0].model_dump(mode="json") if pending else None
    return data


_STATUS_STYLE = {
    RunStatus.SUCCEEDED: "green",
    RunStatus.WAITING_FOR_APPROVAL: "yellow",
    RunStatus.ESCALATED: "yellow",
    RunStatus.BUDGET_EXHAUSTED: "red",
    RunStatus.FAILED: "red",
    RunStatus.CANCELLED: "dim",
}


def _print_run(run: RunRecord, approvals: list[ApprovalRecord], project: Path | None = None) -> None:
    style = _STATUS_STYLE.get(run.status, "cyan")
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    rows: list[tuple[str, str]] = [
        ("run_id", run.id),
        ("status", f"[{style}]{run.status}[/{style}]"),
        ("release", run.release_version),
        ("user", run.user_id),
        ("thread", run.thread_id or "-"),
        ("steps", str(run.steps_used)),
        ("tools called", ", ".join(run.tools_called) or "-"),
        ("tokens", f"{run.input_tokens} in / {run.output_tokens} out"),
        ("cost", f"${run.estimated_cost_usd:.6f}"),
        ("risk", run.risk_level),
        ("created", run.created_at.isoformat(timespec="seconds")),
    ]
    if run.finished_at:
        rows.append(("finished", run.finished_at.isoformat(timespec="seconds")))
    if run.error:
        rows.append(("error", run.error))
    for key, value in rows:
        table.add_row(key, value if key == "status" else escape(value))
    out.print(table)
    for approval in approvals:
        if approval.status == "pending":
            out.print(
                f"\n[yellow]waiting for approval[/yellow] of [bold]{escape(approval.tool)}[/bold]"
                f"({escape(json.dumps(approval.arguments))}): {escape(approval.reason)}",
                highlight=False,
            )
            where = f" --project {shlex.quote(str(project))}" if project and project != Path.cwd() else ""
            where = escape(where)
            out.print(f"  approve: tether approve {run.id}{where}", highlight=False)
            out.print(f'  reject:  tether approve {run.id}{where} --reject --reason "..."', highlight=False)
    if run.output:
        out.print("\n[bold]output[/bold]")
        out.print(run.output, highlight=False, markup=False)


async def _show(session: Session, run: RunRecord, as_json: bool) -> None:
    approvals = await session.store.list_approvals(run_id=run.id)
    if as_json:
        _dump(_run_json(run, approvals))
    else:
        _print_run(run, approvals, session.project)


@app.command()
def init(directory: Annotated[Path, typer.Argument(help="Folder for the new agent project.")]) -> None:
    """Create a working agent project (config, prompt, a tool and an offline scripted model)."""
    try:
        written = scaffold(directory)
    except FileExistsError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from None
    for path in written:
        out.print(f"created {path}", highlight=False)
    hint = f'tether run --project {shlex.quote(str(directory))} --user me "How many words is this sentence?"'
    out.print(f"\nnext: {escape(hint)}", highlight=False)


@app.command()
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
        async with _session(project.resolve()) as session:
            chosen = (
                await session.store.get_release(release)
                if release
                else await working_copy_release(session.store, session.project)
            )
            queued = await session.runtime.submit(chosen, user_id=user, input=task, thread_id=thread)
            result = queued if queue_only else await session.runtime.execute(queued.id)
            await _show(session, result, as_json)

    _run(body)


@app.command()
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
        async with _session(project.resolve()) as session:
            decision = await session.runtime.decide(run_id, approve=not reject, reason=reason, decided_by=by)
            if not as_json:
                out.print(f"{decision.status} {decision.tool} for run {run_id}", highlight=False)
            result = (
                await session.store.get_run(run_id) if queue_only else await session.runtime.execute(run_id)
            )
            await _show(session, result, as_json)

    _run(body)


@app.command()
def worker(
    project: ProjectOption = Path("."),
    drain: Annotated[bool, typer.Option("--drain", help="Finish every claimable run, then exit.")] = False,
    concurrency: Annotated[int, typer.Option(min=1, max=256, help="Runs executed at once.")] = 4,
    metrics_port: Annotated[
        int | None,
        typer.Option(min=1, max=65535, help="Serve this worker's Prometheus counters on 127.0.0.1:PORT."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Execute queued runs and resume runs whose process died (lease expired).

    Without --drain it runs until SIGTERM or Ctrl-C, then stops claiming, lets each in-flight run
    finish its current step, and hands the rest back to the queue.
    """

    async def serve_forever() -> None:
        async with _session(project.resolve()) as session:
            settings = session.runtime.settings
            runner = Worker(session.runtime, concurrency=concurrency, poll_s=settings.worker_poll_s)
            if metrics_port is not None and session.telemetry is not None:
                session.telemetry.serve_metrics(metrics_port)
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, runner.stop)
            err.print(f"worker {runner.worker_id} running (concurrency {concurrency}); Ctrl-C to stop")
            await runner.run()
            err.print(f"worker stopped after {runner.completed} run(s)")

    if not drain:
        _run(serve_forever)
        return

    async def body() -> None:
        async with _session(project.resolve()) as session:
            done = await session.runtime.drain()
        if as_json:
            _dump([{"run_id": r.id, "status": r.status} for r in done])
            return
        for record in done:
            out.print(f"{record.id}  {record.status}", highlight=False)
        out.print(f"drained {len(done)} run(s)")

    _run(body)


@runs_app.command("list")
def runs_list(
    project: ProjectOption = Path("."),
    status: Annotated[RunStatus | None, typer.Option(help="Only runs with this status.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
    as_json: JsonOption = False,
) -> None:
    """The most recent runs, newest first."""

    async def body() -> None:
        async with _session(project.resolve()) as session:
            records = await session.store.list_runs(status=status, limit=limit)
        if as_json:
            _dump([_run_json(r, []) for r in records])
            return
        table = Table("run_id", "status", "release", "user", "steps", "tokens", "cost", "created")
        for r in records:
            style = _STATUS_STYLE.get(r.status, "cyan")
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

    _run(body)


def _step_label(step: StepRecord) -> str:
    status_style = {"succeeded": "green", "failed": "red", "started": "yellow"}[step.status]
    if step.kind == StepKind.MODEL_CALL:
        calls = (step.message or {}).get("tool_calls") or []
        what = ", ".join(c["name"] for c in calls) if calls else "final answer"
        detail = f"{step.input_tokens}+{step.output_tokens} tokens, ${step.cost_usd:.6f}"
        label = f"{step.name} → {what} ({detail})"
        return f"[{status_style}]#{step.index} model[/{status_style}] {escape(label)}"
    args = json.dumps(step.arguments, sort_keys=True)
    return f"[{status_style}]#{step.index} tool[/{status_style}] {escape(f'{step.name}({args})')}"


@runs_app.command("show")
def runs_show(
    run_id: Annotated[str, typer.Argument()],
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """One run with its steps as a tree."""

    async def body() -> None:
        async with _session(project.resolve()) as session:
            record = await session.store.get_run(run_id)
            steps = await session.store.list_steps(run_id)
            approvals = await session.store.list_approvals(run_id=run_id)
        if as_json:
            data = _run_json(record, approvals)
            data["steps"] = [s.model_dump(mode="json") for s in steps]
            data["approvals"] = [a.model_dump(mode="json") for a in approvals]
            _dump(data)
            return
        _print_run(record, approvals, project.resolve())
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

    _run(body)


@runs_app.command("cancel")
def runs_cancel(
    run_id: Annotated[str, typer.Argument()],
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Cancel a run: a queued or waiting run ends now, a running one at its next step boundary."""

    async def body() -> None:
        async with _session(project.resolve()) as session:
            record = await session.store.request_cancel(run_id)
            if record.status.is_final:  # ended here, not in a run loop: its trace needs its root
                await session.runtime.observer.run_ended_idle(record)
            await _show(session, record, as_json)

    _run(body)


@release_app.command("create")
def release_create(
    project: ProjectOption = Path("."),
    version: Annotated[str | None, typer.Option(help="Version name (default: <name>-<date>).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Snapshot the project into an immutable release (unchanged inputs reuse the existing one)."""

    async def body() -> None:
        async with _session(project.resolve()) as session:
            result = await create_release(session.store, session.project, version=version)
        release = result.release
        if as_json:
            _dump(
                {"version": release.version, "content_hash": release.content_hash, "created": result.created}
            )
        elif result.created:
            out.print(f"created release [bold]{release.version}[/bold] ({release.content_hash[:12]})")
        else:
            note = f"; not creating {escape(version)}" if version and version != release.version else ""
            short = release.content_hash[:12]
            out.print(f"unchanged: already released as [bold]{release.version}[/bold] ({short}){note}")

    _run(body)


@release_app.command("list")
def release_list(
    project: ProjectOption = Path("."),
    adhoc: Annotated[bool, typer.Option("--adhoc", help="Include working-copy releases.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Releases, newest first."""

    async def body() -> None:
        async with _session(project.resolve()) as session:
            releases = await session.store.list_releases(include_adhoc=adhoc)
        if as_json:
            _dump([r.model_dump(mode="json", exclude={"snapshot"}) for r in releases])
            return
        table = Table("version", "kind", "hash", "model", "created")
        for r in releases:
            model = snapshot_of(r).config.get("model", {}).get("primary", "?")
            table.add_row(
                r.version, r.kind, r.content_hash[:12], model, r.created_at.isoformat(timespec="seconds")
            )
        out.print(table)

    _run(body)


@release_app.command("show")
def release_show(
    name: Annotated[str, typer.Argument(help="Release version.")],
    project: ProjectOption = Path("."),
    diff: Annotated[str | None, typer.Option("--diff", help="Show what changed since this release.")] = None,
    as_json: JsonOption = False,
) -> None:
    """A release's content (and a diff of prompts, config and tools against another)."""

    async def body() -> None:
        async with _session(project.resolve()) as session:
            release = await session.store.get_release(name)
            other = await session.store.get_release(diff) if diff else None
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
            _dump(data)
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
        out.print(table)
        if other is not None:
            out.print(f"\n[bold]changes since {other.version}[/bold]")
            out.print(changes or "(no differences)", highlight=False, markup=False)

    _run(body)


def _service_options(project: Path, release: str | None, concurrency: int) -> ServiceOptions:
    project = project.resolve()
    settings = Settings()
    if settings.database_url is None and not (project / CONFIG_FILE).is_file():
        raise ConfigError(f"{project} is not an agent project (no {CONFIG_FILE}); pass --project")
    return ServiceOptions(
        project=project, release=release, embedded_worker_concurrency=concurrency, settings=settings
    )


def _serve(
    project: Path, release: str | None, concurrency: int, host: str, port: int, *, first_key: bool
) -> None:
    async def body() -> None:
        options = _service_options(project, release, concurrency)
        store = await Store.open(options.database_url)
        try:
            # Resolve the release here, so a problem is one clear line rather than a traceback from the
            # server's startup, and the app is handed the release instead of snapshotting it again.
            chosen = (
                await store.get_release(release)
                if release
                else await working_copy_release(store, options.project)
            )
            options = dataclasses.replace(options, release=chosen.version)
            if first_key and not await store.list_api_keys():
                _, plaintext = await issue_key(
                    store, user_id="admin", tenant_id="default", scopes=["admin"], label="first start"
                )
                url = f"http://{host}:{port}"
                out.print("[bold]Created an admin API key (shown once; keep it safe):[/bold]")
                out.print(f"  {plaintext}", highlight=False)
                out.print("Try it:", highlight=False)
                out.print(
                    f"  curl -s -X POST {url}/v1/runs -H 'Authorization: Bearer {plaintext}' "
                    f"-H 'Content-Type: application/json' "
                    f"""-d '{{"input": "What is your return policy?", "wait": 10}}'""",
                    highlight=False,
                    soft_wrap=True,
                )
            # The dashboard is mounted by create_app, so both `serve` and `api` serve it.
            out.print(f"Dashboard: http://{host}:{port}/ui/ (log in with an API key)", highlight=False)
        finally:
            await store.close()
        # Logging is configured once, by `main` (JSON or console); the app logs each request itself.
        config = uvicorn.Config(
            create_app(options),
            host=host,
            port=port,
            log_level="info",
            lifespan="on",
            log_config=None,
            access_log=False,
        )
        await uvicorn.Server(config).serve()

    _run(body)


HostOption = Annotated[str, typer.Option(help="Interface to listen on.")]
PortOption = Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")]
ReleaseOption = Annotated[str | None, typer.Option(help="Release for new runs (default: the working copy).")]


@app.command()
def serve(
    project: ProjectOption = Path("."),
    host: HostOption = "127.0.0.1",
    port: PortOption = 8000,
    concurrency: Annotated[
        int, typer.Option(min=1, max=256, help="Runs the built-in worker executes at once.")
    ] = 4,
    release: ReleaseOption = None,
) -> None:
    """API and a worker in one process (embedded SQLite by default). Prints an admin key on first start."""
    _serve(project, release, concurrency, host, port, first_key=True)


@app.command()
def api(
    project: ProjectOption = Path("."),
    host: HostOption = "127.0.0.1",
    port: PortOption = 8000,
    release: ReleaseOption = None,
) -> None:
    """The HTTP API alone; run `tether worker` processes beside it against the same database."""
    _serve(project, release, 0, host, port, first_key=False)


@keys_app.command("create")
def keys_create(
    user: Annotated[str, typer.Option(help="The user the key acts as.")],
    tenant: Annotated[str, typer.Option(help="The tenant the key belongs to.")] = "default",
    scopes: Annotated[str, typer.Option(help=f"Comma-separated, from: {', '.join(SCOPES)}.")] = "runs:write",
    label: Annotated[str, typer.Option(help="A note for whoever reads `keys list`.")] = "",
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Create an API key. Its secret is printed once and stored only as a hash."""

    async def body() -> None:
        async with _session(project.resolve()) as session:
            record, plaintext = await issue_key(
                session.store,
                user_id=user,
                tenant_id=tenant,
                scopes=[s.strip() for s in scopes.split(",") if s.strip()],
                label=label,
            )
        if as_json:
            _dump(
                {
                    "key_id": record.id,
                    "key": plaintext,
                    "user_id": user,
                    "tenant_id": tenant,
                    "scopes": record.scopes,
                }
            )
        else:
            out.print(
                f"created {record.id} for {user}@{tenant} ({', '.join(record.scopes)}); the key, shown once:"
            )
            out.print(plaintext, highlight=False)

    _run(body)


@keys_app.command("list")
def keys_list(project: ProjectOption = Path("."), as_json: JsonOption = False) -> None:
    """API keys (never their secrets)."""

    async def body() -> None:
        async with _session(project.resolve()) as session:
            records = await session.store.list_api_keys()
        if as_json:
            _dump([r.model_dump(mode="json", exclude={"key_hash"}) for r in records])
            return
        table = Table("key_id", "user", "tenant", "scopes", "label", "created", "revoked")
        for r in records:
            table.add_row(
                r.id,
                r.user_id,
                r.tenant_id,
                ", ".join(r.scopes),
                escape(r.label),
                r.created_at.isoformat(timespec="seconds"),
                r.revoked_at.isoformat(timespec="seconds") if r.revoked_at else "-",
            )
        out.print(table)

    _run(body)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument()], project: ProjectOption = Path(".")) -> None:
    """Revoke a key; requests with it get 401 from now on."""

    async def body() -> None:
        async with _session(project.resolve()) as session:
            record = await session.store.revoke_api_key(key_id)
        out.print(f"revoked {record.id} ({record.user_id}@{record.tenant_id})")

    _run(body)


@app.command()
def openapi(
    output: Annotated[Path | None, typer.Option(help="Write here instead of standard output.")] = None,
) -> None:
    """Print the HTTP API's OpenAPI document (generated from the code)."""
    document = create_app(ServiceOptions(project=Path("."))).openapi()
    text = json.dumps(document, indent=2, sort_keys=True) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        out.print(f"wrote {output}")


@db_app.command("upgrade")
def db_upgrade(project: ProjectOption = Path(".")) -> None:
    """Apply pending database migrations (also done automatically on first use)."""

    async def body() -> None:
        async with _session(project.resolve()) as session:
            current = await db.is_current(session.store.engine)
        out.print("database schema is current" if current else "database schema is NOT current")

    _run(body)


cli_evals.register(app)  # `tether eval`, `gate`, `cost` and `readiness` (the evals room's commands)


@traces_app.command("search")
def traces_search(
    project: ProjectOption = Path("."),
    release: Annotated[str | None, typer.Option(help="Release version.")] = None,
    status: Annotated[RunStatus | None, typer.Option(help="Run status.")] = None,
    error_type: Annotated[str | None, typer.Option(help=f"One of: {', '.join(ERROR_TYPES)}.")] = None,
    tool: Annotated[str | None, typer.Option(help="Runs whose model called this tool.")] = None,
    tool_failed: Annotated[bool, typer.Option("--tool-failed", help="Runs with a failed tool call.")] = False,
    user: Annotated[str | None, typer.Option(help="User id.")] = None,
    thread: Annotated[str | None, typer.Option(help="Thread id.")] = None,
    min_latency_ms: Annotated[float | None, typer.Option(min=0)] = None,
    max_latency_ms: Annotated[float | None, typer.Option(min=0)] = None,
    min_cost: Annotated[float | None, typer.Option(min=0, help="USD.")] = None,
    max_cost: Annotated[float | None, typer.Option(min=0, help="USD.")] = None,
    last: Annotated[str | None, typer.Option(help="Created this recently: 30s, 15m, 1h, 7d.")] = None,
    guardrail: Annotated[str | None, typer.Option(help="`any` or a guardrail that did not allow.")] = None,
    feedback: Annotated[str | None, typer.Option(help="positive, negative or any.")] = None,
    tenant: Annotated[str, typer.Option(help="Tenant (CLI runs belong to `default`).")] = "default",
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    as_json: JsonOption = False,
) -> None:
    """Runs matching every filter given, newest first, e.g.
    `tether traces search --release v3 --status failed --tool issue_refund --last 1h`."""

    async def body() -> None:
        if feedback not in (None, "positive", "negative", "any"):
            raise ValueError("--feedback must be positive, negative or any")
        if error_type is not None and error_type not in ERROR_TYPES:
            raise ValueError(f"--error-type must be one of: {', '.join(ERROR_TYPES)}")
        since = utc_now() - parse_duration(last) if last else None
        async with _session(project.resolve()) as session:
            page = await session.store.insights.search_runs(
                RunFilter(
                    tenant_id=tenant,
                    release=release,
                    status=status,
                    error_type=error_type,
                    tool=tool,
                    tool_failed=tool_failed,
                    user_id=user,
                    thread_id=thread,
                    min_latency_ms=min_latency_ms,
                    max_latency_ms=max_latency_ms,
                    min_cost_usd=min_cost,
                    max_cost_usd=max_cost,
                    since=since,
                    guardrail=guardrail,
                    feedback=feedback,  # type: ignore[arg-type]  # checked above
                ),
                limit=limit,
            )
        found = [TraceOut.of(r) for r in page.runs]
        if as_json:
            _dump([t.model_dump(mode="json") for t in found])
            return
        table = Table("run_id", "status", "error", "release", "user", "steps", "latency", "cost", "created")
        for t in found:
            style = _STATUS_STYLE.get(t.status, "cyan")
            table.add_row(
                t.run_id,
                f"[{style}]{t.status}[/{style}]",
                t.error_type or "-",
                escape(t.release),
                escape(t.user_id),
                str(t.steps_used),
                "-" if t.latency_ms is None else f"{t.latency_ms / 1000:.2f}s",
                f"${t.cost_usd:.6f}",
                t.created_at.isoformat(timespec="seconds"),
            )
        out.print(table)
        out.print(f"{len(found)} run(s)" + (" (more: raise --limit)" if page.next_cursor else ""))

    _run(body)


@alerts_app.command("check")
def alerts_check(project: ProjectOption = Path("."), as_json: JsonOption = False) -> None:
    """Evaluate the project's alert rules once; store and send (TETHER_ALERT_WEBHOOK_URL) what changed."""

    async def body() -> None:
        async with _session(project.resolve()) as session:
            config = load_config(session.project / CONFIG_FILE)
            evaluator = AlertEvaluator(
                session.store, rules_for(config), webhook_url=session.runtime.settings.alert_webhook_url
            )
            changed = await evaluator.check()
            firing = await session.store.telemetry.list_alerts(state="firing")
        if as_json:
            _dump(
                {
                    "changed": [t.payload() for t in changed],
                    "firing": [a.model_dump(mode="json") for a in firing],
                }
            )
            return
        for t in changed:
            who = f"[bold]{escape(t.alert.rule)}[/bold] ({escape(t.alert.tenant_id)})"
            out.print(f"{t.state}: {who} {escape(t.alert.message)}")
        out.print(f"{len(firing)} alert(s) firing" + ("" if changed else "; nothing changed"))

    _run(body)


@alerts_app.command("list")
def alerts_list(
    project: ProjectOption = Path("."),
    state: Annotated[str | None, typer.Option(help="firing or resolved.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    as_json: JsonOption = False,
) -> None:
    """Alert episodes, newest first."""

    async def body() -> None:
        if state not in (None, "firing", "resolved"):
            raise ValueError("--state must be firing or resolved")
        async with _session(project.resolve()) as session:
            found = await session.store.telemetry.list_alerts(state=state, limit=limit)
        if as_json:
            _dump([a.model_dump(mode="json") for a in found])
            return
        table = Table("rule", "tenant", "severity", "state", "value", "fired", "resolved")
        for a in found:
            table.add_row(
                escape(a.rule),
                escape(a.tenant_id),
                a.severity,
                a.state,
                "-" if a.value is None else f"{a.value:g}",
                a.fired_at.isoformat(timespec="seconds"),
                a.resolved_at.isoformat(timespec="seconds") if a.resolved_at else "-",
            )
        out.print(table)

    _run(body)


def main() -> None:
    try:
        settings = Settings()
    except ValueError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        raise SystemExit(2) from None
    names = [name.strip() for name in settings.log_secret_env.split(",") if name.strip()]
    service = len(sys.argv) > 1 and sys.argv[1] in ("serve", "api", "worker")
    configure_logging(
        fmt=settings.log_format,
        level=settings.log_level or ("INFO" if service else "WARNING"),
        secrets=secrets_from_environment(extra_names=names),
    )
    app()
