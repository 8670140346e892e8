"""`tether run` and `tether approve` with another process executing runs, and the user they run for."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest
from conftest import Cli
from service_helpers import Fleet

from tether.store.repository import Store

ORDER_QUESTION = "Where is my order 12345?"
REFUND_REQUEST = "I want a refund for order 12346"


def test_run_without_a_user_is_refused_and_says_how(cli: Cli, example_project: Path) -> None:
    result = cli("run", "--project", example_project, ORDER_QUESTION, expect=2)
    assert "--user" in result.output and "TETHER_USER" in result.output
    assert "Traceback" not in result.output
    listed = cli.json("runs", "list", "--project", example_project)
    assert listed == []  # nothing was queued as some default user


def test_run_takes_its_user_from_tether_user(
    cli: Cli, example_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TETHER_USER", "u1")
    result = cli("run", "--project", example_project, ORDER_QUESTION)
    assert "for user u1" in result.output  # said, not only in the table
    run = cli.json("runs", "list", "--project", example_project)[0]
    assert (run["user_id"], run["status"]) == ("u1", "succeeded")
    assert "1Z999AA10123456784" in run["output"]  # u1 owns order 12345: the agent found it


def test_reject_needs_a_reason(cli: Cli, example_project: Path) -> None:
    parked = cli.json("run", "--project", example_project, "--user", "u1", REFUND_REQUEST)
    assert parked["status"] == "waiting_for_approval"
    result = cli("approve", parked["run_id"], "--project", example_project, "--reject", expect=2)
    assert "--reason" in result.output
    still = cli.json("runs", "show", parked["run_id"], "--project", example_project)
    assert still["pending_approval"] is not None  # nothing was decided
    cli("approve", parked["run_id"], "--project", example_project, "--reject", "--reason", "no receipt")


def _live_workers(url: str) -> list[str]:
    async def read() -> list[str]:
        store = await Store.open(url)
        try:
            return [w.id for w in await store.live_workers(within_s=30)]
        finally:
            await store.close()

    return asyncio.run(read())


def _claimed_by(url: str, run_id: str) -> list[str]:
    """Which lease owners claimed the run (from its `running` status events)."""

    async def read() -> list[str]:
        store = await Store.open(url)
        try:
            events = await store.list_events(run_id)
        finally:
            await store.close()
        return [e.data["worker"] for e in events if e.type == "status" and "worker" in e.data]

    return asyncio.run(read())


def test_run_and_approve_wait_for_the_worker_of_another_process(
    cli: Cli, example_project: Path, tmp_path: Path
) -> None:
    """With `tether worker` (or `tether serve`) on the same database, that worker executes the
    run; `tether run` waits for it and prints the answer instead of `running, steps 0`."""
    url = os.environ["TETHER_DATABASE_URL"]
    cli("db", "upgrade", "--project", example_project)
    with Fleet(example_project, dict(os.environ), tmp_path / "logs") as fleet:
        worker = fleet.start_worker(concurrency=2)
        deadline = time.monotonic() + 120
        while worker.name not in _live_workers(url):
            assert worker.alive and time.monotonic() < deadline, worker.output()
            time.sleep(0.2)

        answered = cli("run", "--project", example_project, "--user", "u1", ORDER_QUESTION)
        assert f"worker {worker.name}" in answered.output  # it says who has the run
        run = cli.json("runs", "list", "--project", example_project)[0]
        assert run["status"] == "succeeded" and "1Z999AA10123456784" in answered.output
        assert _claimed_by(url, run["run_id"]) == [worker.name]

        parked = cli("run", "--project", example_project, "--user", "u1", REFUND_REQUEST)
        assert "waiting_for_approval" in parked.output and "tether approve" in parked.output
        refund = cli.json("runs", "list", "--project", example_project, "--status", "waiting_for_approval")[0]
        approved = cli(
            "approve", refund["run_id"], "--project", example_project, "--reason", "receipt checked"
        )
        assert "succeeded" in approved.output
        assert _claimed_by(url, refund["run_id"]) == [worker.name, worker.name]
