"""A small agent project for the eval tests: a note-taking agent with a read, a write and a risky tool."""

from __future__ import annotations

import textwrap
from pathlib import Path

TOOLS = """
from tether import ToolContext, tool


@tool
def count_notes(ctx: ToolContext) -> str:
    \"\"\"How many notes are stored.\"\"\"
    path = ctx.data_dir / "notes.txt"
    return str(len(path.read_text().splitlines()) if path.exists() else 0)


@tool(side_effect="write", risk="low", idempotent=True)
def remember(text: str, ctx: ToolContext) -> str:
    \"\"\"Store a note.

    Args:
        text: The note.
    \"\"\"
    ctx.data_dir.mkdir(parents=True, exist_ok=True)
    with open(ctx.data_dir / "notes.txt", "a") as notes:
        notes.write(text + "\\n")
    return f"saved; {len((ctx.data_dir / 'notes.txt').read_text().splitlines())} notes now"


@tool(side_effect="write", risk="high", requires_approval=True)
def wipe(ctx: ToolContext) -> str:
    \"\"\"Delete every note.\"\"\"
    (ctx.data_dir / "notes.txt").write_text("")
    return "wiped"
"""

POLICY = """
import itertools
import json

from tether.models.scripted import ScriptedTurn

FLIPS = itertools.count()


def respond(turn: ScriptedTurn):
    text = turn.user_input
    seen = turn.observations
    if text.startswith("remember "):
        if not seen:
            return turn.call("remember", text=text.removeprefix("remember "))
        return f"Done: {seen[-1].content}"
    if text == "how many notes":
        if not seen:
            return turn.call("count_notes")
        return f"You have {seen[-1].content} notes."
    if text.startswith("wipe"):
        if not seen:
            return turn.call("wipe")
        return "Wiped."
    if text == "what did I say":
        earlier = [m.content for m in turn.history if m.role == "user"]
        return "You said: " + " | ".join(earlier) if earlier else "You said nothing before."
    if text == "flaky":
        return "heads" if next(FLIPS) % 2 == 0 else "tails"
    if text == "json please":
        return json.dumps({"answer": 42, "unit": "notes"})
    if text == "escalate":
        return turn.call("escalate_to_human", reason="asked for a human")
    return f"echo: {text}"
"""

JUDGE_POLICY = """
import json


def judge(turn):
    return json.dumps({"score": 1.0 if "echo" in turn.user_input else 0.0, "reason": "project judge"})
"""


def write_suite(project: Path, name: str, text: str) -> Path:
    path = project / "evals" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path
