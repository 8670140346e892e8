"""Changes to flag definitions, as operators phrase them (switch on, add a rule, set the default).

The CLI, the HTTP API and the dashboard all edit flags through these functions, so a change means
the same everywhere; `save_flag` commits it (audited, with a new live revision) and tells every
process at once.
"""

from __future__ import annotations

from collections.abc import Sequence

from tether.live import LiveConfig
from tether.store.flag_records import FlagKind, FlagRecord, FlagRule, FlagSpec, FlagValue
from tether.store.flags import FLAGS_TOPIC
from tether.store.repository import Store


def parse_value(kind: FlagKind, text: str) -> FlagValue:
    """A variation typed by a person: `true`/`false` (also on/off, yes/no, 1/0) for bool flags."""
    if kind == "string":
        return text
    lowered = text.strip().lower()
    if lowered in ("true", "on", "yes", "1"):
        return True
    if lowered in ("false", "off", "no", "0"):
        return False
    raise ValueError(f"{text!r} is not a bool flag value (use true or false)")


def new_spec(
    kind: FlagKind,
    *,
    variations: Sequence[str] = (),
    default: str | None = None,
    off: str | None = None,
    enabled: bool = False,
    description: str = "",
) -> FlagSpec:
    """A new flag; a bool flag serves false unless told otherwise, a string flag its first variation."""
    if kind == "bool":
        values: tuple[FlagValue, ...] = (True, False)
        fallback: FlagValue = False
    else:
        if not variations:
            raise ValueError("a string flag needs its variations (e.g. --variations short,detailed)")
        values = tuple(variations)
        fallback = values[0]
    return FlagSpec(
        kind=kind,
        variations=values,
        enabled=enabled,
        default=fallback if default is None else parse_value(kind, default),
        off=fallback if off is None else parse_value(kind, off),
        description=description,
    )


def edit(
    spec: FlagSpec,
    *,
    enabled: bool | None = None,
    default: str | None = None,
    off: str | None = None,
    description: str | None = None,
) -> FlagSpec:
    """The same flag with the given settings changed (validated again as a whole)."""
    changes: dict[str, object] = {}
    if enabled is not None:
        changes["enabled"] = enabled
    if default is not None:
        changes["default"] = parse_value(spec.kind, default)
    if off is not None:
        changes["off"] = parse_value(spec.kind, off)
    if description is not None:
        changes["description"] = description
    return FlagSpec.model_validate({**spec.model_dump(), **changes})


def parse_attributes(pairs: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """`plan=pro` or `plan=pro,team` pairs into a rule's attribute conditions."""
    attributes: dict[str, tuple[str, ...]] = {}
    for pair in pairs:
        key, sep, values = pair.partition("=")
        if not sep or not key.strip() or not values.strip():
            raise ValueError(f"attribute condition {pair!r} must look like key=value or key=v1,v2")
        attributes[key.strip()] = tuple(v.strip() for v in values.split(",") if v.strip())
    return attributes


def add_rule(
    spec: FlagSpec,
    *,
    value: str,
    tenants: Sequence[str] = (),
    users: Sequence[str] = (),
    attributes: Sequence[str] = (),
    percentage: float = 100.0,
) -> FlagSpec:
    """Append a targeting rule (rules are checked in order; the first that matches decides)."""
    rule = FlagRule(
        value=parse_value(spec.kind, value),
        tenants=tuple(tenants),
        users=tuple(users),
        attributes=parse_attributes(attributes),
        percentage=percentage,
    )
    return FlagSpec.model_validate({**spec.model_dump(), "rules": (*spec.rules, rule)})


def remove_rule(spec: FlagSpec, number: int) -> FlagSpec:
    """Drop rule `number` (1-based, as `tether flags show` numbers them)."""
    if not 1 <= number <= len(spec.rules):
        raise ValueError(f"the flag has {len(spec.rules)} rule(s); there is no rule {number}")
    rules = spec.rules[: number - 1] + spec.rules[number:]
    return FlagSpec.model_validate({**spec.model_dump(), "rules": rules})


def clear_rules(spec: FlagSpec) -> FlagSpec:
    return FlagSpec.model_validate({**spec.model_dump(), "rules": ()})


async def save_flag(
    store: Store,
    live: LiveConfig,
    name: str,
    spec: FlagSpec,
    *,
    actor: str,
    reason: str,
    action: str,
    expected_version: int | None = None,
) -> FlagRecord:
    """Commit a flag's new definition (audited, new `flags` revision), then tell every process."""
    saved = await store.flags.put(
        name, spec, actor=actor, reason=reason, action=action, expected_version=expected_version
    )
    await live.changed(FLAGS_TOPIC)
    return saved


async def delete_flag(store: Store, live: LiveConfig, name: str, *, actor: str, reason: str) -> None:
    await store.flags.delete(name, actor=actor, reason=reason)
    await live.changed(FLAGS_TOPIC)
