"""Compare two snapshots the way a reviewer wants to read them: prompts, config and tools."""

from __future__ import annotations

import difflib
import json
from typing import Any

from tether.agent.project import ProjectSnapshot


def _lines(value: Any) -> list[str]:
    return json.dumps(value, indent=2, sort_keys=True).splitlines(keepends=True)


def _unified(old: list[str], new: list[str], old_name: str, new_name: str) -> str:
    return "".join(difflib.unified_diff(old, new, fromfile=old_name, tofile=new_name))


def diff_snapshots(old: ProjectSnapshot, new: ProjectSnapshot, *, old_name: str, new_name: str) -> str:
    """A unified diff of config, prompt files, tool definitions and source files ('' when equal)."""
    parts: list[str] = []
    parts.append(
        _unified(_lines(old.config), _lines(new.config), f"{old_name}/tether.toml", f"{new_name}/tether.toml")
    )
    for old_files, new_files in ((old.prompts, new.prompts), (old.sources, new.sources)):
        for path in sorted(old_files.keys() | new_files.keys()):
            parts.append(
                _unified(
                    old_files.get(path, "").splitlines(keepends=True),
                    new_files.get(path, "").splitlines(keepends=True),
                    f"{old_name}/{path}",
                    f"{new_name}/{path}",
                )
            )
    old_tools = {tool["name"]: tool for tool in old.tools}
    new_tools = {tool["name"]: tool for tool in new.tools}
    for name in sorted(old_tools.keys() | new_tools.keys()):
        parts.append(
            _unified(
                _lines(old_tools.get(name, {})),
                _lines(new_tools.get(name, {})),
                f"{old_name}/tools/{name}",
                f"{new_name}/tools/{name}",
            )
        )
    return "".join(part if part.endswith("\n") or not part else part + "\n" for part in parts if part)
