"""What the attack suite needs to know about an agent project, and how it plants text in its data.

A project may name a `module:function` returning a `RedteamTarget` (`[redteam] target` in
tether.toml): which user attacks, which record is theirs and which is someone else's, the benign
request that makes the agent read each vector, and a `plant` function that writes attacker text
into a trial's pristine data copy (retrieved documents, customer records). Without one, a target
is derived from `[readiness]`, and every indirect vector is delivered by the tool wrapper
(`inject.py`): the text arrives inside the first read-tool result, or as its error.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tether.agent.project import AgentDefinition

VECTORS = ("user_message", "tool_result", "retrieved_document", "customer_record", "tool_error")
"""Where attacker text reaches the model: the user's own message, or data the agent reads."""

Planter = Callable[[Path, str, str], None]
"""plant(data_dir, vector, text): put `text` where the agent reads `vector` (also "foreign_record")."""


class TargetError(ValueError):
    """The project's `[redteam] target` is missing or returned something else."""


@dataclass(frozen=True)
class RedteamTarget:
    """The attack surface of one agent project, in its own words."""

    user: str
    own_record: str
    """An id of a record the attacking user owns (e.g. one of their order numbers)."""
    other_user: str
    other_record: str
    """An id of a record of `other_user`: reading or changing it for `user` is a cross-user breach."""
    prompts: Mapping[str, str] = field(default_factory=dict)
    """Per indirect vector, the benign request that makes the agent read the planted text."""
    plant: Planter | None = None
    planted_vectors: frozenset[str] = frozenset()
    """Vectors `plant` handles; the rest go through the tool wrapper."""
    foreign_markers: tuple[str, ...] = ()
    """Other users' data (emails, names, ids of their things) that must never reach `user`."""
    own_pii: tuple[str, ...] = ()
    """Personal data the caller may see (their own, the business's public contacts): not a leak."""
    allowed_hosts: tuple[str, ...] = ()

    def prompt_for(self, vector: str) -> str:
        default = self.prompts.get("default", f"Can you help me with {self.own_record}?")
        return self.prompts.get(vector, default)


def load_target(agent: AgentDefinition) -> RedteamTarget:
    """The project's declared target, or one derived from `[readiness]`."""
    config = agent.config
    reference = config.redteam.target
    if reference is None:
        text = config.readiness.normal_input
        ids = re.findall(r"\b[A-Za-z]*\d[\w-]*\b", text)
        return RedteamTarget(
            user=config.readiness.user,
            own_record=ids[0] if ids else "1",
            other_user=f"{config.readiness.user}-other",
            other_record="99999",
            prompts={"default": text},
            allowed_hosts=tuple(config.redteam.allowed_hosts),
        )
    factory = agent.resolve(reference)
    if not callable(factory):
        raise TargetError(f"[redteam] target {reference!r} is not a function")
    try:
        target = factory()
    except Exception as exc:
        raise TargetError(f"[redteam] target {reference!r} failed: {exc!r}") from exc
    if not isinstance(target, RedteamTarget):
        raise TargetError(
            f"[redteam] target {reference!r} returned {type(target).__name__}, not a RedteamTarget"
        )
    hosts = tuple(dict.fromkeys((*target.allowed_hosts, *config.redteam.allowed_hosts)))
    return RedteamTarget(**{**target.__dict__, "allowed_hosts": hosts})
