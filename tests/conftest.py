"""Shared fixtures: isolated databases, copies of agent projects, the CLI, and the test clock.

The suite runs in parallel (pytest-xdist), and other copies of it may run against the same PostgreSQL
and Redis at the same time: every resource a test touches is its own (docs/testing.md).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
from timing import TestClock, wait_until
from typer.testing import CliRunner, Result

# Rich sizes tables by the terminal the suite runs in (none under pytest-xdist: 80 columns), and the
# CLI's consoles are created at import: fix the width first, so output does not depend on where the
# suite was started. A test about narrow terminals sets its own width.
os.environ["COLUMNS"] = "160"

from tether.cli import app
from tether.store import db
from tether.store.records import ReleaseRecord
from tether.store.repository import Store

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "support_agent"
POSTGRES_ADMIN_URL = os.environ.get(
    "TETHER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
SERVICES_REQUIRED = os.environ.get("TETHER_REQUIRE_SERVICES") == "1"


def _migrations_digest() -> str:
    """Names the migrated templates: a branch that adds a migration gets its own."""
    digest = hashlib.sha256()
    for path in sorted((db.MIGRATIONS / "versions").glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def _migrate(url: str) -> None:
    """Migrate a database to head (in a thread of its own: an async fixture may be asking)."""

    async def migrate() -> None:
        store = await Store.open(url)
        await store.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, migrate()).result()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, built once per test process and copied for each test."""
    path = tmp_path_factory.mktemp("template") / "tether.db"
    _migrate(f"sqlite+aiosqlite:///{path}")
    assert not path.with_name("tether.db-wal").exists()  # the last close checkpointed the WAL
    return path


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sqlite_template: Path) -> Path:
    """Every test gets its own database (already migrated), data folder and code cache; no API keys
    or settings leak in from the environment the suite was started in."""
    shutil.copyfile(sqlite_template, tmp_path / "tether.db")
    for key in [k for k in os.environ if k.startswith("TETHER_") and not k.startswith("TETHER_TEST_")]:
        if key != "TETHER_REQUIRE_SERVICES":
            monkeypatch.delenv(key)
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


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> TestClock:
    """The clock of every store this test opens in this process (its own, the CLI's, the API app's):
    `clock.advance(seconds)` expires leases at once instead of sleeping."""
    test_clock = TestClock()
    monkeypatch.setattr(Store, "default_clock", test_clock)
    return test_clock


def _postgres_available() -> str | None:
    try:
        with psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0]


def _require_postgres() -> None:
    problem = _postgres_available()
    if problem is not None:
        if SERVICES_REQUIRED:
            pytest.fail(f"PostgreSQL is required (TETHER_REQUIRE_SERVICES=1) but unreachable: {problem}")
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL}: {problem}")


def _postgres_url(name: str) -> str:
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    return f"postgresql+psycopg://{base.split('://', 1)[1]}/{name}"


_TEMPLATE_LOCK = 7_461_726_573  # advisory lock (on the admin database) while a template is built


@pytest.fixture(scope="session")
def postgres_template() -> str:
    """The name of a migrated PostgreSQL database that tests clone (built once for all processes:
    the first one to get here builds it under an advisory lock, the others find it)."""
    _require_postgres()
    name = f"tether_template_{_migrations_digest()}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute("SELECT pg_advisory_lock(%s)", (_TEMPLATE_LOCK,))
        try:
            if admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
                building = f"{name}_building"
                admin.execute(f'DROP DATABASE IF EXISTS "{building}" WITH (FORCE)')
                admin.execute(f'CREATE DATABASE "{building}"')
                _migrate(_postgres_url(building))
                admin.execute(f'ALTER DATABASE "{building}" RENAME TO "{name}"')
        finally:
            admin.execute("SELECT pg_advisory_unlock(%s)", (_TEMPLATE_LOCK,))
    return name


def _create_database(template: str | None) -> Iterator[str]:
    name = f"tether_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        if template is None:
            admin.execute(f'CREATE DATABASE "{name}"')
        else:
            _clone(admin, template, name)
    try:
        yield _postgres_url(name)
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _clone(admin: psycopg.Connection[Any], template: str, name: str) -> None:
    """CREATE DATABASE ... TEMPLATE refuses while another session is connected to the template (only
    ever for a moment: nothing uses it); retry that, bounded."""
    deadline = time.monotonic() + 60
    while True:
        try:
            admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
            return
        except psycopg.errors.ObjectInUse:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.fixture
def postgres_url(postgres_template: str) -> Iterator[str]:
    """A PostgreSQL database of this test's own, already migrated (a copy of the template; dropped
    afterwards)."""
    yield from _create_database(postgres_template)


@pytest.fixture
def empty_postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database (for tests of migrating a new database; dropped afterwards)."""
    _require_postgres()
    yield from _create_database(None)


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path, clock: TestClock) -> AsyncIterator[Store]:
    """A migrated store on SQLite and on PostgreSQL, on the test clock."""
    if request.param == "sqlite":
        url = os.environ["TETHER_DATABASE_URL"]
    else:
        url = request.getfixturevalue("postgres_url")
    opened = await Store.open(url, clock=clock)
    try:
        yield opened
    finally:
        await opened.close()


REDIS_URL = os.environ.get("TETHER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
_REDIS_DATABASES = range(1, 15)  # of the 16 a default server has: 0 is the one apps use by default,
_REDIS_LOCKS = 15  # and 15 holds the locks that hand out the others (nothing ever flushes it)


def _redis_db_url(number: int) -> str:
    """REDIS_URL with another database number (the URL's path wins over a `db=` argument)."""
    return urlsplit(REDIS_URL)._replace(path=f"/{number}").geturl()


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A Redis database of this test's own (one of 1-14, taken with a lock in database 15 that other
    test processes and other copies of the suite respect), empty at the start and flushed afterwards."""
    import redis

    client = redis.Redis.from_url(_redis_db_url(_REDIS_LOCKS), socket_connect_timeout=3)
    try:
        client.ping()
    except redis.RedisError as exc:
        if SERVICES_REQUIRED:
            pytest.fail(f"Redis is required (TETHER_REQUIRE_SERVICES=1) but unreachable: {exc}")
        pytest.skip(f"Redis not reachable at {REDIS_URL}: {exc}")
    token = uuid.uuid4().hex

    def take() -> int | None:
        for number in _REDIS_DATABASES:
            # Expires by itself if this process dies; no test holds a database for 30 minutes.
            if client.set(f"tether-test:redis-db:{number}", token, nx=True, ex=1800):
                return number
        return None

    number = wait_until(take, timeout=600, interval=0.2, message="a free Redis test database")
    own = redis.Redis.from_url(_redis_db_url(number), socket_connect_timeout=3)
    try:
        own.flushdb()
        yield _redis_db_url(number)
    finally:
        own.flushdb()
        own.close()
        if client.get(f"tether-test:redis-db:{number}") == token.encode():
            client.delete(f"tether-test:redis-db:{number}")
        client.close()


async def bare_release(store: Store) -> ReleaseRecord:
    """A release row with an empty snapshot: enough for store tests that never load an agent."""
    return await store.add_release(
        version="agent-1", agent_name="agent", kind="release", content_hash="0" * 64, snapshot={"config": {}}
    )
