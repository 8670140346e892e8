"""`tether data reset`: the agent's working data folder, rebuilt from the seed the project declares."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from tether.cli.common import ProjectOption, err, fail, load_settings, out

group = typer.Typer(help="Manage the agent's working data folder.", no_args_is_help=True)


@group.command("reset")
def data_reset(
    project: ProjectOption = Path("."),
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Rebuild the project's working data folder with the seed function tether.toml names (`seed` in
    the data section), discarding what runs wrote there."""
    from tether.agent.config import ConfigError
    from tether.agent.data import DataError, require_seed, reset_data
    from tether.agent.project import load_agent, snapshot_project

    root = project.resolve()
    settings = load_settings()
    target = Path(settings.data_dir) if settings.data_dir else root / "data"
    try:
        agent = load_agent(snapshot_project(root), origin=root)
        seed = require_seed(agent)
        question = f"Replace {target} with fresh data from {seed}? What runs wrote there is lost"
        if not yes and not typer.confirm(question, err=True):
            err.print("nothing changed")
            raise typer.Exit(1)
        reset_data(agent, target)
    except (ConfigError, DataError) as exc:
        raise fail(str(exc)) from None
    out.print(f"reset {escape(str(target))} from [data] seed {seed}", highlight=False)
