"""`tether rollout ...` (issue 13 items 3, 6 and 9): clear refusals, audited overrides, one-command
blue-green switch and rollback, and the canary's life from the command line."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Cli
from ui_helpers import write_shop_project


@pytest.fixture
def shop(tmp_path: Path, cli: Cli) -> Path:
    project = write_shop_project(tmp_path / "shop")
    cli("release", "create", "--project", project, "--version", "v1")
    (project / "prompts" / "system.md").write_text("You are a concise shop assistant.")
    cli("release", "create", "--project", project, "--version", "v2")
    return project


def test_switch_and_rollback_in_one_command_each(shop: Path, cli: Cli) -> None:
    refused = cli("rollout", "switch", "v1", "--project", shop, expect=2)
    assert "gate" in refused.output and "--override" in refused.output
    assert "Traceback" not in refused.output
    out = cli("rollout", "switch", "v1", "--project", shop, "--override", "--reason", "first deploy").output
    assert "revision 1" in out and "v1 live 100%" in out
    cli("rollout", "switch", "v2", "--project", shop, "--override", "--reason", "second")
    out = cli("rollout", "rollback", "--project", shop, "--reason", "v2 misbehaves").output
    assert "v1 live 100%" in out
    status = cli.json("rollout", "status", "--project", shop)
    assert [h["action"] for h in status["history"]] == ["rollback", "switch", "switch"]
    assert status["history"][-1]["override"] is True and status["history"][0]["reason"] == "v2 misbehaves"
    table = cli("rollout", "status", "--project", shop).output
    assert "[override]" in table and "audit log" in table


def test_a_canary_from_start_to_abort(shop: Path, cli: Cli) -> None:
    cli("rollout", "switch", "v1", "--project", shop, "--override", "--reason", "base")
    out = cli(
        "rollout",
        "start",
        "v2",
        "--project",
        shop,
        "--steps",
        "10,50,100",
        "--min-runs",
        "5",
        "--override",
        "--reason",
        "try v2",
    ).output
    assert "v2 canary 10%" in out and "v1 live 90%" in out
    assert "v2 canary 0%" in cli("rollout", "pause", "--project", shop).output
    assert "v2 canary 10%" in cli("rollout", "pause", "--resume", "--project", shop).output
    status = cli.json("rollout", "status", "--project", shop)
    assert status["canary"]["steps"] == [10.0, 50.0, 100.0] and status["analysis"]["decision"] == "hold"
    aborted = cli("rollout", "abort", "--project", shop, "--reason", "not today").output
    assert "v2" not in aborted.split(":", 1)[1] or "retired" in aborted
    bad = cli(
        "rollout", "start", "v2", "--project", shop, "--steps", "x", "--override", "--reason", "r", expect=2
    )
    assert "--steps" in bad.output
    assert "no shadow release" in cli("rollout", "report", "--project", shop, expect=2).output


def test_start_refuses_unknown_stages_and_a_canary_without_live(shop: Path, cli: Cli) -> None:
    assert (
        "unknown stage"
        in cli("rollout", "start", "v2", "--project", shop, "--stage", "blue", expect=2).output
    )
    out = cli("rollout", "start", "v2", "--project", shop, "--override", "--reason", "r", expect=2).output
    assert "needs a live release" in out
