"""Releases become runnable agents: snapshot → code, tools, model chain and prices (cached per release)."""

from __future__ import annotations

from dataclasses import dataclass

from tether.agent.project import AgentDefinition, ProjectSnapshot, load_agent
from tether.caches.service import Caches
from tether.models.base import ChatModel
from tether.models.breakers import BreakerBoard, tool_key
from tether.models.pricing import Pricer
from tether.models.routing import FallbackChain
from tether.models.tokens import TokenCounter
from tether.runtime.models import breaker_policy, build_chain, build_classifier, build_router, token_counters
from tether.runtime.routed import ModelRouter
from tether.runtime.tool_calls import ToolBreaker
from tether.store.records import ReleaseRecord


@dataclass(frozen=True)
class LoadedRelease:
    release: ReleaseRecord
    agent: AgentDefinition
    model: FallbackChain
    pricer: Pricer
    classifier: ChatModel | None = None
    """The guard's optional instruction classifier (`[guard] classifier_model`)."""
    breakers: BreakerBoard | None = None
    """Shared circuit breakers; None when the release turns them off."""
    counters: tuple[TokenCounter, ...] = ()
    """Token counters of every model a call may reach, for the pre-call ceiling estimate."""
    router: ModelRouter | None = None
    """Picks the tier per call (`[routing]`); without one, every call goes to `model`."""
    caches: Caches | None = None
    """The process's cache store; None (evals, drills) means no caching at all."""

    def tool_breaker(self, tool: str) -> ToolBreaker | None:
        breakers = self.agent.config.breakers
        if self.breakers is None or not breakers.tools:
            return None
        key = tool_key(self.agent.config.agent.name, tool)
        return ToolBreaker(self.breakers, breaker_policy(self.agent.config), key)


class AgentCache:
    """Loads each release once per process; releases are immutable, so the cache never goes stale."""

    def __init__(
        self, *, backoff_s: float, breakers: BreakerBoard | None = None, caches: Caches | None = None
    ) -> None:
        self._backoff_s = backoff_s
        self.breakers = breakers
        self.caches = caches
        self._loaded: dict[str, LoadedRelease] = {}

    def load(self, release: ReleaseRecord) -> LoadedRelease:
        cached = self._loaded.get(release.id)
        if cached is None:
            agent = load_agent(ProjectSnapshot.model_validate(release.snapshot))
            chain = build_chain(
                agent.config, agent.resolve, backoff_s=self._backoff_s, breakers=self.breakers
            )
            router = build_router(
                agent.config, agent.resolve, chain, backoff_s=self._backoff_s, breakers=self.breakers
            )
            cached = LoadedRelease(
                release=release,
                agent=agent,
                model=chain,
                pricer=router.pricer,
                breakers=self.breakers if agent.config.breakers.enabled else None,
                counters=tuple(token_counters(agent.config, router.models)),
                router=router,
                caches=self.caches,
                classifier=build_classifier(agent.config, agent.resolve),
            )
            self._loaded[release.id] = cached
        return cached
