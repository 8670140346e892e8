"""What every `tether` command shares: consoles, common options, error handling, the session.

Command modules import from here and never from each other, so there is one obvious place for each
command group and no import cycle. Importing the CLI must stay cheap (`tether --help` starts in a
fraction of a second): anything heavier than Typer, Rich and the run records is imported inside the
function that needs it, and tests/test_cli_startup.py checks that this holds.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import shlex
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table

if TYPE_CHECKING:
    from tether.controls.service import Announcer
    from tether.observe.service import Telemetry
    from tether.runtime.service import Runtime
    from tether.settings import Settings
    from tether.store.glance import RunLine
    from tether.store.records import ApprovalRecord, ReleaseRecord, RunRecord
    from tether.store.repository import Store

out = Console()
err = Console(stderr=True, soft_wrap=True)

ProjectOption = Annotated[
    Path,
    typer.Option(
        "--project", "-p", envvar="TETHER_PROJECT", help="Agent project folder (holds tether.toml)."
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
OriginOption = Annotated[
    list[str] | None,
    typer.Option(
        "--origin",
        metavar="ORIGIN",
        help="api, cli, eval, drill, shadow, canary, production or all (repeatable; default: production).",
    ),
]


class StatusChoice(StrEnum):
    """The run statuses, named here so that --help does not import the store (pydantic, SQLAlchemy);
    tests/test_cli_startup.py keeps it equal to tether.store.records.RunStatus."""

    QUEUED = "queued"
    RUNNING = "running"
    WAITING_FOR_APPROVAL = "waiting_for_approval"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    ESCALATED = "escalated"
    BUDGET_EXHAUSTED = "budget_exhausted"
    BLOCKED = "blocked"


PRODUCTION_ORIGIN_NAMES = ("api", "cli")
PROJECT_CONFIG_FILE = "tether.toml"
"""tether.agent.project.CONFIG_FILE, named here for the light path of `runs list` (tests keep them equal)."""
"""tether.store.records.PRODUCTION_ORIGINS, named here for the light path of `runs list`
(tests/test_cli_startup.py keeps the two equal)."""

StatusOption = Annotated[StatusChoice | None, typer.Option(help="Only runs with this status.")]

T = TypeVar("T")


def _user_errors() -> tuple[type[Exception], ...]:
    """The failures a user can fix (imported only when something failed: they live in heavy rooms)."""
    from tether.agent.config import ConfigError
    from tether.models.pricing import UnknownPriceError
    from tether.store import db
    from tether.store.repository import ConflictError, LeaseLostError, NotFoundError

    return (
        ConfigError,
        UnknownPriceError,
        NotFoundError,
        ConflictError,
        db.DatabaseError,
        ValueError,
        FileExistsError,
        LeaseLostError,
    )


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print one `error:` line on stderr; raise the returned Exit."""
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    return typer.Exit(code)


def run_command(coro: Callable[[], Awaitable[T]]) -> T:
    """Run a command body; known failures become one clear line on stderr and exit code 2."""
    try:
        return asyncio.run(coro())  # type: ignore[arg-type]
    except Exception as exc:
        if isinstance(exc, _user_errors()):
            raise fail(str(exc)) from None
        if os.environ.get("TETHER_DEBUG", "").lower() in ("1", "true", "yes"):
            raise
        err.print(
            f"[red]internal error:[/red] {exc!r} (set TETHER_DEBUG=1 for the traceback)", highlight=False
        )
        raise typer.Exit(1) from None


class Session:
    """One command's view of the project: its store, and (built on first use) runtime and telemetry.

    Commands that only read the store never pay for importing the run loop, model clients or
    OpenTelemetry.
    """

    def __init__(self, project: Path, store: Store, settings: Settings) -> None:
        self.project = project
        self.store = store
        self.settings = settings

    @functools.cached_property
    def telemetry(self) -> Telemetry:
        from tether.observe.service import Telemetry

        return Telemetry(self.store, self.settings)

    @functools.cached_property
    def runtime(self) -> Runtime:
        from tether.rollout.wiring import install as install_rollout
        from tether.runtime.service import Runtime

        data_dir = Path(self.settings.data_dir) if self.settings.data_dir else self.project / "data"
        runtime = Runtime(self.store, self.settings, data_dir=data_dir, observer=self.telemetry.observer)
        install_rollout(runtime)  # feature flags and experiment arms for the runs this command submits
        return runtime

    async def live(self) -> Announcer:
        """Where a change to live configuration (controls) is announced to every other process."""
        return self.runtime.live

    async def close(self) -> None:
        if "runtime" in self.__dict__:
            await self.runtime.live.close()
        if "telemetry" in self.__dict__:
            await self.telemetry.close()
        await self.store.close()


