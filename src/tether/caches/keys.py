"""Cache keys: a SHA-256 of a normalised request, always prefixed by who may see the entry.

The scope is the tenant, plus the user unless the release declares answers user-independent, so
an entry can never be served across tenants or (by default) across users. Requests are normalised
(JSON with sorted keys, whitespace at the ends of message text stripped) so that the same question
asked twice is the same key.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from tether.models.base import Message, ToolSpec


@dataclass(frozen=True)
class CacheScope:
    tenant_id: str
    user_id: str | None
    """None when the release says answers do not depend on the user."""

    @property
    def label(self) -> str:
        return f"{self.tenant_id}/{self.user_id if self.user_id is not None else '*'}"


def _digest(scope: CacheScope, kind: str, payload: Any) -> str:
    text = json.dumps([kind, scope.tenant_id, scope.user_id, payload], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def normalised_messages(messages: list[Message]) -> list[dict[str, Any]]:
    return [
        {
            "role": m.role,
            "content": m.content.strip(),
            "tool_calls": [[c.name, c.arguments] for c in m.tool_calls],
            "tool_call_id": m.tool_call_id,
        }
        for m in messages
    ]


def response_key(
    scope: CacheScope,
    models: list[str],
    messages: list[Message],
    tools: list[ToolSpec],
    params: dict[str, Any],
) -> str:
    """The exact-response key: models, messages, tools and parameters, normalised."""
    payload = {
        "models": models,
        "messages": normalised_messages(messages),
        "tools": [[t.name, t.description, t.parameters] for t in tools],
        "params": params,
    }
    return _digest(scope, "response", payload)


def tool_key(scope: CacheScope, agent: str, tool: str, arguments: dict[str, Any]) -> str:
    return _digest(scope, "tool", {"agent": agent, "tool": tool, "arguments": arguments})


def semantic_scope(scope: CacheScope, agent: str, models: list[str]) -> str:
    """Semantic entries are searched within one scope, agent and model set."""
    return _digest(scope, "semantic", {"agent": agent, "models": models})
