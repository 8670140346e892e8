"""Regenerate the reference part of docs/cli.md from the Typer app.

    python docs/generate_cli_docs.py        # from the repository root, in the Tether venv

Everything above the marker line in docs/cli.md (the hand-written intro) is kept; everything below
it is replaced by the output of Typer's docs generator, i.e. what

    typer tether.cli utils docs --name tether

prints. That command cannot be used as is with typer 0.29: Typer loads the module without
registering it in `sys.modules`, and `@dataclass` in a module with `from __future__ import
annotations` then fails (`AttributeError: 'NoneType' object has no attribute '__dict__'`). This
script registers the module while Typer loads it, and otherwise runs Typer's own command.
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

import typer.cli

MARKER = "<!-- generated below by docs/generate_cli_docs.py; do not edit by hand -->"
CLI_MD = Path(__file__).resolve().parent / "cli.md"


def _generate() -> str:
    original = importlib.util.module_from_spec

    def registering(spec: Any) -> ModuleType:
        module = original(spec)
        sys.modules[spec.name] = module
        return module

    with tempfile.TemporaryDirectory() as tmp:
        output = Path(tmp) / "cli.md"
        importlib.util.module_from_spec = registering  # type: ignore[assignment]
        sys.argv = ["typer", "tether.cli", "utils", "docs", "--name", "tether", "--output", str(output)]
        try:
            typer.cli.main()
        except SystemExit as exc:
            if exc.code not in (0, None):
                raise
        finally:
            importlib.util.module_from_spec = original  # type: ignore[assignment]
        return output.read_text(encoding="utf-8")


def main() -> None:
    text = CLI_MD.read_text(encoding="utf-8") if CLI_MD.exists() else ""
    intro = text.split(MARKER, 1)[0].rstrip() + "\n\n" if MARKER in text else ""
    generated = _generate()
    CLI_MD.write_text(f"{intro}{MARKER}\n\n{generated}", encoding="utf-8")
    print(f"wrote {CLI_MD}")


if __name__ == "__main__":
    main()
