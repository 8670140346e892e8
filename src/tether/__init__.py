"""Tether: run LLM agents in production with controlled autonomy."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tether.agent.tools import ToolContext, tool

__all__ = ["ToolContext", "tool"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """`from tether import tool` for agent code, imported on first use so that importing any
    `tether.*` module (the CLI above all) does not pay for pydantic and the tool machinery."""
    if name in __all__:
        from tether.agent import tools

        return getattr(tools, name)
    raise AttributeError(f"module 'tether' has no attribute {name!r}")
