"""`tether init`: a new agent project."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from tether.cli.common import err, out

commands = typer.Typer()


@commands.command()
def init(directory: Annotated[Path, typer.Argument(help="Folder for the new agent project.")]) -> None:
    """Create a working agent project (config, prompt, a tool and an offline scripted model)."""
    from tether.scaffold import scaffold

    try:
        written = scaffold(directory)
    except FileExistsError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from None
    for path in written:
        out.print(f"created {path}", highlight=False)
    hint = f'tether run --project {shlex.quote(str(directory))} --user me "How many words is this sentence?"'
    out.print(f"\nnext: {escape(hint)}", highlight=False)
