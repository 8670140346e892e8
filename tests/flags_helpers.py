"""A small agent whose answers show what feature flags did to its run: its system prompt, the tools it
was offered, and what a tool read from `ToolContext.flags`. Shared by the flags and experiments tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conftest import Cli, ProjectFactory

TOOLS = '''
from tether import tool, ToolContext


@tool
def greet(name: str, ctx: ToolContext) -> str:
    """Greet someone in the style the run's flags ask for.

    Args:
        name: Who to greet.
    """
    return f"{ctx.flags.get('greeting-style', 'unset')}:{name}"


@tool(side_effect="write", idempotent=True)
def refund(order: str) -> str:
    """Refund an order.

    Args:
        order: The order number.
    """
    return "refunded " + order
'''

POLICY = """
def respond(turn):
    text = turn.user_input
    if text == "prompt":
        return "SYSTEM:" + turn.messages[0].content
    if text == "tools":
        return "TOOLS:" + ",".join(sorted(t.name for t in turn.tools))
    if text == "greet":
        if not turn.called("greet"):
            return turn.call("greet", name="ann")
        return "GREET:" + turn.observations[-1].content
    if text == "refund":
        if not turn.called("refund"):
            return turn.call("refund", order="7")
        return "REFUND:" + turn.observations[-1].content
    return "ok"
"""

PROMPT = (
    "You are a test agent.{% if flags['new-tone'] %} Be cheerful.{% endif %}"
    " Style: {{ flags['greeting-style'] }}."
)


def flags_project(make_project: ProjectFactory) -> Path:
    # The policy answers with its own system prompt, to show what the flags made of it: the guard
    # that blocks system-prompt leaks would (rightly) stop exactly that answer.
    extra = '[guard]\nsystem_prompt_leak = "allow"\n'
    return make_project(tools=TOOLS, policy=POLICY, prompt=PROMPT, name="flags-agent", extra=extra)


def run(cli: Cli, project: Path, task: str, user: str = "u1") -> dict[str, Any]:
    result: dict[str, Any] = cli.json("run", "--project", project, "--user", user, task)
    return result


def set_flag(cli: Cli, project: Path, name: str, *args: str) -> dict[str, Any]:
    result: dict[str, Any] = cli.json("flags", "set", name, "--project", project, "--reason", "test", *args)
    return result
