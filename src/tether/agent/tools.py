"""The `@tool` decorator: a typed Python function becomes a tool a model can call.

The JSON schema comes from the signature (via pydantic) and the docstring; the same
pydantic model validates the model's arguments before the function ever runs.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import re
import types
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints, overload

import docstring_parser
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from tether.agent.threads import run_in_daemon_thread
from tether.models.base import ToolSpec

SideEffect = Literal["read", "write"]
Risk = Literal["low", "medium", "high"]
RISK_ORDER: dict[str, int] = {"none": 0, "low": 1, "medium": 2, "high": 3}

F = TypeVar("F", bound=Callable[..., Any])
Bounds = tuple[float | None, float | None]
"""(minimum, maximum) of a numeric argument, either end open with None."""
Precheck = Callable[[dict[str, Any], "ToolContext"], "str | Awaitable[str | None] | None"]
"""Called with the validated arguments before the tool runs; a string is the reason to refuse."""


@dataclass(frozen=True)
class ToolContext:
    """What the runtime hands a tool that asks for it (by annotating a parameter with this type).

    A user id is only unique inside its tenant: a tool that reads or writes someone's data must key
    it by `(tenant_id, user_id)`, never by `user_id` alone. `scopes` are those of the API key that
    created the run (empty for runs started locally, e.g. `tether run` or an eval).
    `idempotency_key` is `run_id:step`; a write tool can store it to make a retry harmless.
    `flags` are the run's feature flags (see docs/flags.md), e.g. `context.flags.get("new-refunds")`.
    """

    run_id: str
    user_id: str
    thread_id: str | None
    step: int
    idempotency_key: str
    data_dir: Path
    release_version: str
    tenant_id: str = "default"
    scopes: frozenset[str] = frozenset()
    flags: Mapping[str, bool | str] = field(default_factory=dict)
    """Feature flags evaluated when the run was submitted (the same on every step and resume)."""


class ToolArgumentError(ValueError):
    """The model's arguments do not match the tool's schema."""


@dataclass
class Tool:
    """A callable plus everything the runtime needs to gate and execute it."""

    name: str
    description: str
    fn: Callable[..., Any]
    args_model: type[BaseModel]
    context_param: str | None
    side_effect: SideEffect = "read"
    risk: Risk = "low"
    requires_approval: bool = False
    timeout_s: float = 30.0
    retries: int = 0
    idempotent: bool = False
    parameters: dict[str, Any] = field(default_factory=dict)
    decisive: tuple[str, ...] = ()
    """Arguments that decide what a write does (which order, how much): the guard checks where their
    values came from and escalates a write whose decisive values came only from tool results."""
    intent: str | None = None
    """A regular expression the user's request must match for this write to run without a human."""
    max_calls_per_run: int | None = None
    bounds: dict[str, Bounds] = field(default_factory=dict)
    allowed_values: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    precheck: Precheck | None = None
    cache_ttl: float | None = None
    """Seconds a result may be reused for the same arguments (read tools only; see docs/caches.md)."""

    @property
    def is_write(self) -> bool:
        return self.side_effect == "write"

    @property
    def safe_to_repeat(self) -> bool:
        """A call may run again without a human: reads, and writes declared idempotent."""
        return not self.is_write or self.idempotent

    def spec(self) -> ToolSpec:
        return ToolSpec(name=self.name, description=self.description, parameters=self.parameters)

    def metadata(self) -> dict[str, Any]:
        """Everything about the tool that changes behaviour; part of a release's hash."""
        return {
            "name": self.name,
            "description": self.description,
            "parameters": self.parameters,
            "side_effect": self.side_effect,
            "risk": self.risk,
            "requires_approval": self.requires_approval,
            "timeout_s": self.timeout_s,
            "retries": self.retries,
            "idempotent": self.idempotent,
            **self._guard_metadata(),
            **({"cache_ttl": self.cache_ttl} if self.cache_ttl is not None else {}),
        }

    def _guard_metadata(self) -> dict[str, Any]:
        """The guard options that are set (none for a tool that declares none, so old hashes hold)."""
        options: dict[str, Any] = {
            "decisive": list(self.decisive),
            "intent": self.intent,
            "max_calls_per_run": self.max_calls_per_run,
            "bounds": {name: list(b) for name, b in sorted(self.bounds.items())},
            "allowed_values": {name: list(v) for name, v in sorted(self.allowed_values.items())},
            "precheck": _qualname(self.precheck) if self.precheck is not None else None,
        }
        return {key: value for key, value in options.items() if value not in (None, [], {})}

    def validate(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """Return the arguments coerced to the declared types, or raise `ToolArgumentError`."""
        try:
            parsed = self.args_model.model_validate(arguments)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '(arguments)'}: {err['msg']}"
                for err in exc.errors()
            )
            raise ToolArgumentError(f"invalid arguments for {self.name}: {problems}") from None
        return {name: getattr(parsed, name) for name in type(parsed).model_fields}

    async def invoke(
        self, arguments: dict[str, Any], context: ToolContext, *, before: Callable[[], None] | None = None
    ) -> Any:
        """Validate, then call once with the tool's timeout. Retries are the runtime's job.

        `before` runs immediately before the function is entered: in the sync tool's own thread, or
        in the same synchronous stretch as an async tool's first step. The runtime's last control
        check goes there, so nothing the event loop does while the call is set up (a reload of the
        kill switches) can slip in between the check and the call. It raises to stop the call.
        """
        kwargs = self.validate(arguments)
        if self.context_param is not None:
            kwargs[self.context_param] = context
        fn = self.fn if before is None else _preceded(before, self.fn)
        if inspect.iscoroutinefunction(self.fn):
            call: Awaitable[Any] = fn(**kwargs)
        else:
            call = run_in_daemon_thread(fn, **kwargs)
        return await asyncio.wait_for(call, timeout=self.timeout_s)


