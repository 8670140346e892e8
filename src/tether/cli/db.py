"""`tether db upgrade`: the database schema."""

from __future__ import annotations

from pathlib import Path

import typer

from tether.cli.common import ProjectOption, open_session, out, run_command

group = typer.Typer(help="Manage the database schema.", no_args_is_help=True)


@group.command("upgrade")
def db_upgrade(project: ProjectOption = Path(".")) -> None:
    """Apply pending database migrations (also done automatically on first use)."""

    async def body() -> None:
        from tether.store import db

        async with open_session(project.resolve()) as session:
            current = await db.is_current(session.store.engine)
        out.print("database schema is current" if current else "database schema is NOT current")

    run_command(body)
