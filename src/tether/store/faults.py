"""Which database errors are an outage (wait and retry) and which are a bug (fail loudly).

A PostgreSQL restart, a dropped connection, a serialization conflict or a busy SQLite file goes
away by itself: callers retry, or hand the run back so a worker resumes it from its checkpoint.
Anything else is a real error and must surface.
"""

from __future__ import annotations

import sqlite3
import sys

from sqlalchemy import exc as sa_exc

# PostgreSQL SQLSTATEs that say "not now" rather than "never": serialization failure, deadlock,
# too many connections, the server shutting down / crashing / starting up, and a read-only
# transaction (a standby, or default_transaction_read_only during maintenance).
_TRANSIENT_SQLSTATES = {"40001", "40P01", "53300", "57P01", "57P02", "57P03", "25006"}
_TRANSIENT_SQLSTATE_CLASSES = ("08",)  # connection exceptions
_TRANSIENT_SQLITE_WORDS = ("locked", "busy", "readonly", "read-only", "disk i/o", "unable to open")


def is_transient(exc: BaseException) -> bool:
    """True if `exc` (or what it wraps) is a database outage rather than a bug."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if _transient_here(current):
            return True
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else current.__cause__
    return False


def _transient_here(exc: BaseException) -> bool:
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, sa_exc.TimeoutError | sa_exc.DisconnectionError):  # pool exhausted / lost
        return True
    # psycopg is looked up, not imported: a process that never loaded it (SQLite) has no psycopg
    # errors to classify, and importing it costs the CLI a tenth of a second at start-up.
    psycopg = sys.modules.get("psycopg")
    if psycopg is not None and isinstance(exc, psycopg.Error):
        state = exc.sqlstate
        if state is None:  # no server answer at all: refused, reset, closed unexpectedly
            return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)
        return state in _TRANSIENT_SQLSTATES or state.startswith(_TRANSIENT_SQLSTATE_CLASSES)
    if isinstance(exc, sqlite3.OperationalError):
        text = str(exc).lower()
        return any(word in text for word in _TRANSIENT_SQLITE_WORDS)
    return isinstance(exc, ConnectionError)


def describe(exc: BaseException) -> str:
    """One line for a log: the driver's first line, without SQL or parameters."""
    orig = getattr(exc, "orig", None)
    source = orig if isinstance(orig, BaseException) else exc
    first = (str(source).strip().splitlines() or [""])[0]
    return f"{type(source).__name__}: {first}" if first else type(source).__name__
