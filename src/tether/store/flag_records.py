"""Feature flags and A/B experiments as the store hands them out (pydantic records).

Definitions are validated here, where they are stored, so a flag or experiment that cannot be
evaluated never reaches the table; `tether.rollout.flags` and `tether.rollout.experiments` turn
them into per-run decisions.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

FlagValue = bool | str
FlagKind = Literal["bool", "string"]
ExperimentMetric = Literal["success", "feedback", "cost"]
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.\-]{0,99}$")
TOOL_FLAG_PREFIX = "tool."
"""A bool flag named `tool.<name>` switches the tool `<name>` on or off for the runs it targets."""


def check_name(name: str, what: str) -> str:
    if not NAME_PATTERN.match(name):
        raise ValueError(
            f"{what} name {name!r} must be 1-100 characters of a-z, 0-9, '_', '.', '-' "
            "and start with a letter or digit"
        )
    return name


class FlagRule(BaseModel):
    """One targeting rule: every condition given must hold; then `percentage` of that segment gets `value`.

    The percentage is sticky: a user's bucket is a stable hash of (flag salt, tenant, user), so raising
    it from 5 to 10 keeps the first 5% in.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    value: FlagValue
    tenants: tuple[str, ...] = ()
    users: tuple[str, ...] = ()
    attributes: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    """Run metadata key -> accepted values (compared as text); `origin` is always available."""
    percentage: float = Field(default=100.0, ge=0.0, le=100.0)

    def describe(self) -> str:
        parts = []
        if self.tenants:
            parts.append("tenant in " + ",".join(self.tenants))
        if self.users:
            parts.append("user in " + ",".join(self.users))
        parts += [f"{key} in {','.join(values)}" for key, values in sorted(self.attributes.items())]
        segment = " and ".join(parts) or "everyone"
        share = "" if self.percentage >= 100 else f" ({self.percentage:g}%)"
        return f"{segment}{share} -> {_show(self.value)}"


def _show(value: FlagValue) -> str:
    return str(value).lower() if isinstance(value, bool) else value


class FlagSpec(BaseModel):
    """What a flag serves: `off` when switched off, else the first matching rule's value, else `default`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: FlagKind = "bool"
    variations: tuple[FlagValue, ...] = (True, False)
    enabled: bool = True
    default: FlagValue = False
    off: FlagValue = False
    rules: tuple[FlagRule, ...] = ()
    description: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> FlagSpec:
        expected = bool if self.kind == "bool" else str
        if not self.variations:
            raise ValueError("a flag needs at least one variation")
        if len(set(self.variations)) != len(self.variations):
            raise ValueError("variations must be distinct")
        for value in self.variations:
            if type(value) is not expected:
                raise ValueError(f"a {self.kind} flag's variations must all be {self.kind}s, not {value!r}")
        served = [("default", self.default), ("off", self.off)]
        served += [(f"rule {i + 1}", rule.value) for i, rule in enumerate(self.rules)]
        for where, value in served:
            if value not in self.variations or type(value) is not expected:
                raise ValueError(
                    f"{where} serves {_show(value)!r}, which is not one of the variations "
                    f"({', '.join(_show(v) for v in self.variations)})"
                )
        return self


class FlagRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    spec: FlagSpec
    version: int
    """How many times this flag was changed (1 when created)."""
    updated_by: str
    updated_at: datetime


class ExperimentArm(BaseModel):
    """One arm: a share of the enrolled users (`weight`) and what they get (a release and/or a flag value)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    weight: float = Field(gt=0)
    release: str | None = None
    """A release version these users run on (traffic assignment honours it)."""
    flag: str | None = None
    value: FlagValue | None = None
    """With `flag`: the variation of that flag these users get, whatever its targeting says."""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_name(value, "arm")

    @model_validator(mode="after")
    def _names_something(self) -> ExperimentArm:
        if (self.flag is None) != (self.value is None):
            raise ValueError(f"arm {self.name}: give both a flag and its value, or neither")
        if self.release is None and self.flag is None:
            raise ValueError(f"arm {self.name}: name a release or a flag variation")
        return self


class ExperimentSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    arms: tuple[ExperimentArm, ...]
    metric: ExperimentMetric = "success"
    traffic: float = Field(default=100.0, gt=0.0, le=100.0)
    """Share of production users enrolled (sticky); the rest get no arm."""
    min_effect: float | None = Field(default=None, gt=0)
    """The smallest difference worth detecting, in the metric's unit (sample size planning)."""
    description: str = ""

    @model_validator(mode="after")
    def _arms(self) -> ExperimentSpec:
        if len(self.arms) < 2:
            raise ValueError("an experiment needs at least two arms")
        names = [arm.name for arm in self.arms]
        if len(set(names)) != len(names):
            raise ValueError("arm names must be distinct")
        if len({arm.release is None for arm in self.arms}) > 1:
            raise ValueError("either every arm names a release (an experiment between releases) or none does")
        return self

    @property
    def between_releases(self) -> bool:
        """Its arms name releases: release assignment enrols users (from the live share only)."""
        return self.arms[0].release is not None


class ExperimentRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    salt: str
    """Per experiment, so its buckets are independent of every other experiment's and flag's."""
    status: Literal["running", "stopped"]
    spec: ExperimentSpec
    created_by: str
    created_at: datetime
    stopped_by: str | None = None
    stopped_at: datetime | None = None


class ChangeRecord(BaseModel):
    """One audited change of a flag or an experiment: who, why, when, and the live revision it made."""

    model_config = ConfigDict(frozen=True)

    id: int
    subject_kind: Literal["flag", "experiment"]
    subject: str
    action: str
    actor: str
    reason: str
    revision: int
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    changed_at: datetime


class ArmOutcome(BaseModel):
    """One enrolled run's measures, for the experiment report."""

    arm: str
    status: str
    cost_usd: float
    feedback: float | None
