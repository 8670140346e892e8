"""The schema of `tether.toml`: everything about an agent that an operator may want to change."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AgentSection(_Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    owner: str = Field(min_length=1)
    instructions: list[str] = Field(default_factory=lambda: ["prompts/system.md"], min_length=1)
    tools_module: str = "tools"
    enabled_tools: list[str] | None = None
    write_tools_enabled: bool = True
    force_human_review: bool = False


class ModelSection(_Strict):
    primary: str
    fallbacks: list[str] = Field(default_factory=list)
    scripted_policy: str | None = None
    max_output_tokens: int = Field(default=1024, gt=0)
    retries: int = Field(default=2, ge=0, le=10)
    timeout_s: float = Field(default=60.0, gt=0)

    @field_validator("primary", "fallbacks")
    @classmethod
    def _provider_prefixed(cls, value: str | list[str]) -> str | list[str]:
        for ref in [value] if isinstance(value, str) else value:
            provider, _, model = ref.partition(":")
            if not provider or not model:
                raise ValueError(f"model {ref!r} must be written 'provider:model', e.g. 'openai:gpt-4o-mini'")
        return value

    @property
    def chain(self) -> list[str]:
        return [self.primary, *self.fallbacks]


class LimitsSection(_Strict):
    max_steps: int = Field(default=12, gt=0)
    max_tokens_per_run: int = Field(default=50_000, gt=0)
    max_cost_usd_per_run: float = Field(default=0.50, gt=0)


class Price(_Strict):
    """USD per million tokens, for models genai-prices does not know (or that you host)."""

    input_per_mtok: float = Field(ge=0)
    output_per_mtok: float = Field(ge=0)


class ProviderSection(_Strict):
    """An endpoint for model references whose prefix is this provider's name."""

    kind: Literal["openai", "anthropic"]
    base_url: str | None = None
    api_key_env: str | None = None


class ProjectConfig(_Strict):
    agent: AgentSection
    model: ModelSection
    limits: LimitsSection = Field(default_factory=LimitsSection)
    prices: dict[str, Price] = Field(default_factory=dict)
    providers: dict[str, ProviderSection] = Field(default_factory=dict)


class ConfigError(ValueError):
    """`tether.toml` is missing or wrong; the message says where and why."""


def load_config(path: Path) -> ProjectConfig:
    if not path.is_file():
        raise ConfigError(f"{path}: not found (an agent project needs a tether.toml)")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        return ProjectConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{path}: {problems}") from None