def _preceded(before: Callable[[], None], fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn` with `before()` called first, with nothing in between (sync or async alike)."""
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def preceded_async(**kwargs: Any) -> Any:
            before()
            return await fn(**kwargs)

        return preceded_async

    @functools.wraps(fn)
    def preceded(**kwargs: Any) -> Any:
        before()
        return fn(**kwargs)

    return preceded


def _qualname(fn: Callable[..., Any]) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def _parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """Split a docstring (Google, NumPy, reST or Epydoc style) into (summary, {param: description}).

    The summary is the text before the first section, joined into one line: it is what the model
    reads about the tool.
    """
    if not doc:
        return "", {}
    parsed = docstring_parser.parse(doc)
    summary = " ".join(part for part in (parsed.short_description, parsed.long_description) if part)
    params = {p.arg_name.lstrip("*"): " ".join(p.description.split()) for p in parsed.params if p.description}
    return " ".join(summary.split()), params


def documentation_gaps(tools: Iterable[Tool]) -> list[str]:
    """What the model will not be told about these tools: a missing docstring, undescribed arguments.

    The model knows a tool only by its name, its docstring and its argument descriptions, so each
    gap is worth a warning when a release is made or a run starts.
    """
    gaps: list[str] = []
    for t in tools:
        summary, _ = _parse_docstring(t.fn.__doc__)
        if not summary:
            gaps.append(
                f"tool {t.name} has no docstring: the model only sees its name and argument types "
                "(add a one-line summary and an Args: section)"
            )
        missing = [n for n, f in t.args_model.model_fields.items() if not f.description]
        if missing:
            gaps.append(
                f"tool {t.name}: no description for argument(s) {', '.join(missing)} "
                "(describe each in the docstring's Args: section)"
            )
    return gaps


def _is_context(annotation: Any) -> bool:
    """`ToolContext`, or `ToolContext | None`: injected by the runtime, never offered to the model."""
    if annotation is ToolContext:
        return True
    return get_origin(annotation) in (Union, types.UnionType) and ToolContext in get_args(annotation)


def _build_args_model(
    fn: Callable[..., Any], name: str, docs: dict[str, str]
) -> tuple[type[BaseModel], str | None]:
    hints = get_type_hints(fn)
    fields: dict[str, Any] = {}
    context_param: str | None = None
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise TypeError(f"tool {name}: *args and **kwargs cannot be described to a model")
        annotation = hints.get(param.name)
        if annotation is None:
            raise TypeError(f"tool {name}: parameter {param.name!r} needs a type annotation")
        if _is_context(annotation):
            context_param = param.name
            continue
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[param.name] = (annotation, Field(default, description=docs.get(param.name)))
    model_name = "".join(part.title() for part in name.split("_")) + "Arguments"
    model = create_model(model_name, __config__=ConfigDict(extra="forbid"), **fields)
    return model, context_param


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema()
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)
    return schema


def make_tool(
    fn: Callable[..., Any],
    *,
    name: str | None = None,
    side_effect: SideEffect = "read",
    risk: Risk = "low",
    requires_approval: bool = False,
    timeout_s: float = 30.0,
    retries: int = 0,
    idempotent: bool = False,
    decisive: Iterable[str] = (),
    intent: str | None = None,
    max_calls_per_run: int | None = None,
    bounds: dict[str, Bounds] | None = None,
    allowed_values: dict[str, Iterable[Any]] | None = None,
    precheck: Precheck | None = None,
    cache_ttl: float | None = None,
) -> Tool:
    tool_name = name or fn.__name__
    if side_effect not in ("read", "write"):
        raise ValueError(f"tool {tool_name}: side_effect must be 'read' or 'write', not {side_effect!r}")
    if risk not in ("low", "medium", "high"):
        raise ValueError(f"tool {tool_name}: risk must be 'low', 'medium' or 'high', not {risk!r}")
    if timeout_s <= 0 or retries < 0:
        raise ValueError(f"tool {tool_name}: timeout_s must be positive and retries non-negative")
    if retries and side_effect == "write" and not idempotent:
        raise ValueError(
            f"tool {tool_name}: retries need a read tool or idempotent=True "
            "(a failed write may have happened, so it is never repeated blindly)"
        )
    if cache_ttl is not None and (side_effect == "write" or cache_ttl <= 0):
        raise ValueError(
            f"tool {tool_name}: cache_ttl is for read tools only and must be positive "
            "(a write must happen every time it is asked for)"
        )
    summary, docs = _parse_docstring(fn.__doc__)
    args_model, context_param = _build_args_model(fn, tool_name, docs)
    guard = _guard_options(
        tool_name, args_model, decisive, intent, max_calls_per_run, bounds or {}, allowed_values or {}
    )
    return Tool(
        name=tool_name,
        description=summary or tool_name.replace("_", " "),
        fn=fn,
        args_model=args_model,
        context_param=context_param,
        side_effect=side_effect,
        risk=risk,
        requires_approval=requires_approval,
        timeout_s=timeout_s,
        retries=retries,
        idempotent=idempotent,
        parameters=_schema(args_model),
        decisive=guard.decisive,
        intent=intent,
        max_calls_per_run=max_calls_per_run,
        bounds=guard.bounds,
        allowed_values=guard.allowed_values,
        precheck=precheck,
        cache_ttl=cache_ttl,
    )


@dataclass(frozen=True)
class _GuardOptions:
    decisive: tuple[str, ...]
    bounds: dict[str, Bounds]
    allowed_values: dict[str, tuple[Any, ...]]


def _guard_options(
    tool_name: str,
    args_model: type[BaseModel],
    decisive: Iterable[str],
    intent: str | None,
    max_calls_per_run: int | None,
    bounds: dict[str, Bounds],
    allowed_values: dict[str, Iterable[Any]],
) -> _GuardOptions:
    """Check the guard options name real arguments, so a typo fails at import, not silently."""
    names = set(args_model.model_fields)
    chosen = tuple(decisive)
    for option, used in (("decisive", chosen), ("bounds", bounds), ("allowed_values", allowed_values)):
        unknown = sorted(set(used) - names)
        if unknown:
            raise ValueError(f"tool {tool_name}: {option} names unknown argument(s) {', '.join(unknown)}")
    if max_calls_per_run is not None and max_calls_per_run < 1:
        raise ValueError(f"tool {tool_name}: max_calls_per_run must be at least 1")
    if intent is not None:
        try:
            re.compile(intent)
        except re.error as exc:
            raise ValueError(f"tool {tool_name}: intent is not a valid regular expression: {exc}") from None
    return _GuardOptions(
        decisive=chosen,
        bounds=dict(bounds),
        allowed_values={name: tuple(values) for name, values in allowed_values.items()},
    )


@overload
def tool(fn: F, /) -> F: ...


@overload
def tool(
    *,
    name: str | None = None,
    side_effect: SideEffect = "read",
    risk: Risk = "low",
    requires_approval: bool = False,
    timeout_s: float = 30.0,
    retries: int = 0,
    idempotent: bool = False,
    decisive: Iterable[str] = (),
    intent: str | None = None,
    max_calls_per_run: int | None = None,
    bounds: dict[str, Bounds] | None = None,
    allowed_values: dict[str, Iterable[Any]] | None = None,
    precheck: Precheck | None = None,
    cache_ttl: float | None = None,
) -> Callable[[F], F]: ...


def tool(
    fn: F | None = None,
    /,
    *,
    name: str | None = None,
    side_effect: SideEffect = "read",
    risk: Risk = "low",
    requires_approval: bool = False,
    timeout_s: float = 30.0,
    retries: int = 0,
    idempotent: bool = False,
    decisive: Iterable[str] = (),
    intent: str | None = None,
    max_calls_per_run: int | None = None,
    bounds: dict[str, Bounds] | None = None,
    allowed_values: dict[str, Iterable[Any]] | None = None,
    precheck: Precheck | None = None,
    cache_ttl: float | None = None,
) -> F | Callable[[F], F]:
    """Mark a function as a tool. The function stays callable as before.

    Use bare (`@tool`) for a low-risk read tool, or with options
    (`@tool(side_effect="write", risk="high", requires_approval=True)`).
    Guard options (docs/guardrails.md): `decisive` arguments and the `intent` a user's request must
    show for a write, `max_calls_per_run`, numeric `bounds`, `allowed_values` and a `precheck`.
    """

    def decorate(func: F) -> F:
        built = make_tool(
            func,
            name=name,
            side_effect=side_effect,
            risk=risk,
            requires_approval=requires_approval,
            timeout_s=timeout_s,
            retries=retries,
            idempotent=idempotent,
            decisive=decisive,
            intent=intent,
            max_calls_per_run=max_calls_per_run,
            bounds=bounds,
            allowed_values=allowed_values,
            precheck=precheck,
            cache_ttl=cache_ttl,
        )
        func.__tether_tool__ = built  # type: ignore[attr-defined]
        return func

    return decorate(fn) if fn is not None else decorate


def collect_tools(module: object) -> dict[str, Tool]:
    """Every `@tool` defined in a module, by name."""
    found: dict[str, Tool] = {}
    for value in vars(module).values():
        built = getattr(value, "__tether_tool__", None)
        if isinstance(built, Tool):
            if built.name in found and found[built.name].fn is not built.fn:
                raise ValueError(f"two tools are named {built.name!r}")
            found[built.name] = built
    return found


def render_result(result: Any) -> str:
    """Turn a tool's return value into the text observation the model sees."""
    if isinstance(result, str):
        return result
    if isinstance(result, BaseModel):
        return result.model_dump_json()
    return json.dumps(result, default=str, sort_keys=True)
