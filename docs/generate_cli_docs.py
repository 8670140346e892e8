"""Regenerate the reference part of docs/cli.md from the Typer app.

    python docs/generate_cli_docs.py        # from the repository root, in the project's environment

Everything above the marker line in docs/cli.md (the hand-written intro) is kept; everything below
it is replaced by what Typer's own Markdown generator (the one behind `typer ... utils docs`) makes
of `tether.cli.app`. It is called directly on the app rather than through the `typer` command, which
loads a second copy of the module and changes the app it documents.
"""

from __future__ import annotations

from pathlib import Path

import typer
import typer.cli
import typer.main

from tether.cli import app

MARKER = "<!-- generated below by docs/generate_cli_docs.py; do not edit by hand -->"
CLI_MD = Path(__file__).resolve().parent / "cli.md"


def generate() -> str:
    """The Markdown reference of every `tether` command."""
    command = typer.main.get_command(app)
    with typer.Context(command, info_name="tether") as ctx:
        ctx.obj = {typer.cli.MARKUP_MODE_KEY: app.rich_markup_mode}
        docs = typer.cli.get_docs_for_click(obj=command, ctx=ctx, name="tether")
    return f"{docs.strip()}\n"


def main() -> None:
    text = CLI_MD.read_text(encoding="utf-8") if CLI_MD.exists() else ""
    intro = text.split(MARKER, 1)[0].rstrip() + "\n\n" if MARKER in text else ""
    CLI_MD.write_text(f"{intro}{MARKER}\n\n{generate()}", encoding="utf-8")
    print(f"wrote {CLI_MD.name}")


if __name__ == "__main__":
    main()
