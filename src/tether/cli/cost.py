"""`tether cost report` (spend by user, tag, model...) and `tether breakers` (circuit breakers).

`report` joins the `tether cost` group that `cli/evals.py` starts (`cost estimate`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from tether.cli.common import (
    JsonOption,
    OriginOption,
    ProjectOption,
    dump_json,
    fail,
    open_session,
    out,
    print_table,
    run_command,
)

commands = typer.Typer()
breakers_group = typer.Typer(help="Circuit breakers per model and tool.", no_args_is_help=True)

BY_HELP = "Group by user, thread, tenant, tag (run metadata `tag`), release, model or tier."


@commands.command("report")
def cost_report(
    by: Annotated[str, typer.Option("--by", help=BY_HELP)] = "model",
    since: Annotated[str, typer.Option("--since", help="How far back: 30m, 24h, 7d...")] = "7d",
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant.")] = None,
    origin: OriginOption = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000)] = 50,
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Spend and tokens over a window, grouped, largest first (production runs unless --origin)."""
    from tether.observe.alerts import parse_duration
    from tether.store.costs import GROUPINGS
    from tether.store.records import parse_origins
    from tether.store.repository import utc_now

    if by not in GROUPINGS:
        raise fail(f"--by {by!r}: choose from {', '.join(GROUPINGS)}")
    try:
        window = parse_duration(since)
        origins = parse_origins(origin)
    except ValueError as exc:
        raise fail(str(exc)) from None

    async def body() -> None:
        async with open_session(project.resolve()) as session:
            lines = await session.store.costs.report(
                by,  # type: ignore[arg-type]
                since=utc_now() - window,
                tenant_id=tenant,
                origins=origins,
                limit=limit,
            )
        if as_json:
            dump_json([line.model_dump() for line in lines])
            return
        calls = "model calls" if by in ("model", "tier") else "steps"
        table = Table(by, "runs", calls, "input tokens", "output tokens", "cost", "saved by caches")
        for line in lines:
            table.add_row(
                escape(line.key),
                str(line.runs),
                str(line.calls),
                f"{line.input_tokens:,}",
                f"{line.output_tokens:,}",
                f"${line.cost_usd:.6f}",
                f"${line.saved_usd:.6f}",
            )
        print_table(table)
        total = sum(line.cost_usd for line in lines)
        out.print(f"total ${total:.6f} over the last {since}", highlight=False)

    run_command(body)


@breakers_group.command("list")
def breakers_list(
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Every breaker this database (or Redis) knows: state, failures, last error."""

    async def body() -> None:
        from tether.runtime.breaker_state import breaker_backend_for

        async with open_session(project.resolve()) as session:
            states = await breaker_backend_for(session.store, session.settings.redis_url).all()
        if as_json:
            dump_json({key: state.as_dict() for key, state in states.items()})
            return
        table = Table("breaker", "state", "consecutive failures", "window", "last error")
        for key, state in states.items():
            window = f"{state.window_failures}/{state.window_calls} failed"
            table.add_row(escape(key), state.phase, str(state.consecutive), window, escape(state.last_error))
        print_table(table)

    run_command(body)


@breakers_group.command("reset")
def breakers_reset(
    key: Annotated[str, typer.Argument(help="The breaker, e.g. model:openai:gpt-4o-mini.")],
    project: ProjectOption = Path("."),
) -> None:
    """Close a breaker by hand (forget its failures): calls go through again at once."""

    async def body() -> bool:
        from tether.runtime.breaker_state import breaker_backend_for

        async with open_session(project.resolve()) as session:
            return await breaker_backend_for(session.store, session.settings.redis_url).reset(key)

    if not run_command(body):
        raise fail(f"no breaker {key!r} (see `tether breakers list`)", code=1)
    out.print(f"breaker {escape(key)} reset", highlight=False)
