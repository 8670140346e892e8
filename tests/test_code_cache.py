"""The release code cache is private and verified (issue 10 item 2): a pre-seeded folder with a
modified tools.py is never imported, and a cache others can write is refused with a clear error."""

from __future__ import annotations

import os
import stat
import textwrap
import uuid
from pathlib import Path

import pytest
from conftest import Cli, ProjectFactory

from tether.agent.code_cache import cache_root, sources_digest

TOOLS = """
from tether import tool

@tool
def echo(text: str) -> str:
    \"\"\"Say it back.\"\"\"
    return f"genuine {text}"
"""

POLICY = """
from tether.models.scripted import ScriptedTurn

def respond(turn: ScriptedTurn):
    if turn.observations:
        return turn.observations[-1].content
    return turn.call("echo", text=turn.user_input)
"""


def _project(make_project: ProjectFactory) -> tuple[Path, str]:
    """A project with code no other test has (so no process has imported it yet), and its hash."""
    tools = TOOLS + f"\n# {uuid.uuid4().hex}\n"
    project = make_project(tools=tools, policy=POLICY)
    sources = {name: (project / name).read_text() for name in ("policy.py", "tools.py")}
    return project, sources_digest(sources)


def _tampered_tools(marker: Path) -> str:
    return textwrap.dedent(
        f"""
        from pathlib import Path
        from tether import tool
        Path({str(marker)!r}).write_text("attacker code ran")

        @tool
        def echo(text: str) -> str:
            \"\"\"Say it back.\"\"\"
            return f"tampered {{text}}"
        """
    )


def _seed(folder: Path, project: Path, marker: Path) -> None:
    folder.mkdir(parents=True, mode=0o700)
    (folder / "policy.py").write_text((project / "policy.py").read_text())
    (folder / "tools.py").write_text(_tampered_tools(marker))


def test_a_tampered_cache_folder_is_rewritten_not_imported(
    cli: Cli, make_project: ProjectFactory, isolated_env: Path
) -> None:
    project, code_hash = _project(make_project)
    cache, marker = isolated_env / "code", isolated_env / "tampered-ran"
    cache.mkdir(mode=0o700)
    _seed(cache / code_hash, project, marker)

    run = cli.json("run", "--project", str(project), "--user", "u", "hello")

    assert run["output"] == "genuine hello"
    assert not marker.exists()
    assert (cache / code_hash / "tools.py").read_text() == (project / "tools.py").read_text()


def test_a_cache_that_others_can_write_is_refused(
    cli: Cli, make_project: ProjectFactory, isolated_env: Path
) -> None:
    project, _ = _project(make_project)
    cache = isolated_env / "code"
    cache.mkdir()
    cache.chmod(0o777)

    result = cli("run", "--project", str(project), "--user", "u", "hello", expect=2)

    assert "refusing the release code cache" in result.output
    assert "group or others may write it (mode 777)" in result.output


def test_a_cache_folder_that_another_user_owns_is_refused(
    cli: Cli, make_project: ProjectFactory, isolated_env: Path
) -> None:
    if os.geteuid() != 0:
        pytest.skip("handing a folder to another user needs root")
    project, code_hash = _project(make_project)
    cache, marker = isolated_env / "code", isolated_env / "tampered-ran"
    cache.mkdir(mode=0o700)
    _seed(cache / code_hash, project, marker)
    os.chown(cache / code_hash, 65534, 65534)

    result = cli("run", "--project", str(project), "--user", "u", "hello", expect=2)

    assert "owned by uid 65534" in result.output
    assert not marker.exists()


def test_the_default_cache_is_a_private_per_user_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("TETHER_CODE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))

    root = cache_root()

    assert root == tmp_path / "xdg" / "tether" / "code"
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
