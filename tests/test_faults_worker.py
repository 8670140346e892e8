"""A worker polling a database that is down logs the outage once, not once per poll."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import pytest
from fault_helpers import FlakyStore, starting_up, wait_for

from tether.runtime.service import Runtime
from tether.runtime.worker import Worker
from tether.settings import Settings


async def test_claim_failures_during_an_outage_are_logged_once_with_a_count(
    isolated_env: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tether.worker")
    store = await FlakyStore.open(os.environ["TETHER_DATABASE_URL"])
    try:
        runtime = Runtime(store, Settings(), data_dir=isolated_env / "data")
        store.fail("claim_run", starting_up)
        worker = Worker(runtime, poll_s=0.01)
        task = asyncio.create_task(worker.run())
        await wait_for(lambda: store.calls.count("claim_run") >= 25, what="many failed polls")
        store.heal()
        failed = store.calls.count("claim_run")
        await wait_for(lambda: store.calls.count("claim_run") > failed, what="a poll after recovery")
        worker.stop()
        await task
    finally:
        await store.close()

    records = [r for r in caplog.records if r.name == "tether.worker" and "claiming runs" in r.getMessage()]
    assert [r.levelno for r in records] == [logging.WARNING, logging.WARNING]
    assert "failing: CannotConnectNow: the database system is starting up" in records[0].getMessage()
    assert records[0].exc_info is not None  # the first failure keeps its traceback
    assert "recovered after" in records[1].getMessage() and f"({failed} failures)" in records[1].getMessage()
    assert sum(1 for r in caplog.records if r.exc_info) == 1
