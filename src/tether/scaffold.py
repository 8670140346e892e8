"""`tether init`: the files of a new, working agent project."""

from __future__ import annotations

from pathlib import Path

FILES: dict[str, str] = {
    "tether.toml": """\
[agent]
name = "{name}"
owner = "you@example.com"
instructions = ["prompts/system.md"]
tools_module = "tools"
write_tools_enabled = true
force_human_review = false

[model]
# Swap in a hosted model when ready, e.g. primary = "openai:gpt-4o-mini" (reads OPENAI_API_KEY).
primary = "scripted:echo-v1"
fallbacks = []
scripted_policy = "policy:respond"

[limits]
max_steps = 8
max_tokens_per_run = 8000
max_cost_usd_per_run = 0.05
""",
    "prompts/system.md": """\
You are a helpful assistant. Use the tools you are given to answer accurately and say so when
you do not know something.
""",
    "tools.py": '''\
"""Tools this agent may call. Each is a typed function; its docstring is what the model reads."""

from tether import tool


@tool
def word_count(text: str) -> dict[str, int]:
    """Count the words and characters in a piece of text.

    Args:
        text: The text to measure.
    """
    return {"words": len(text.split()), "characters": len(text)}
''',
    "policy.py": '''\
"""A deterministic stand-in for a hosted model, so the agent runs offline and in tests."""

from tether.models.scripted import ScriptedTurn
from tether.models.base import ToolCall


def respond(turn: ScriptedTurn) -> str | ToolCall:
    counted = turn.last("word_count")
    if counted is None:
        return turn.call("word_count", text=turn.user_input)
    result = counted.json() or {}
    words, characters = result.get("words", "?"), result.get("characters", "?")
    return f"Your message has {words} words and {characters} characters."
''',
    "README.md": """\
# {name}

An agent project created by `tether init`. Try it:

    tether run --project . --user me "How many words is this sentence?"

Edit `prompts/`, `tools.py` and `tether.toml`, then `tether release create --project .`.
""",
}


def scaffold(target: Path) -> list[Path]:
    """Write a new project into `target`, refusing to overwrite any file already there."""
    existing = [relative for relative in FILES if (target / relative).exists()]
    if existing:
        raise FileExistsError(f"{target} already has {', '.join(existing)}; not overwriting anything")
    folder = target.resolve().name
    name = "".join(ch if (ch.isascii() and ch.isalnum()) or ch in "-_" else "-" for ch in folder).strip("-_")
    name = name or "agent"
    written: list[Path] = []
    for relative, template in FILES.items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.replace("{name}", name), encoding="utf-8")
        written.append(path)
    return written
