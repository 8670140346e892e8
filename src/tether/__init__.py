"""Tether: run LLM agents in production with controlled autonomy."""

from tether.agent.tools import ToolContext, tool

__all__ = ["ToolContext", "tool"]
__version__ = "0.1.0"
