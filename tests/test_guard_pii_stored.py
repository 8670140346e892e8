"""`[guard] redact_stored`: others' personal data kept out of stored steps and opt-in span content."""

from __future__ import annotations

import asyncio
import json
import os

import pytest
from conftest import Cli, ProjectFactory

from tether.store.repository import Store

TOOLS = '''
from tether import tool

@tool
def previous_owner(order_id: str = "1") -> str:
    """The order's previous owner.

    Args:
        order_id: The order.
    """
    return "Previous owner: ana.lima@mail-example.org, SSN 078-05-1120."

@tool
def payments_status() -> str:
    """The payment provider's status."""
    raise RuntimeError("payments down; key sk_live_51Nf3kQ2eZvKYlo2C8xT4mWp9 rejected")
'''

POLICY = """
from tether.models.scripted import ScriptedTurn

def respond(turn: ScriptedTurn):
    if not turn.observations:
        return [turn.call("previous_owner"), turn.call("payments_status")]
    return "Done. The previous owner was ana.lima@mail-example.org; I reached you at my@own.example."
"""

OTHERS = ("ana.lima@mail-example.org", "078-05-1120", "sk_live_51Nf3kQ2eZvKYlo2C8xT4mWp9")


def _spans(run_id: str) -> str:
    async def read() -> str:
        store = await Store.open(os.environ["TETHER_DATABASE_URL"])
        try:
            return json.dumps([s.attributes for s in await store.telemetry.list_spans(run_id=run_id)])
        finally:
            await store.close()

    return asyncio.run(read())


@pytest.mark.parametrize("redact_stored", [True, False])
def test_stored_steps_and_span_content_hold_no_one_elses_data(
    cli: Cli, make_project: ProjectFactory, monkeypatch: pytest.MonkeyPatch, redact_stored: bool
) -> None:
    monkeypatch.setenv("TETHER_TRACE_CONTENT", "true")
    project = make_project(
        tools=TOOLS, policy=POLICY, extra=f"[guard]\nredact_stored = {str(redact_stored).lower()}"
    )
    run = cli.json("run", "--project", str(project), "--user", "u1", "my address is my@own.example")
    assert run["status"] == "succeeded"
    assert "ana.lima" not in str(run["output"])  # the answer is checked either way
    steps = json.dumps(cli.json("runs", "show", str(run["run_id"]), "--project", str(project))["steps"])
    spans = _spans(str(run["run_id"]))
    for value in OTHERS:
        assert (value in steps) is not redact_stored, value
        assert (value in spans) is not redact_stored, value
    assert "my@own.example" in steps and "my@own.example" in spans  # the caller's own stays
