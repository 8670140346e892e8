"""No tracked file names a path that only exists on one machine (a venv, a home, a shared folder).

Commands in docs and scripts must work from any clone: `python benchmarks/x.py` in the project's
environment, paths relative to the repository.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Not preceded by a word character, `.`, `~`, `$` or `}`: `~/x`, `$HOME/x`, `${X}/x`, `./x` and
# `a/b` are relative or portable; these are absolute paths of some particular machine.
_START = r"(?<![\w.~$}])"
MACHINE_PATHS = re.compile(
    "|".join(
        (
            _START + r"/(?:work|root|Users)/",
            _START + "/home/" + r"[^/\s]+/",
            _START + r"/tmp/[\w.-]+",
            _START + r"/(?:[\w.-]+/)*\.?venv/bin/",
        )
    )
)
# Paths that stand for the reader's own machine, on purpose.
ALLOWED = {
    ("docs/deployment.md", "/srv/tether/" + ".venv/bin/"),  # an example systemd unit for the reader's server
}


def tracked_text_files() -> list[Path]:
    done = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z"], capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip("not a git checkout: no list of tracked files")
    return [REPO / name for name in done.stdout.decode().split("\0") if name]


def test_the_pattern_catches_machine_paths_and_spares_portable_ones() -> None:
    # Written with a joined "/" so that this file does not name the paths it checks for.
    for bad in (
        "{}work/venv/bin/python benchmarks/x.py",
        "see {}work/shared/DESIGN.md",
        "{}root/.cache/x",
        "{}home/alice/project",
        "{}tmp/tether-bench-1",
        "{}opt/app/.venv/bin/tether",
    ):
        assert MACHINE_PATHS.search(bad.format("/")), bad
    for fine in (
        "python benchmarks/x.py",
        ". .venv/bin/activate",
        "~/.venv/bin/python",
        "$HOME/src",
        "src/tether/cli/app.py",
        "https://example.com/home/page",
        "/tmp",
    ):
        assert not MACHINE_PATHS.search(fine), fine


def test_no_tracked_text_file_names_a_machine_specific_path() -> None:
    found: list[str] = []
    for path in tracked_text_files():
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
            continue  # binary (screenshots) or deleted in the working tree
        relative = path.relative_to(REPO).as_posix()
        for number, line in enumerate(text.splitlines(), 1):
            for match in MACHINE_PATHS.finditer(line):
                if not any(relative == f and allowed in line for f, allowed in ALLOWED):
                    found.append(f"{relative}:{number}: {match.group(0)!r} in {line.strip()[:120]}")
    assert not found, "machine-specific paths:\n" + "\n".join(found)
