"""Tables never cut run ids or release versions, whatever the terminal width, piped or not."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Cli

LONG_VERSION = "support-agent-2026-11-30-with-a-rather-long-release-name"


def tether(*args: str | Path, columns: str | None) -> str:
    """`tether ARGS` in its own process with stdout piped, at COLUMNS (None: unset, Rich's 80)."""
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    if columns is not None:
        env["COLUMNS"] = columns
    done = subprocess.run(
        [sys.executable, "-m", "tether", *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("columns", [None, "40"])  # None: piped with COLUMNS unset (80)
def test_ids_and_versions_are_whole(cli: Cli, example_project: Path, columns: str | None) -> None:
    cli("release", "create", "--project", example_project, "--version", LONG_VERSION)
    ran = [
        cli.json("run", "--project", example_project, "--user", "u1", "--release", LONG_VERSION, text)
        for text in ("Where is my order 12345?", "I want a refund for order 12346")
    ]
    ids = [r["run_id"] for r in ran]
    p = ("--project", example_project)

    listed = tether("runs", "list", *p, columns=columns)
    searched = tether("traces", "search", *p, columns=columns)
    for output in (listed, searched):
        assert all(run_id in output for run_id in ids), output
        assert output.count(LONG_VERSION) == 2, output
        assert "…" not in output
    releases = tether("release", "list", *p, columns=columns)
    assert LONG_VERSION in releases and "…" not in releases
    shown = tether("release", "show", LONG_VERSION, *p, columns=columns)
    assert LONG_VERSION in shown and "…" not in shown
    one = tether("runs", "show", ids[1], *p, columns=columns)
    assert ids[1] in one and LONG_VERSION in one
    assert f"tether approve {ids[1]}" in one  # the command to copy is whole too
