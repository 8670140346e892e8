"""The API during a database outage (503 with Retry-After), readiness on a read-only database, and
outage logging that summarises instead of flooding (API, Redis notifications)."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import psycopg
import pytest
from conftest import REDIS_URL
from fastapi.testclient import TestClient
from fault_helpers import starting_up
from sqlalchemy.ext.asyncio import create_async_engine

from tether.api.app import ServiceOptions, create_app
from tether.api.auth import issue_key
from tether.rollout.releases import working_copy_release
from tether.runtime.notify import RedisNotifier
from tether.settings import Settings
from tether.store import db
from tether.store.repository import Store


def _key() -> str:
    async def create() -> str:
        store = await Store.open(os.environ["TETHER_DATABASE_URL"])
        try:
            return (await issue_key(store, user_id="u1", tenant_id="t1", scopes=["runs:read"]))[1]
        finally:
            await store.close()

    return asyncio.run(create())


def test_a_database_outage_is_a_503_with_retry_after_logged_once(
    example_project: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key = _key()
    app = create_app(ServiceOptions(project=example_project, settings=Settings()))
    with TestClient(app) as client:  # raises what the server would re-raise into its log
        store = app.state.tether.store

        async def down(run_id: str) -> None:
            raise starting_up()

        store.get_run = down  # what every query raises while PostgreSQL restarts
        answers = [client.get("/v1/runs/run_x", headers={"Authorization": f"Bearer {key}"}) for _ in range(5)]
    for answer in answers:
        assert answer.status_code == 503, answer.text
        assert answer.headers["Retry-After"] == "5"
        assert answer.json() == {"detail": "the database is unavailable right now; retry shortly"}
    outage_lines = [r for r in caplog.records if "database, as the API sees it" in r.getMessage()]
    assert len(outage_lines) == 1 and "starting up" in outage_lines[0].getMessage()
    assert not [r for r in caplog.records if "unhandled error" in r.getMessage()]


async def test_readiness_reports_a_read_only_sqlite_file(isolated_env: Path) -> None:
    path = isolated_env / "tether.db"
    await (await Store.open(f"sqlite+aiosqlite:///{path}")).close()
    engine = create_async_engine(f"sqlite+aiosqlite:///file:{path}?mode=ro&uri=true")
    try:
        schema, writes = await db.readiness(engine)
    finally:
        await engine.dispose()
    assert schema == "current"
    assert writes.startswith("refused: ") and "readonly" in writes


def test_readyz_is_503_on_a_read_only_database_and_runs_no_migration_code(
    postgres_url: str,
    example_project: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def prepare() -> None:  # a migrated database with the release and a live worker recorded
        store = await Store.open(postgres_url)
        try:
            await working_copy_release(store, example_project)
            await store.worker_heartbeat("w1", concurrency=1, active_runs=0)
        finally:
            await store.close()

    asyncio.run(prepare())
    database = postgres_url.rsplit("/", 1)[1]
    admin_url = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin_url, autocommit=True) as admin:  # e.g. a standby, or maintenance
        admin.execute(f'ALTER DATABASE "{database}" SET default_transaction_read_only = on')
    monkeypatch.setenv("TETHER_DATABASE_URL", postgres_url)
    monkeypatch.setenv("TETHER_WORKER_FRESH_S", "3600")
    monkeypatch.setenv("TETHER_UI_SESSION_SECRET", "s" * 32)  # PostgreSQL needs a shared dashboard secret
    caplog.set_level(logging.INFO)
    app = create_app(ServiceOptions(project=example_project, settings=Settings()))
    with TestClient(app) as client:
        caplog.clear()
        answers = [client.get("/readyz") for _ in range(3)]
    for answer in answers:
        assert answer.status_code == 503, answer.text
        checks = answer.json()["checks"]
        assert checks["database"] == "ok" and checks["migrations"] == "current" and checks["workers"] == "1"
        assert checks["writes"].startswith("refused: ReadOnlySqlTransaction")
    assert not [r for r in caplog.records if r.name.startswith("alembic")]


async def test_redis_publish_failures_are_logged_once_per_outage(caplog: pytest.LogCaptureFixture) -> None:
    import redis.asyncio as redis

    notifier = RedisNotifier("redis://127.0.0.1:1/0")  # nothing listens there: connection refused
    try:
        for _ in range(30):
            await notifier.publish("run_x")
        lines = [r.getMessage() for r in caplog.records if r.name == "tether.notify"]
        assert len(lines) == 1 and lines[0].startswith("publishing run notifications to Redis failing")

        healthy = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
        try:
            await healthy.ping()
        except redis.RedisError as exc:
            pytest.skip(f"Redis not reachable at {REDIS_URL}: {exc}")
        await notifier._redis.aclose()
        notifier._redis = healthy  # Redis is back
        await notifier.publish("run_x")
        lines = [r.getMessage() for r in caplog.records if r.name == "tether.notify"]
        assert len(lines) == 2 and "recovered after" in lines[1] and "(30 failures)" in lines[1]
    finally:
        await notifier.close()


async def test_span_writes_failing_during_an_outage_are_logged_once(
    isolated_env: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from tether.observe.service import Telemetry

    store = await Store.open(os.environ["TETHER_DATABASE_URL"])
    telemetry = Telemetry(store, Settings())
    try:
        observer = telemetry.observer
        assert observer.tracing is not None
        stored = observer.tracing.stored
        real_flush = stored.flush

        async def down(*_: object) -> None:
            raise starting_up()

        monkeypatch.setattr(stored, "flush", down)
        for _ in range(10):
            await observer.flush()
        monkeypatch.setattr(stored, "flush", real_flush)  # the database is back
        await observer.flush()
    finally:
        await telemetry.close()
        await store.close()
    lines = [r.getMessage() for r in caplog.records if "storing spans" in r.getMessage()]
    assert len(lines) == 2
    assert "failing: CannotConnectNow" in lines[0] and "recovered after" in lines[1]
    assert "(10 failures)" in lines[1]
