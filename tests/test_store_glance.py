"""The stdlib read path of `tether runs list` answers exactly what the Store answers, or steps aside."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from conftest import bare_release
from timing import TestClock

from tether.agent.project import CONFIG_FILE
from tether.cli.common import PRODUCTION_ORIGIN_NAMES, PROJECT_CONFIG_FILE, glance_runs
from tether.store import glance
from tether.store.records import PRODUCTION_ORIGINS, RunOrigin, RunRecord, RunStatus
from tether.store.repository import Store


def _shown(record: RunRecord) -> glance.RunLine:
    return glance.RunLine(
        id=record.id,
        status=record.status,
        origin=record.origin,
        release_version=record.release_version,
        user_id=record.user_id,
        steps_used=record.steps_used,
        input_tokens=record.input_tokens,
        output_tokens=record.output_tokens,
        estimated_cost_usd=record.estimated_cost_usd,
        created_at=record.created_at,
    )


async def test_every_filter_lists_what_the_store_lists(tmp_path: Path, clock: TestClock) -> None:
    path = tmp_path / "runs.db"
    store = await Store.open(f"sqlite+aiosqlite:///{path}", clock=clock)
    try:
        release = await bare_release(store)
        origins = [RunOrigin.API, RunOrigin.EVAL, RunOrigin.CLI, RunOrigin.DRILL]
        for i in range(12):
            run = await store.create_run(
                origin=origins[i % 4], release=release, user_id=f"u{i}", input=f"task {i}"
            )
            if i % 3 == 0:
                await store.request_cancel(run.id)
            if i % 5 != 0:  # some runs share a creation time: the id breaks the tie
                clock.advance(1)
        for status in (None, RunStatus.QUEUED, RunStatus.CANCELLED, RunStatus.FAILED):
            for chosen in (PRODUCTION_ORIGINS, None, (RunOrigin.EVAL,)):
                for limit in (1, 5, 50):
                    expected = await store.list_runs(status=status, origins=chosen, limit=limit)
                    names = None if chosen is None else [str(o) for o in chosen]
                    got = glance.recent_runs(
                        path, status=None if status is None else str(status), origins=names, limit=limit
                    )
                    assert got == [_shown(r) for r in expected], (status, chosen, limit)
    finally:
        await store.close()


async def test_a_database_behind_the_newest_migration_is_left_to_the_store(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    store = await Store.open(f"sqlite+aiosqlite:///{path}")
    await store.close()
    assert glance.recent_runs(path, status=None, origins=None, limit=5) == []
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE alembic_version SET version_num = '0001'")
    assert glance.recent_runs(path, status=None, origins=None, limit=5) is None


def test_anything_but_an_existing_sqlite_file_is_left_to_the_store(tmp_path: Path) -> None:
    assert glance.recent_runs(tmp_path / "missing.db", status=None, origins=None, limit=5) is None
    (tmp_path / "junk.db").write_text("not a database")
    assert glance.recent_runs(tmp_path / "junk.db", status=None, origins=None, limit=5) is None
    assert glance.sqlite_file("postgresql+psycopg://u@h/db") is None
    assert glance.sqlite_file("sqlite+aiosqlite:///:memory:") is None
    assert glance.sqlite_file("sqlite:///x.db?mode=ro") is None
    assert glance.sqlite_file("sqlite+aiosqlite:////abs/t.db") == Path("/abs/t.db")


def test_the_cli_names_the_production_origins_as_the_store_does() -> None:
    assert tuple(str(o) for o in PRODUCTION_ORIGINS) == PRODUCTION_ORIGIN_NAMES


async def test_a_folder_without_tether_toml_is_left_to_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`runs list` outside a project must say so (the Store path), even beside a current database."""
    assert PROJECT_CONFIG_FILE == CONFIG_FILE
    for name in list(os.environ):
        if name.upper().startswith("TETHER_"):
            monkeypatch.delenv(name)
    database = glance.project_database(tmp_path)
    database.parent.mkdir()
    store = await Store.open(f"sqlite+aiosqlite:///{database}")
    await store.close()
    (tmp_path / CONFIG_FILE).write_text("")
    assert glance_runs(tmp_path, None, None, 20) == []  # a project: the light path answers
    (tmp_path / CONFIG_FILE).unlink()
    assert glance_runs(tmp_path, None, None, 20) is None
