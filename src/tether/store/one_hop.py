"""SQLite: the statements of one checkpoint in one trip to the connection's thread.

aiosqlite runs every driver call (cursor, execute, fetch, close) on the connection's own thread
and wakes the event loop for each answer. Through SQLAlchemy's async layer a three-statement
checkpoint made about a dozen such trips, and those trips (futures, self-pipe wake-ups, greenlet
switches, execution contexts) were most of a step's CPU. Here the hot statements are compiled
once, with SQLAlchemy's own SQL and bind processors (so values are stored exactly as Core stores
them), and the whole transaction (`BEGIN IMMEDIATE`, the statements, `COMMIT`, or rollback on
any error) runs as one function on that thread, on the writer connection (`db.create_writer`),
checked out of its pool of one like every other write.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Column
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import UpdateBase

Processor = Callable[[Any], Any]


@dataclass(frozen=True)
class Prepared:
    """A Core statement compiled for one dialect: its SQL, positional names and bind processors."""

    sql: str
    names: tuple[str, ...]
    processors: tuple[Processor | None, ...]
    defaults: Mapping[str, Any]
    """Values the statement carries itself (literals SQLAlchemy turned into bound parameters)."""
    generated: Mapping[str, Callable[[], Any]]
    """Client-side column defaults (`default=0`, `default=list`) of the columns not given."""

    def bind(self, params: Mapping[str, Any]) -> tuple[Any, ...]:
        """The positional values for `params`, processed as SQLAlchemy would process them."""
        values: list[Any] = []
        for name, process in zip(self.names, self.processors, strict=True):
            if name in params:
                value = params[name]
            elif name in self.generated:
                value = self.generated[name]()
            else:
                value = self.defaults[name]
            values.append(value if process is None else process(value))
        return tuple(values)

    def position(self, name: str) -> int:
        return self.names.index(name)


@functools.lru_cache(maxsize=256)
def prepare(statement: UpdateBase, dialect: Dialect, column_keys: tuple[str, ...] | None = None) -> Prepared:
    """Compile `statement` once (per dialect and, for an INSERT, per set of columns)."""
    keys = list(column_keys) if column_keys else None
    compiled: SQLCompiler = statement.compile(dialect=dialect, column_keys=keys)
    names = tuple(compiled.positiontup or ())
    # SQLAlchemy's own processors, as its execution context applies them (none of these statements
    # binds a tuple, the only case where a processor is a sequence)
    processors = cast(Mapping[str, Processor], compiled._bind_processors)
    defaults = compiled.construct_params(_check=False)
    generated: dict[str, Callable[[], Any]] = {}
    prefetched = [(c, c.default) for c in compiled.insert_prefetch]
    prefetched += [(c, c.onupdate) for c in compiled.update_prefetch]
    for column, default in prefetched:
        if default is None or not (default.is_scalar or default.is_callable):
            raise ValueError(f"{column} has a default this path cannot compute; use SQLAlchemy for it")
        generated[column.key] = _generator(default)
    return Prepared(
        sql=compiled.string,
        names=names,
        processors=tuple(processors.get(name) for name in names),
        defaults=dict(defaults or {}),
        generated=generated,
    )


def _generator(default: Any) -> Callable[[], Any]:
    """A zero-argument maker of a column default's value (SQLAlchemy's callables take a context
    that defaults such as `list`, `dict` or a constant never look at)."""
    if default.is_scalar:
        value = default.arg
        return lambda: value
    make = default.arg
    return lambda: make(None)


@dataclass(frozen=True)
class Checkpoint:
    """One fenced write: an UPDATE ... RETURNING that must match a row, then statements, then events.

    `events` are bound with a placeholder sequence number at `seq_at`; the thread numbers them
    from the run's new `event_seq`, column `seq_column` of the returned row."""

    fence: tuple[str, tuple[Any, ...]]
    then: Sequence[tuple[str, tuple[Any, ...]]]
    events_sql: str
    events: Sequence[tuple[Any, ...]]
    seq_at: int
    seq_column: int = 0
    run_at: int | None = None
    """Where the events' run id goes, when it comes from the returned row (a claim picks the run)."""
    id_column: int = 0
    follow: Callable[[tuple[Any, ...]], Sequence[tuple[str, tuple[Any, ...]]]] | None = None
    """Statements that depend on the returned row (a finished run's outbox rows), made on the
    connection's thread once it is known; still the same transaction and the same trip."""


