"""Engines and migrations. SQLite (embedded default) and PostgreSQL speak through the same code."""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filelock import AsyncFileLock
from sqlalchemy import Connection, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tether.store.faults import describe
from tether.store.revisions import MIGRATIONS as MIGRATIONS
from tether.store.revisions import head_revisions as head_revisions

if TYPE_CHECKING:
    from alembic.config import Config


class DatabaseError(RuntimeError):
    """The database cannot be reached or its URL is wrong; the message says which."""


def default_url(project_dir: Path) -> str:
    state = project_dir.resolve() / ".tether"
    state.mkdir(parents=True, exist_ok=True)
    return f"sqlite+aiosqlite:///{state / 'tether.db'}"


def create_engine(url: str) -> AsyncEngine:
    try:
        parsed = make_url(url)
    except Exception:
        raise DatabaseError(f"not a database URL: {url!r}") from None
    if parsed.drivername in ("sqlite", "sqlite+pysqlite"):
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite":
        # Long-lived pooled connections (each aiosqlite connection owns a thread, so opening one per
        # call cost a thread start); WAL lets these readers and one writer share the file.
        engine = create_async_engine(parsed, pool_size=4, max_overflow=8, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(parsed, pool_pre_ping=True)


def create_writer(engine: AsyncEngine) -> AsyncEngine | None:
    """On SQLite, the one connection through which every write of this process goes; None elsewhere.

    SQLite admits one writer at a time anyway: queueing writes in-process (on the pool) instead of
    in SQLite's busy loop keeps them in order and cheap, and leaves the read connections free, so
    reads never wait behind a write. Each write transaction starts with `BEGIN IMMEDIATE`: it takes
    the file's write lock up front (waiting out other processes with the busy timeout) instead of
    failing when a transaction that began by reading tries to write.
    """
    if engine.dialect.name != "sqlite":
        return None
    writer = create_async_engine(
        engine.url,
        pool_size=1,
        max_overflow=0,
        pool_timeout=120,
        connect_args={"timeout": 30},
    )
    event.listen(writer.sync_engine, "connect", _sqlite_writer_pragmas)
    event.listen(writer.sync_engine, "begin", _begin_immediate)
    return writer


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")  # every commit is on disk before it returns
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_writer_pragmas(dbapi_connection: Any, record: Any) -> None:
    _sqlite_pragmas(dbapi_connection, record)
    dbapi_connection.isolation_level = None  # the driver must not BEGIN on its own: `_begin_immediate` does


def _begin_immediate(connection: Connection) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _alembic_config(connection: Connection) -> Config:
    # Alembic is imported only when a schema is checked or migrated: a process whose database is
    # already current (every CLI command after the first) never pays for it.
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _upgrade(connection: Connection) -> None:
    from alembic import command

    command.upgrade(_alembic_config(connection), "head")


def _is_current(connection: Connection) -> bool:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    heads = set(ScriptDirectory.from_config(_alembic_config(connection)).get_heads())
    return set(MigrationContext.configure(connection).get_current_heads()) == heads


_MIGRATION_LOCK = 7_461_726_572  # any constant; PostgreSQL advisory lock id for migrations


_process_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


@contextlib.asynccontextmanager
async def _one_migrator(engine: AsyncEngine) -> AsyncIterator[None]:
    """Alembic's command API keeps global state, so one migration per process at a time; and on a
    SQLite file, one process at a time (PostgreSQL also takes an advisory lock in the transaction)."""
    lock = _process_locks.setdefault(asyncio.get_running_loop(), asyncio.Lock())
    async with lock:
        database = engine.url.database
        if engine.dialect.name == "sqlite" and database and database != ":memory:":
            async with AsyncFileLock(f"{database}.migrate.lock", thread_local=False):
                yield
        else:
            yield


async def stamped_at_head(engine: AsyncEngine) -> bool:
    """Whether the database records exactly the newest migration(s): the cheap check that lets a
    current database skip Alembic. Any doubt (no table yet, unreadable) answers False."""
    heads = head_revisions()
    if not heads:
        return False
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(text("SELECT version_num FROM alembic_version"))
            return {row[0] for row in rows} == heads
    except SQLAlchemyError:
        return False


async def upgrade(engine: AsyncEngine) -> None:
    """Apply every pending migration (a no-op when the schema is current).

    Processes starting together (an API and its workers) must not migrate at once.
    """
    if await stamped_at_head(engine):
        return
    async with _one_migrator(engine):
        await _upgrade_with_retry(engine)


async def _upgrade_with_retry(engine: AsyncEngine) -> None:
    for attempt in range(3):
        try:
            async with engine.begin() as connection:
                if connection.dialect.name == "postgresql":
                    await connection.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK}
                    )
                await connection.run_sync(_upgrade)
            return
        except OperationalError:
            if await is_current(engine):
                return
            if attempt == 2:
                raise


async def is_current(engine: AsyncEngine) -> bool:
    async with engine.connect() as connection:
        return await connection.run_sync(_is_current)


async def readiness(engine: AsyncEngine) -> tuple[str, str]:
    """(schema, writes) for /readyz: cheap plain SQL, no Alembic machinery (and its log lines).

    Writability is proven by an UPDATE that changes nothing, in a transaction rolled back: a
    read-only SQLite file or a read-only PostgreSQL (standby, default_transaction_read_only)
    refuses it, while serving reads happily.
    """
    async with engine.connect() as connection:
        transaction = await connection.begin()
        try:
            stored = set((await connection.scalars(text("SELECT version_num FROM alembic_version"))).all())
            schema = "current" if stored == head_revisions() else "behind"
            try:
                await connection.execute(text("UPDATE alembic_version SET version_num = version_num"))
            except DBAPIError as exc:
                if exc.connection_invalidated:  # the database went away: not a read-only answer
                    raise
                return schema, f"refused: {describe(exc)}"
        finally:
            await transaction.rollback()
    return schema, "ok"
