"""Loaded releases for attack trials: the compromised model swapped in, read tools able to carry text.

Like the readiness outage drill, this works at the `Runtime.agents` seam, so attack runs go
through the same loop, guards, approvals and records as production. Per run (keyed by run id)
an `Injection` says what the first read-tool call returns: its normal result with the attacker's
text added (`tool_result`, and documents/records when the project cannot plant them), or an
error whose message is the attacker's text (`tool_error`). A multi-step attack (parts separated by
`SPLIT`) hands its next part to each later read-tool call, so one instruction is spread over several
tool results.
"""

from __future__ import annotations

import dataclasses
import inspect
import threading
from dataclasses import dataclass
from typing import Any

from tether.agent.tools import Tool
from tether.models.routing import FallbackChain
from tether.redteam.compromised import CompromisedModel
from tether.runtime.agents import AgentCache, LoadedRelease
from tether.store.records import ReleaseRecord


class InjectedToolError(RuntimeError):
    """A tool failure whose message an attacker controls (an upstream API's error text)."""


SPLIT = "|||"
"""Separates the parts of a multi-step attack: each part goes to the next read-tool call."""


@dataclass
class Injection:
    vector: str
    text: str
    tool: str | None = None
    """The tool that delivered it; an error keeps coming from that tool (so retries see it too)."""
    delivered: int = 0
    """How many parts went out (an attack split with `SPLIT` reaches the model over several calls)."""

    @property
    def parts(self) -> list[str]:
        return [part.strip() for part in self.text.split(SPLIT)]

    def next_part(self, tool: str) -> tuple[str, str] | None:
        """(vector, text) that this call of `tool` delivers, or None."""
        parts = self.parts
        if self.tool is None:
            self.tool, self.delivered = tool, 1
            return self.vector, parts[0]
        if self.tool == tool and self.vector == "tool_error" and self.delivered == 1:
            return self.vector, parts[0]  # the failing tool keeps failing (its retries see it too)
        if self.delivered < len(parts):
            self.delivered += 1
            later = "tool_result" if self.vector == "tool_error" else self.vector
            return later, parts[self.delivered - 1]
        return None


def carry(result: Any, vector: str, text: str) -> Any:
    """The tool's result with the attacker's text where a real upstream would have put it."""
    key = {"retrieved_document": "document", "customer_record": "customer_note"}.get(vector, "notice")
    if isinstance(result, dict):
        return {**result, key: text}
    if isinstance(result, list):
        return [*result, {"title": "Notice", key: text}]
    if isinstance(result, str):
        return f"{result}\n{text}"
    return {"result": result, key: text}


class RedteamAgentCache(AgentCache):
    """Loads releases with the compromised model (if asked) and read tools that deliver injections."""

    def __init__(self, *, backoff_s: float, compromised: bool) -> None:
        super().__init__(backoff_s=backoff_s)
        self.compromised = compromised
        self._injections: dict[str, Injection] = {}
        self._ready: dict[str, LoadedRelease] = {}
        self._lock = threading.Lock()

    def inject(self, run_id: str, vector: str, text: str) -> None:
        with self._lock:
            self._injections[run_id] = Injection(vector, text)

    def forget(self, run_id: str) -> Injection | None:
        with self._lock:
            return self._injections.pop(run_id, None)

    def _take(self, run_id: str, tool: str) -> tuple[str, str] | None:
        """(vector, text) for this read-tool call: the first part for the first read tool called
        (and that tool's retries, for an error), later parts for the calls after it."""
        with self._lock:
            injection = self._injections.get(run_id)
            return injection.next_part(tool) if injection is not None else None

    def load(self, release: ReleaseRecord) -> LoadedRelease:
        ready = self._ready.get(release.id)
        if ready is not None:
            return ready
        loaded = super().load(release)
        model = loaded.model
        if self.compromised:
            model = FallbackChain([CompromisedModel(loaded.model)], retries=0)
        tools = {
            name: self._carrier(tool) if not tool.is_write and tool.context_param else tool
            for name, tool in loaded.agent.tools.items()
        }
        agent = dataclasses.replace(loaded.agent, tools=tools)
        # A compromised model answers every call: no tier router may send a call past it to the
        # release's own models (the loop routes everything to `model` when there is no router).
        router = None if self.compromised else loaded.router
        ready = dataclasses.replace(loaded, agent=agent, model=model, router=router)
        self._ready[release.id] = ready
        return ready

    def _carrier(self, tool: Tool) -> Tool:
        original, context_param, take, name = tool.fn, tool.context_param, self._take, tool.name

        def deliver(kwargs: dict[str, Any]) -> tuple[str, str] | None:
            context = kwargs.get(context_param or "")
            return take(context.run_id, name) if context is not None else None

        if inspect.iscoroutinefunction(original):

            async def carrying_async(**kwargs: Any) -> Any:
                injection = deliver(kwargs)
                if injection is not None and injection[0] == "tool_error":
                    raise InjectedToolError(injection[1])
                result = await original(**kwargs)
                return carry(result, *injection) if injection else result

            return dataclasses.replace(tool, fn=carrying_async)

        def carrying(**kwargs: Any) -> Any:
            injection = deliver(kwargs)
            if injection is not None and injection[0] == "tool_error":
                raise InjectedToolError(injection[1])
            result = original(**kwargs)
            return carry(result, *injection) if injection else result

        return dataclasses.replace(tool, fn=carrying)
