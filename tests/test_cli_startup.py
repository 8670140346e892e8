"""`tether` starts fast: light commands must not import the heavy rooms and libraries.

Each check runs the real entry point in a fresh interpreter and looks at `sys.modules` afterwards,
so a top-level import that slips back into the CLI (or the store) fails here, not in a benchmark.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Cli

# Imported only by the commands that need them (serve/api, evals, runs that execute, migrations).
HEAVY = (
    "alembic",
    "fastapi",
    "uvicorn",
    "openai",
    "anthropic",
    "opentelemetry",
    "jinja2",
    "prometheus_client",
    "genai_prices",
    "yaml",
    "tether.api",
    "tether.evals",
    "tether.observe.service",
    "tether.runtime.service",
    "tether.runtime.loop",
)
# What `--help` does not need on top of that: no database, no settings, no pydantic models.
HEAVY_FOR_HELP = (*HEAVY, "sqlalchemy", "pydantic", "pydantic_settings", "structlog", "tether.store")

PROBE = """
import json, sys
sys.argv = ["tether", *json.loads(sys.argv[1])]
from tether.cli import main
try:
    main()
except SystemExit:
    pass
with open(OUTPUT, "w") as f:
    json.dump(sorted(sys.modules), f)
"""


def imported_by(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> set[str]:
    """The modules loaded after `tether ARGS` ran to completion in a fresh interpreter."""
    output = tmp_path / "modules.json"
    code = PROBE.replace("OUTPUT", repr(str(output)))
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps(args)],
        capture_output=True,
        text=True,
        env=dict(os.environ) if env is None else env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert output.exists(), done.stderr
    return set(json.loads(output.read_text()))


def loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(n for n in names if n in modules or any(m.startswith(n + ".") for m in modules))


def test_help_imports_nothing_heavy(tmp_path: Path) -> None:
    modules = imported_by(tmp_path, "--help")
    assert "tether.cli.runs" in modules  # the probe really ran the CLI
    assert loaded(modules, HEAVY_FOR_HELP) == []


def test_runs_list_reads_the_store_without_migrations_or_the_runtime(
    tmp_path: Path, cli: Cli, example_project: Path
) -> None:
    cli("db", "upgrade", "--project", example_project)  # migrated, as after any first command
    # A setting to validate (and --json) take the full path: the Store, still nothing heavy.
    env = {**os.environ, "TETHER_LOG_FORMAT": "json"}
    modules = imported_by(tmp_path, "runs", "list", "--project", str(example_project), env=env)
    assert "tether.store.repository" in modules  # it did read the database
    assert loaded(modules, HEAVY) == []


def test_runs_list_on_a_current_sqlite_file_needs_no_sqlalchemy(
    tmp_path: Path, cli: Cli, example_project: Path
) -> None:
    cli("run", "Where is my order 12345?", "--user", "u1", "--project", example_project)
    # The database the in-process `cli` used, and no setting that would need validating.
    env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_") or k == "TETHER_DATABASE_URL"}
    modules = imported_by(tmp_path, "runs", "list", "--project", str(example_project), env=env)
    assert "tether.store.glance" in modules  # it did read the database
    assert (
        loaded(modules, (*HEAVY, "sqlalchemy", "pydantic_settings", "structlog", "tether.store.repository"))
        == []
    )
    listed = subprocess.run(
        [sys.executable, "-m", "tether", "runs", "list", "--project", str(example_project)],
        capture_output=True,
        text=True,
        env={**env, "COLUMNS": "200"},
        timeout=300,
        check=True,
    )
    full = cli("runs", "list", "--project", example_project).stdout
    assert listed.stdout.split() == full.split()  # the same table as the Store path draws
    assert "u1" in listed.stdout


@pytest.mark.parametrize("command", [["release", "list"], ["keys", "list"], ["runs", "show", "--help"]])
def test_other_light_commands_import_nothing_heavy(
    tmp_path: Path, cli: Cli, example_project: Path, command: list[str]
) -> None:
    cli("db", "upgrade", "--project", example_project)
    modules = imported_by(tmp_path, *command, "--project", str(example_project))
    assert loaded(modules, HEAVY) == []


def test_choices_named_for_help_match_their_rooms() -> None:
    """The CLI names some choices itself (so --help stays light); they must equal the real ones."""
    from tether.api.auth import SCOPES
    from tether.cli.common import StatusChoice
    from tether.cli.evals import CategoryChoice
    from tether.cli.keys import SCOPE_NAMES
    from tether.cli.observe import ERROR_TYPE_NAMES
    from tether.evals.cases import Category
    from tether.store.records import RunStatus
    from tether.store.telemetry import ERROR_TYPES

    assert [s.value for s in StatusChoice] == [s.value for s in RunStatus]
    assert [c.value for c in CategoryChoice] == [c.value for c in Category]
    assert SCOPE_NAMES == SCOPES
    assert ERROR_TYPE_NAMES == ERROR_TYPES


def test_variables_that_skip_validation_cannot_make_settings_invalid() -> None:
    from tether.cli.common import NOT_VALIDATED
    from tether.settings import Settings

    for name in NOT_VALIDATED:
        field = Settings.model_fields.get(name.removeprefix("TETHER_").lower())
        assert field is None or field.annotation in (str, str | None), name


def test_head_revisions_read_without_alembic_agree_with_alembic() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from tether.store import db

    config = Config()
    config.set_main_option("script_location", str(db.MIGRATIONS))
    assert db.head_revisions() == frozenset(ScriptDirectory.from_config(config).get_heads())