ReasonOption = Annotated[str, typer.Option("--reason", help="Why (required; recorded in the audit log).")]
ByOption = Annotated[
    str, typer.Option("--by", help="Who is acting (recorded with the change; default: your login name).")
]


def actor(by: str = "") -> str:
    """Who an audited change is recorded as: `--by`, else the login name, else `cli`."""
    if by.strip():
        return by.strip()
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # no login name in this environment (a container without one)
        return "cli"


def load_settings() -> Settings:
    """The process settings; a bad TETHER_* value is one `error:` line naming the variable."""
    from pydantic import ValidationError

    from tether.settings import Settings

    try:
        return Settings()
    except ValidationError as exc:
        raise ValueError(describe_bad_settings(exc)) from None


def describe_bad_settings(exc: Any) -> str:
    """`bad setting TETHER_X='value': what is wrong` for each problem of a pydantic ValidationError."""
    problems = [
        f"TETHER_{'_'.join(str(p) for p in e['loc']).upper()}={e['input']!r}: {e['msg']}"
        for e in exc.errors()
    ]
    return "bad setting " + "; ".join(problems)


@asynccontextmanager
async def open_session(project: Path) -> AsyncIterator[Session]:
    """The project's store (and on demand its runtime and telemetry) for one command."""
    from tether.agent.config import ConfigError
    from tether.agent.project import CONFIG_FILE
    from tether.runtime.notify import notifier_for
    from tether.store import db
    from tether.store.repository import Store

    finish_configuration()
    settings = load_settings()
    if settings.database_url is None and not (project / CONFIG_FILE).is_file():
        raise ConfigError(
            f"{project} is not an agent project (no {CONFIG_FILE}); pass --project or set TETHER_DATABASE_URL"
        )
    url = settings.database_url or db.default_url(project)
    # Every event a CLI process or worker writes wakes the API nodes streaming that run.
    notifier = notifier_for(settings.redis_url)
    try:
        store = await Store.open(url, on_event=notifier.publish)
        session = Session(project, store, settings)
        try:
            yield session
        finally:
            await session.close()
    finally:
        await notifier.close()


# TETHER_* variables that cannot make Settings() invalid: names that are not settings (CLI options,
# the code cache) and free-text settings any string satisfies. When nothing else is set, validating
# the settings can wait (tests/test_cli_startup.py checks each name against Settings).
NOT_VALIDATED = frozenset(
    {
        "TETHER_PROJECT",
        "TETHER_USER",
        "TETHER_DEBUG",
        "TETHER_CODE_CACHE",
        "TETHER_DATABASE_URL",
        "TETHER_REDIS_URL",
        "TETHER_DATA_DIR",
        "TETHER_UI_SESSION_SECRET",
        "TETHER_TRACE_PROJECT",
        "TETHER_ALERT_WEBHOOK_URL",
    }
)


def tether_environment() -> dict[str, str]:
    """The TETHER_* variables, names upper-cased (settings are read case-insensitively)."""
    return {key.upper(): value for key, value in os.environ.items() if key.upper().startswith("TETHER_")}


def settings_are_defaults() -> bool:
    """Whether no TETHER_* variable could make Settings() invalid, so validating it can wait."""
    return not tether_environment().keys() - NOT_VALIDATED


_pending: list[Callable[[], None]] = []


def defer_configuration(configure: Callable[[], None]) -> None:
    """Let a light command start before settings and logging are set up (`main` decides when)."""
    _pending.append(configure)


def finish_configuration() -> None:
    """Set up what `defer_configuration` postponed, once; a no-op when nothing was postponed."""
    while _pending:
        _pending.pop(0)()