def _transaction(connection: sqlite3.Connection, body: Callable[[sqlite3.Cursor], Any]) -> Any:
    """Runs on the connection's thread: `BEGIN IMMEDIATE` (the file's write lock up front, as
    `db.create_writer` does), `body`, `COMMIT`; a rollback on any error. A body that answers None
    wrote nothing and is rolled back."""
    cursor = connection.cursor()
    try:
        cursor.execute("BEGIN IMMEDIATE")
        try:
            result = body(cursor)
            cursor.execute("COMMIT" if result is not None else "ROLLBACK")
        except BaseException:
            if connection.in_transaction:
                connection.rollback()
            raise
        return result
    finally:
        cursor.close()


def _checkpoint(work: Checkpoint, cursor: sqlite3.Cursor) -> tuple[Any, ...] | None:
    row = cursor.execute(*work.fence).fetchone()
    if row is None:  # the fence matched nothing: the lease is lost (or nothing was claimable)
        return None
    for sql, values in work.then:
        cursor.execute(sql, values)
    if work.events:
        first = int(row[work.seq_column]) - len(work.events) + 1
        rows = [_put(values, work.seq_at, first + i) for i, values in enumerate(work.events)]
        if work.run_at is not None:
            rows = [_put(values, work.run_at, row[work.id_column]) for values in rows]
        cursor.executemany(work.events_sql, rows)
    if work.follow is not None:
        for sql, values in work.follow(tuple(row)):
            cursor.execute(sql, values)
    return tuple(row)


def _put(values: tuple[Any, ...], at: int, value: Any) -> tuple[Any, ...]:
    return (*values[:at], value, *values[at + 1 :])


def _batch(statements: Sequence[tuple[str, Sequence[tuple[Any, ...]]]], cursor: sqlite3.Cursor) -> bool:
    for sql, rows in statements:
        cursor.executemany(sql, rows)
    return True


async def _trip(engine: AsyncEngine, body: Callable[[sqlite3.Cursor], Any], sql: str) -> Any:
    """`body` as one transaction on `engine`'s (the writer's) connection, in one trip to its
    aiosqlite thread.

    Driver errors come back wrapped as SQLAlchemy wraps them (IntegrityError, OperationalError),
    so callers and the retry policy (`tether.store.faults`) see what they always saw."""
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        driver: Any = raw.driver_connection  # aiosqlite.Connection
        try:
            return await driver._execute(_transaction, driver._conn, body)
        except sqlite3.Error as exc:
            raise DBAPIError.instance(sql, None, exc, sqlite3.Error) from exc


async def run(engine: AsyncEngine, work: Checkpoint) -> tuple[Any, ...] | None:
    """Apply `work` in one transaction, one trip; None (nothing written) when the fence matched
    no row."""
    result: tuple[Any, ...] | None = await _trip(engine, functools.partial(_checkpoint, work), work.fence[0])
    return result


async def write(engine: AsyncEngine, statements: Sequence[tuple[str, Sequence[tuple[Any, ...]]]]) -> None:
    """Each statement with each of its rows (executemany), in one transaction, one trip."""
    if statements:
        await _trip(engine, functools.partial(_batch, statements), statements[0][0])


@functools.lru_cache(maxsize=64)
def result_processors(columns: tuple[Column[Any], ...], dialect: Dialect) -> tuple[Processor | None, ...]:
    """SQLAlchemy's own result processors for `columns` (text to datetime, JSON, 0/1 to bool)."""
    return tuple(column.type._cached_result_processor(dialect, None) for column in columns)


def processed(row: Sequence[Any], columns: tuple[Column[Any], ...], dialect: Dialect) -> dict[str, Any]:
    """A RETURNING row of `columns` as SQLAlchemy would hand it back, by column name."""
    processors = result_processors(columns, dialect)
    return {
        column.name: value if process is None else process(value)
        for column, process, value in zip(columns, processors, row, strict=True)
    }
