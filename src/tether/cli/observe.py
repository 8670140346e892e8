"""`tether traces search` and `tether alerts check|list`: what happened in runs, and alerts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from tether.cli.common import (
    STATUS_STYLE,
    JsonOption,
    OriginOption,
    ProjectOption,
    StatusOption,
    dump_json,
    open_session,
    out,
    print_table,
    run_command,
)

traces_group = typer.Typer(help="Search runs by what happened in them (their traces).", no_args_is_help=True)
alerts_group = typer.Typer(help="Evaluate and list alerts.", no_args_is_help=True)

# Named here for --help, which must not import the store; a test keeps it equal to its ERROR_TYPES.
ERROR_TYPE_NAMES = (
    "model_error",
    "internal_error",
    "release_error",
    "other_failure",
    "budget_exhausted",
    "cancelled",
)


@traces_group.command("search")
def traces_search(
    project: ProjectOption = Path("."),
    release: Annotated[str | None, typer.Option(help="Release version.")] = None,
    status: StatusOption = None,
    error_type: Annotated[str | None, typer.Option(help=f"One of: {', '.join(ERROR_TYPE_NAMES)}.")] = None,
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
    origin: OriginOption = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    as_json: JsonOption = False,
) -> None:
    """Runs matching every filter given, newest first, e.g.
    `tether traces search --release v3 --status failed --tool issue_refund --last 1h`."""

    async def body() -> None:
        from tether.api.routes.observe import TraceOut
        from tether.observe.alerts import parse_duration
        from tether.store.insights import RunFilter
        from tether.store.records import parse_origins
        from tether.store.repository import utc_now

        if feedback not in (None, "positive", "negative", "any"):
            raise ValueError("--feedback must be positive, negative or any")
        if error_type is not None and error_type not in ERROR_TYPE_NAMES:
            raise ValueError(f"--error-type must be one of: {', '.join(ERROR_TYPE_NAMES)}")
        since = utc_now() - parse_duration(last) if last else None
        async with open_session(project.resolve()) as session:
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
                    origins=parse_origins(origin),
                ),
                limit=limit,
            )
        found = [TraceOut.of(r) for r in page.runs]
        if as_json:
            dump_json([t.model_dump(mode="json") for t in found])
            return
        table = Table("run_id", "status", "error", "release", "user", "steps", "latency", "cost", "created")
        for t in found:
            style = STATUS_STYLE.get(t.status, "cyan")
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
        print_table(table)
        out.print(f"{len(found)} run(s)" + (" (more: raise --limit)" if page.next_cursor else ""))

    run_command(body)


@alerts_group.command("check")
def alerts_check(project: ProjectOption = Path("."), as_json: JsonOption = False) -> None:
    """Evaluate the project's alert rules once; store what changed (webhook events for workers to send)."""

    async def body() -> None:
        from tether.agent.config import load_config
        from tether.agent.project import CONFIG_FILE
        from tether.incidents.service import alert_hook
        from tether.observe.alerts import AlertEvaluator, rules_for

        async with open_session(project.resolve()) as session:
            config = load_config(session.project / CONFIG_FILE)
            evaluator = AlertEvaluator(
                session.store,
                rules_for(config),
                budgets=config.budget_alerts,
                on_fire=alert_hook(session.store),  # a firing alert opens an incident
            )
            changed = await evaluator.check()
            firing = await session.store.telemetry.list_alerts(state="firing")
        if as_json:
            dump_json(
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

    run_command(body)


@alerts_group.command("list")
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
        async with open_session(project.resolve()) as session:
            found = await session.store.telemetry.list_alerts(state=state, limit=limit)
        if as_json:
            dump_json([a.model_dump(mode="json") for a in found])
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
        print_table(table)

    run_command(body)