def glance_runs(
    project: Path, status: StatusChoice | None, origin: list[str] | None, limit: int
) -> list[RunLine] | None:
    """`runs list` without the store, SQLAlchemy or pydantic, when that gives the same answer.

    That is: no setting needs validating, the origins are the default or `all`, and the database is
    a current SQLite file (tether.store.glance). None means take the full path (open_session).
    """
    if not settings_are_defaults() or origin not in (None, [], ["all"]):
        return None
    from tether.store.glance import project_database, recent_runs, sqlite_file

    url = tether_environment().get("TETHER_DATABASE_URL")
    if not url and not (project / PROJECT_CONFIG_FILE).is_file():
        return None  # not a project: the Store path says so (open_session)
    database = sqlite_file(url) if url else project_database(project)
    if database is None:
        return None
    origins = None if origin else PRODUCTION_ORIGIN_NAMES
    return recent_runs(database, status=status.value if status else None, origins=origins, limit=limit)


_UNBOUNDED = 1_000_000


def print_table(table: Table) -> None:
    """Print a table without cutting any word of a cell, so ids and versions can always be copied.

    Rich fits a table to the terminal (80 columns when piped) by truncating cells (`run_0ac…`).
    Here every column keeps at least the width of its longest word, and lines are not cropped:
    when the terminal is too narrow, a line is longer than the terminal (which wraps it) rather
    than an id being shortened.
    """
    wide = out.options.update_width(_UNBOUNDED)
    for column in table.columns:
        cells = [*([column.header] if table.show_header else []), *column.cells]
        if cells:
            words = max(Measurement.get(out, wide, cell).minimum for cell in cells)
            column.min_width = max(column.min_width or 0, words)
    out.print(table, crop=False)


def warn_about_tools(release: ReleaseRecord) -> None:
    """Warn (stderr) about tools the model is told too little about: no docstring, undescribed args."""
    from tether.agent.project import load_agent
    from tether.agent.tools import documentation_gaps
    from tether.rollout.releases import snapshot_of

    for gap in documentation_gaps(load_agent(snapshot_of(release)).tools.values()):
        err.print(f"[yellow]warning:[/yellow] {escape(gap)}", highlight=False)


def dump_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


def run_json(run: RunRecord, approvals: list[ApprovalRecord]) -> dict[str, Any]:
    data = run.model_dump(mode="json", by_alias=True)
    data["run_id"] = data.pop("id")
    pending = [a for a in approvals if a.status == "pending"]
    data["pending_approval"] = pending[0].model_dump(mode="json") if pending else None
    return data


STATUS_STYLE = {
    "succeeded": "green",
    "waiting_for_approval": "yellow",
    "escalated": "yellow",
    "budget_exhausted": "red",
    "failed": "red",
    "cancelled": "dim",
}


def print_run(run: RunRecord, approvals: list[ApprovalRecord], project: Path | None = None) -> None:
    style = STATUS_STYLE.get(run.status, "cyan")
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    rows: list[tuple[str, str]] = [
        ("run_id", run.id),
        ("status", f"[{style}]{run.status}[/{style}]"),
        ("origin", run.origin),
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
    if run.flags:
        rows.append(("flags", ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(run.flags.items()))))
    if run.experiment:
        rows.append(("experiment", f"{run.experiment} (arm {run.experiment_arm})"))
    if run.finished_at:
        rows.append(("finished", run.finished_at.isoformat(timespec="seconds")))
    if run.error:
        rows.append(("error", run.error))
    if run.controls_applied:
        rows.append(("controls", "; ".join(run.controls_applied)))
    for key, value in rows:
        table.add_row(key, value if key == "status" else escape(value))
    print_table(table)
    for approval in approvals:
        if approval.status == "pending":
            out.print(
                f"\n[yellow]waiting for approval[/yellow] of [bold]{escape(approval.tool)}[/bold]"
                f"({escape(json.dumps(approval.arguments))}): {escape(approval.reason)}",
                highlight=False,
            )
            where = f" --project {shlex.quote(str(project))}" if project and project != Path.cwd() else ""
            where = escape(where)
            out.print(f"  approve: tether approve {run.id}{where}", highlight=False, soft_wrap=True)
            out.print(
                f'  reject:  tether approve {run.id}{where} --reject --reason "..."',
                highlight=False,
                soft_wrap=True,
            )
    if run.output:
        out.print("\n[bold]output[/bold]")
        if run.truncated:
            out.print("[yellow]cut off: the answer reached \\[model] max_output_tokens[/yellow]")
        out.print(run.output, highlight=False, markup=False)


async def show_run(session: Session, run: RunRecord, as_json: bool) -> None:
    approvals = await session.store.list_approvals(run_id=run.id)
    if as_json:
        dump_json(run_json(run, approvals))
    else:
        print_run(run, approvals, session.project)
