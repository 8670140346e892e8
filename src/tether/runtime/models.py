"""Turn the model references of an agent's `tether.toml` into clients, wrapped in one fallback chain."""

from __future__ import annotations

import os
from collections.abc import Callable

from tether.agent.config import ConfigError, ProjectConfig
from tether.guard.marking import unmark
from tether.models.base import ChatModel
from tether.models.pricing import Pricer
from tether.models.routing import FallbackChain
from tether.models.scripted import Policy, ScriptedModel

PolicyResolver = Callable[[str], Policy]


def pricer_for(config: ProjectConfig) -> Pricer:
    return Pricer(
        overrides={ref: (p.input_per_mtok, p.output_per_mtok) for ref, p in config.prices.items()},
        provider_kinds={name: section.kind for name, section in config.providers.items()},
    )


_BUILT_IN_PROVIDERS = {"scripted", "openai", "anthropic"}


def check_prices(config: ProjectConfig) -> None:
    """Fail now, with the fix in the message, if a model's provider or price is unknown."""
    pricer = pricer_for(config)
    for reference in config.model.chain:
        provider = reference.partition(":")[0]
        if provider not in _BUILT_IN_PROVIDERS and provider not in config.providers:
            raise ConfigError(_unknown_provider(reference, provider))
        pricer.check(reference)


def _unknown_provider(reference: str, provider: str) -> str:
    return (
        f"model {reference!r}: unknown provider {provider!r}; use scripted, openai, anthropic "
        f"or declare [providers.{provider}] with kind = 'openai' or 'anthropic'"
    )


def build_client(reference: str, config: ProjectConfig, resolve_policy: PolicyResolver) -> ChatModel:
    provider, _, model = reference.partition(":")
    if provider == "scripted":
        if not config.model.scripted_policy:
            raise ConfigError(
                f"model {reference!r} is scripted: set [model] scripted_policy = 'module:function'"
            )
        return ScriptedModel(reference, resolve_policy(config.model.scripted_policy), read_tool_text=unmark)
    section = config.providers.get(provider)
    kind = section.kind if section else provider
    base_url = section.base_url if section else os.environ.get(f"{provider.upper()}_BASE_URL")
    key_env = section.api_key_env if section and section.api_key_env else f"{provider.upper()}_API_KEY"
    api_key = os.environ.get(key_env)
    timeout = config.model.timeout_s
    choice = config.model.tool_choice
    if kind == "openai":
        from tether.models.openai_compat import OpenAIChatModel

        return OpenAIChatModel(
            reference, model, base_url=base_url, api_key=api_key, timeout_s=timeout, tool_choice=choice
        )
    if kind == "anthropic":
        from tether.models.anthropic_client import AnthropicChatModel

        return AnthropicChatModel(
            reference, model, base_url=base_url, api_key=api_key, timeout_s=timeout, tool_choice=choice
        )
    raise ConfigError(_unknown_provider(reference, provider))


def build_chain(
    config: ProjectConfig, resolve_policy: PolicyResolver, *, backoff_s: float = 0.5
) -> FallbackChain:
    check_prices(config)
    models = [build_client(ref, config, resolve_policy) for ref in config.model.chain]
    return FallbackChain(models, retries=config.model.retries, backoff_s=backoff_s)


def build_classifier(config: ProjectConfig, resolve_policy: PolicyResolver) -> ChatModel | None:
    """The `[guard] classifier_model` client, or None when no classifier is configured."""
    reference = config.guard.classifier_model
    if not reference or not config.guard.enabled:
        return None
    if reference.startswith("scripted:"):
        if not config.guard.classifier_policy:
            raise ConfigError(f"classifier {reference!r} is scripted: set [guard] classifier_policy")
        return ScriptedModel(reference, resolve_policy(config.guard.classifier_policy))
    return build_client(reference, config, resolve_policy)
