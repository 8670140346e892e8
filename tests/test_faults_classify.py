"""Which database errors count as an outage (retry, hand the run back) and which as a bug (fail)."""

from __future__ import annotations

import sqlite3

import psycopg
import pytest
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from tether.store.faults import describe, is_transient


def _wrapped(cls: type[Exception], orig: Exception) -> Exception:
    return cls("SELECT 1", {}, orig)


@pytest.mark.parametrize(
    "error",
    [
        _wrapped(OperationalError, psycopg.errors.CannotConnectNow("the database system is starting up")),
        _wrapped(OperationalError, psycopg.errors.AdminShutdown("terminating connection")),
        _wrapped(OperationalError, psycopg.OperationalError("connection refused")),
        _wrapped(OperationalError, psycopg.errors.SerializationFailure("could not serialize access")),
        _wrapped(OperationalError, psycopg.errors.ReadOnlySqlTransaction("read-only transaction")),
        _wrapped(OperationalError, sqlite3.OperationalError("database is locked")),
        _wrapped(OperationalError, sqlite3.OperationalError("attempt to write a readonly database")),
        ConnectionResetError("reset by peer"),
    ],
)
def test_outages_are_transient(error: Exception) -> None:
    assert is_transient(error)


@pytest.mark.parametrize(
    "error",
    [
        _wrapped(IntegrityError, psycopg.errors.UniqueViolation("duplicate key")),
        _wrapped(ProgrammingError, psycopg.errors.UndefinedColumn("no such column")),
        _wrapped(OperationalError, sqlite3.OperationalError("no such table: runs")),
        ValueError("a bug"),
    ],
)
def test_bugs_are_not_transient(error: Exception) -> None:
    assert not is_transient(error)


def test_describe_gives_the_driver_message_without_sql() -> None:
    error = _wrapped(
        OperationalError, psycopg.errors.CannotConnectNow("the database system is starting up\nDETAIL")
    )
    assert describe(error) == "CannotConnectNow: the database system is starting up"
