"""Read-only run listings straight from a project's SQLite file with the stdlib `sqlite3` driver.

`tether runs list` is typed often and reads one small page, yet importing SQLAlchemy, pydantic and
the mapped tables cost most of a second, far more than the query. This module answers that page
without them, for the common case only: a SQLite database that exists and is already at the newest
migration. Anything else (PostgreSQL, a missing or older database, any SQLite error) answers None,
and the caller takes the full `Store` path, which creates, migrates or reports the problem as usual.
The file is opened read-only, so this path can never change a database.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from tether.store.revisions import head_revisions

_COLUMNS = (
    "id, status, origin, release_version, user_id, steps_used, input_tokens, output_tokens, "
    "estimated_cost_usd, created_at"
)


@dataclass(frozen=True, slots=True)
class RunLine:
    """The columns of one run a listing shows (the same names as on `RunRecord`)."""

    id: str
    status: str
    origin: str
    release_version: str
    user_id: str
    steps_used: int
    input_tokens: int
    output_tokens: int
    estimated_cost_usd: float
    created_at: datetime


def project_database(project: Path) -> Path:
    """Where a project keeps its SQLite database when TETHER_DATABASE_URL is unset (as db.default_url)."""
    return project.resolve() / ".tether" / "tether.db"


def sqlite_file(url: str) -> Path | None:
    """The file of a plain `sqlite[+driver]:///PATH` URL; None for anything else (no query options)."""
    scheme, sep, rest = url.partition(":///")
    if not sep or scheme.split("+")[0] != "sqlite" or not rest or "?" in rest or rest == ":memory:":
        return None
    return Path(rest)


def recent_runs(
    database: Path, *, status: str | None, origins: Collection[str] | None, limit: int
) -> list[RunLine] | None:
    """The newest LIMIT runs, newest first (as `Store.list_runs`); None when this path cannot answer."""
    if not database.is_file():
        return None
    query = f"SELECT {_COLUMNS} FROM runs"
    where: list[str] = []
    params: list[object] = []
    if origins is not None:
        where.append(f"origin IN ({', '.join('?' for _ in origins)})")
        params.extend(origins)
    if status is not None:
        where.append("status = ?")
        params.append(status)
    if where:
        query += " WHERE " + " AND ".join(where)
    query += " ORDER BY created_at DESC, id DESC LIMIT ?"
    params.append(limit)
    try:
        connection = sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True, timeout=30)
        try:
            stamped = {row[0] for row in connection.execute("SELECT version_num FROM alembic_version")}
            if stamped != head_revisions():
                return None
            rows = connection.execute(query, params).fetchall()
        finally:
            connection.close()
        return [_line(row) for row in rows]
    except (sqlite3.Error, ValueError, TypeError):
        return None


def _line(row: tuple[object, ...]) -> RunLine:
    """One row as a RunLine; a column of an unexpected type raises TypeError (caller falls back)."""
    (run_id, status, origin, version, user, steps, tokens_in, tokens_out, cost, created) = row
    return RunLine(
        id=_str(run_id),
        status=_str(status),
        origin=_str(origin),
        release_version=_str(version),
        user_id=_str(user),
        steps_used=_int(steps),
        input_tokens=_int(tokens_in),
        output_tokens=_int(tokens_out),
        estimated_cost_usd=float(_int(cost) if isinstance(cost, int) else _float(cost)),
        created_at=datetime.fromisoformat(_str(created)).replace(tzinfo=UTC),
    )


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected text, found {value!r}")
    return value


def _int(value: object) -> int:
    if not isinstance(value, int):
        raise TypeError(f"expected an integer, found {value!r}")
    return value


def _float(value: object) -> float:
    if not isinstance(value, float):
        raise TypeError(f"expected a number, found {value!r}")
    return value
