"""Releases become runnable agents: snapshot → code, tools, model chain and prices (cached per release)."""

from __future__ import annotations

from dataclasses import dataclass

from tether.agent.project import AgentDefinition, ProjectSnapshot, load_agent
from tether.models.base import ChatModel
from tether.models.pricing import Pricer
from tether.models.routing import FallbackChain
from tether.runtime.models import build_chain, build_classifier, pricer_for
from tether.store.records import ReleaseRecord


@dataclass(frozen=True)
class LoadedRelease:
    release: ReleaseRecord
    agent: AgentDefinition
    model: FallbackChain
    pricer: Pricer
    classifier: ChatModel | None = None
    """The guard's optional instruction classifier (`[guard] classifier_model`)."""


class AgentCache:
    """Loads each release once per process; releases are immutable, so the cache never goes stale."""

    def __init__(self, *, backoff_s: float) -> None:
        self._backoff_s = backoff_s
        self._loaded: dict[str, LoadedRelease] = {}

    def load(self, release: ReleaseRecord) -> LoadedRelease:
        cached = self._loaded.get(release.id)
        if cached is None:
            agent = load_agent(ProjectSnapshot.model_validate(release.snapshot))
            cached = LoadedRelease(
                release=release,
                agent=agent,
                model=build_chain(agent.config, agent.resolve, backoff_s=self._backoff_s),
                pricer=pricer_for(agent.config),
                classifier=build_classifier(agent.config, agent.resolve),
            )
            self._loaded[release.id] = cached
        return cached
