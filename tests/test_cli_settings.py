"""A bad TETHER_* setting is one `error:` line naming the variable, as the docs say, for every command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCUMENTED = (
    "error: bad setting TETHER_LEASE_SECONDS='abc': "
    "Input should be a valid number, unable to parse string as a number"
)


@pytest.mark.parametrize("command", [["runs", "list"], ["serve", "--port", "1"], ["worker", "--drain"]])
def test_a_bad_setting_is_the_documented_line(example_project: Path, command: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tether", *command, "--project", str(example_project)],
        env={**os.environ, "TETHER_LEASE_SECONDS": "abc"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [DOCUMENTED]


def test_the_docs_quote_what_is_printed() -> None:
    for page in ("configuration.md", "cli.md"):
        text = " ".join((REPO / "docs" / page).read_text(encoding="utf-8").split())
        assert f"`{DOCUMENTED}`" in text, page
