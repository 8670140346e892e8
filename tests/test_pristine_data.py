"""Pristine data: evals and drills never inherit what runs wrote to a project's working data.

The example declares `[data] seed = "data:seed"`; every eval run builds that seed once into a
template and copies it per trial, drills do the same, and `tether data reset` rebuilds the working
folder. The tour test replays the README in order, the refund approval included, then gates.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import Cli
from evals_helpers import POLICY, TOOLS, write_suite

from tether.agent.project import load_agent, snapshot_project
from tether.agent.tools import ToolContext
from tether.cli import app
from tether.evals.cases import load_suites
from tether.evals.runner import EvalRunner
from tether.rollout.releases import working_copy_release
from tether.settings import Settings
from tether.store.repository import Store

SEEDS = """
import os
from pathlib import Path


def seed(data_dir: Path) -> None:
    (data_dir / "notes.txt").write_text("seeded\\n")
    with open(os.environ["SEED_LOG"], "a") as log:
        log.write("built\\n")
"""

SUITE = """
cases:
  - id: remember-milk
    input: remember milk
    expect:
      output_contains: ["2 notes now"]   # the seeded note plus this one, whatever the working copy holds
"""


def _eligibility(data_dir: Path, order_id: str) -> dict[str, Any]:
    agent = load_agent(snapshot_project(data_dir.parent / "support_agent"))
    context = ToolContext(
        user_id="u1",
        idempotency_key="check:1",
        run_id="check",
        thread_id=None,
        step=1,
        data_dir=data_dir,
        release_version="t",
    )
    result = asyncio.run(agent.tools["check_return_eligibility"].invoke({"order_id": order_id}, context))
    assert isinstance(result, dict)
    return result


def test_the_readme_tour_in_order_ends_with_a_passing_gate_and_ready_review(
    cli: Cli, example_project: Path, isolated_env: Path
) -> None:
    """README "A tour in six commands", then "Evaluate before you ship", on one working copy."""
    p = ("--project", example_project)
    cli("run", *p, "--user", "u1", "Where is my order 12345?")
    parked = cli.json("run", *p, "--user", "u1", "I want a refund for order 12346")
    assert parked["status"] == "waiting_for_approval"
    approved = cli.json("approve", parked["run_id"], *p, "--reason", "receipt checked")
    assert approved["status"] == "succeeded" and "issue_refund" in approved["tools_called"]
    cli("runs", "list", *p)
    cli("runs", "show", parked["run_id"], *p)
    # The refund is in the working data now: this is what evals used to copy.
    assert _eligibility(isolated_env / "data", "12346")["reason"] == "this order has already been refunded"
    created = cli("release", "create", *p).stdout
    version = re.search(r"release (\S+) \(", created)
    assert version, created

    ran = cli.json("eval", "run", *p, "--release", version[1], "--trials", "1")
    failing = [c["case_id"] for c in ran["cases"] if c["passes"] < c["trials"]]
    assert failing == [] and ran["summary"]["cases"] == 157
    gate = cli("gate", *p, "--release", version[1], "--json", expect=None)
    assert gate.exit_code == 0, gate.stdout
    assert json.loads(gate.stdout)["passed"] is True
    review = cli("readiness", *p, "--release", version[1], "--out", isolated_env / "readiness", expect=None)
    assert review.exit_code == 0 and "READY" in review.stdout and "NOT READY" not in review.stdout, (
        review.stdout
    )
    # Evals and drills ran on copies: the working data still holds the tour's refund.
    assert _eligibility(isolated_env / "data", "12346")["reason"] == "this order has already been refunded"


def test_data_reset_rebuilds_the_working_data_from_the_seed(
    cli: Cli, example_project: Path, isolated_env: Path
) -> None:
    p = ("--project", example_project)
    parked = cli.json("run", *p, "--user", "u1", "I want a refund for order 12346")
    cli("approve", parked["run_id"], *p, "--reason", "receipt checked")
    data = isolated_env / "data"
    assert _eligibility(data, "12346")["reason"] == "this order has already been refunded"

    declined = cli.runner.invoke(app, ["data", "reset", "--project", str(example_project)], input="n\n")
    assert declined.exit_code == 1 and "nothing changed" in declined.output
    assert _eligibility(data, "12346")["reason"] == "this order has already been refunded"

    done = cli("data", "reset", *p, "--yes")
    assert f"reset {data}" in done.stdout and "data:seed" in done.stdout
    assert _eligibility(data, "12346")["eligible"] is True
    assert sorted(path.name for path in data.parent.iterdir() if path.name.startswith(".data")) == []


def test_data_reset_without_a_seed_says_how_to_declare_one(cli: Cli, make_project: Any) -> None:
    project = make_project(tools=TOOLS, policy=POLICY)
    result = cli("data", "reset", "--project", project, "--yes", expect=2)
    assert "declares no [data] seed" in result.output and "[data]" in result.output


def test_a_failing_seed_is_reported_and_the_working_data_is_kept(
    cli: Cli, make_project: Any, isolated_env: Path
) -> None:
    project = make_project(tools=TOOLS, policy=POLICY, extra='[data]\nseed = "seeds:seed"\n')
    (project / "seeds.py").write_text("def seed(data_dir):\n    raise RuntimeError('no disk')\n")
    working = isolated_env / "data"
    working.mkdir()
    (working / "notes.txt").write_text("mine\n")
    result = cli("data", "reset", "--project", project, "--yes", expect=2)
    assert "seeds:seed" in result.output and "no disk" in result.output
    assert (working / "notes.txt").read_text() == "mine\n"


def test_a_bad_seed_reference_is_a_config_error(cli: Cli, make_project: Any) -> None:
    project = make_project(tools=TOOLS, policy=POLICY, extra='[data]\nseed = "seeds.seed"\n')
    result = cli("run", "--project", project, "--user", "u1", "remember milk", expect=2)
    assert "data.seed" in result.output and "module:function" in result.output


async def test_each_trial_gets_a_copy_of_a_seed_built_once_per_eval_run(
    store: Store, make_project: Any, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = isolated_env / "seed.log"
    monkeypatch.setenv("SEED_LOG", str(log))
    project = make_project(tools=TOOLS, policy=POLICY, extra='[data]\nseed = "seeds:seed"\n')
    (project / "seeds.py").write_text(SEEDS)
    write_suite(project, "notes.yaml", SUITE)
    working = isolated_env / "data"
    working.mkdir()
    (working / "notes.txt").write_text("written\nby\nproduction\n")
    release = await working_copy_release(store, project)
    runner = EvalRunner(store, Settings(), project, release, trials=5, concurrency=3)

    _, results = await runner.run(load_suites(project))

    assert [(r.passes, r.trials) for r in results] == [(5, 5)]  # every trial saw only the seeded note
    assert log.read_text() == "built\n"  # one seed for five trials
    assert (working / "notes.txt").read_text() == "written\nby\nproduction\n"
    assert runner.data.pristine and "seeds:seed" in runner.data.note
