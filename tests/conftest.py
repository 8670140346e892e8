"""Shared fixtures: isolated databases, copies of agent projects, and the CLI."""

from __future__ import annotations

import os
import shutil
import textwrap
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner, Result

from tether.cli import app
from tether.store.repository import Store

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "support_agent"
POSTGRES_ADMIN_URL = os.environ.get(
    "TETHER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
SERVICES_REQUIRED = os.environ.get("TETHER_REQUIRE_SERVICES") == "1"


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own database, data folder and code cache; no API keys leak in."""
    monkeypatch.setenv("TETHER_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'tether.db'}")
    monkeypatch.setenv("TETHER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TETHER_CODE_CACHE", str(tmp_path / "code"))
    monkeypatch.setenv("TETHER_MODEL_BACKOFF_S", "0")
    for key in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "TETHER_PROJECT"):
        monkeypatch.delenv(key, raising=False)
    return tmp_path


@pytest.fixture
def example_project(tmp_path: Path) -> Path:
    """A private copy of the example agent (so tests can edit it freely)."""
    target = tmp_path / "support_agent"
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns(".tether", "data", "__pycache__"))
    return target


ProjectFactory = Callable[..., Path]


@pytest.fixture
def make_project(tmp_path: Path) -> ProjectFactory:
    """Write a small agent project from source strings; returns its folder."""

    def build(
        *,
        tools: str,
        policy: str,
        name: str = "test-agent",
        model: str = 'primary = "scripted:test-v1"',
        agent: str = "",
        limits: str = "",
        extra: str = "",
        prompt: str = "You are a test agent.",
    ) -> Path:
        root = tmp_path / f"project-{uuid.uuid4().hex[:8]}"
        (root / "prompts").mkdir(parents=True)
        (root / "prompts" / "system.md").write_text(prompt)
        (root / "tools.py").write_text(textwrap.dedent(tools))
        (root / "policy.py").write_text(textwrap.dedent(policy))
        (root / "tether.toml").write_text(
            textwrap.dedent(
                f"""\
                [agent]
                name = "{name}"
                owner = "tests@example.com"
                {agent}

                [model]
                {model}
                scripted_policy = "policy:respond"

                [limits]
                {limits}

                {extra}
                """
            )
        )
        return root

    return build


class Cli:
    """Invokes `tether` in-process, as a user would type it."""

    def __init__(self) -> None:
        self.runner = CliRunner()

    def __call__(self, *args: str | Path, expect: int | None = 0) -> Result:
        result = self.runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
        if expect is not None:
            assert result.exit_code == expect, f"exit {result.exit_code}: {result.output}"
        return result

    def json(self, *args: str | Path) -> Any:
        import json

        return json.loads(self(*args, "--json").stdout)


@pytest.fixture
def cli() -> Cli:
    return Cli()


def _postgres_available() -> str | None:
    try:
        with psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0]


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test (dropped afterwards)."""
    problem = _postgres_available()
    if problem is not None:
        if SERVICES_REQUIRED:
            pytest.fail(f"PostgreSQL is required (TETHER_REQUIRE_SERVICES=1) but unreachable: {problem}")
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL}: {problem}")
    name = f"tether_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"postgresql+psycopg://{base.split('://', 1)[1]}/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """A migrated store on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    opened = await Store.open(url)
    try:
        yield opened
    finally:
        await opened.close()


REDIS_URL = os.environ.get("TETHER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A reachable Redis (flushed before and after the test)."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.RedisError as exc:
        if SERVICES_REQUIRED:
            pytest.fail(f"Redis is required (TETHER_REQUIRE_SERVICES=1) but unreachable: {exc}")
        pytest.skip(f"Redis not reachable at {REDIS_URL}: {exc}")
    client.flushdb()
    try:
        yield REDIS_URL
    finally:
        client.flushdb()
        client.close()
