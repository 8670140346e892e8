"""The `@tool` decorator: schemas from signatures and docstrings, validation, invocation, metadata."""

from __future__ import annotations

import asyncio
import inspect
import json
import time
import types
from enum import Enum
from pathlib import Path
from typing import Any, Literal, Optional

import pytest
from pydantic import BaseModel

from tether.agent.tools import (
    Tool,
    ToolArgumentError,
    ToolContext,
    collect_tools,
    make_tool,
    render_result,
    tool,
)
from tether.models.base import ToolSpec

# --------------------------------------------------------------------------- tools under test
# (module level: annotations are strings here, and get_type_hints resolves them in these globals)


class Address(BaseModel):
    street: str
    zip_code: int


class Color(Enum):
    RED = "red"
    BLUE = "blue"


@tool
def plan_delivery(
    name: str,
    count: int,
    ids: list[int],
    mode: Literal["fast", "slow"] = "slow",
    address: Address | None = None,
    note: Optional[str] = None,  # noqa: UP045
    color: Color = Color.RED,
    ratio: float = 0.5,
    gift: bool = False,
) -> dict[str, Any]:
    """Plan a delivery for some items.

    Args:
        name: Who receives the parcel.
        count (int): How many parcels
            to send in total.
        ids: The item ids.

    Returns:
        summary: A dict describing the plan (not a parameter).
    """
    return {"name": name, "count": count, "ids": ids, "mode": mode, "address": address, "note": note}


@tool(side_effect="write", risk="high", requires_approval=True, timeout_s=5.0, retries=2, idempotent=True)
def issue_credit(order_id: str, amount: float, ctx: ToolContext) -> dict[str, Any]:
    """Issue store credit for an order.

    Args:
        order_id: The order to credit.
        amount: Dollars to credit.
    """
    return {"order_id": order_id, "amount": amount, "user": ctx.user_id, "key": ctx.idempotency_key}


@tool(name="shout")
async def shout_async(text: str, times: int = 1) -> str:
    """Shout the text."""
    await asyncio.sleep(0)
    return " ".join([text.upper()] * times)


def undocumented_helper(value: int) -> int:
    return value * 2


@pytest.fixture
def ctx(tmp_path: Path) -> ToolContext:
    return ToolContext(
        run_id="run-1",
        user_id="alice",
        thread_id=None,
        step=3,
        idempotency_key="run-1:3",
        data_dir=tmp_path,
        release_version="v1",
    )


def built(fn: Any) -> Tool:
    found = fn.__tether_tool__
    assert isinstance(found, Tool)
    return found


# --------------------------------------------------------------------------- schema


def test_schema_types_follow_the_signature() -> None:
    schema = built(plan_delivery).parameters
    props = schema["properties"]
    assert schema["type"] == "object"
    assert props["name"]["type"] == "string"
    assert props["count"]["type"] == "integer"
    assert props["ratio"]["type"] == "number"
    assert props["gift"]["type"] == "boolean"
    assert props["ids"] == {"type": "array", "items": {"type": "integer"}, "description": "The item ids."}
    assert props["mode"]["enum"] == ["fast", "slow"]
    assert props["mode"]["default"] == "slow"


def test_required_are_exactly_the_parameters_without_defaults() -> None:
    schema = built(plan_delivery).parameters
    assert sorted(schema["required"]) == ["count", "ids", "name"]
    for optional in ("mode", "address", "note", "color", "ratio", "gift"):
        assert optional in schema["properties"]
        assert optional not in schema["required"]


def test_optional_parameter_allows_null() -> None:
    note = built(plan_delivery).parameters["properties"]["note"]
    assert {"type": "string"} in note["anyOf"]
    assert {"type": "null"} in note["anyOf"]
    assert note["default"] is None


def test_enum_parameter_lists_its_values() -> None:
    schema = built(plan_delivery).parameters
    color = schema["properties"]["color"]
    assert color["default"] == "red"
    ref = color["$ref"].rsplit("/", 1)[-1]
    assert schema["$defs"][ref]["enum"] == ["red", "blue"]


def test_nested_model_parameter_is_described_in_defs() -> None:
    schema = built(plan_delivery).parameters
    address = schema["properties"]["address"]
    refs = [option["$ref"] for option in address["anyOf"] if "$ref" in option]
    assert len(refs) == 1
    nested = schema["$defs"][refs[0].rsplit("/", 1)[-1]]
    assert nested["properties"]["street"]["type"] == "string"
    assert nested["properties"]["zip_code"]["type"] == "integer"
    assert sorted(nested["required"]) == ["street", "zip_code"]


def test_schema_forbids_additional_properties_and_drops_titles() -> None:
    schema = built(plan_delivery).parameters
    assert schema["additionalProperties"] is False
    assert "title" not in schema
    assert all("title" not in prop for prop in schema["properties"].values())


def test_docstring_args_become_parameter_descriptions() -> None:
    props = built(plan_delivery).parameters["properties"]
    assert props["name"]["description"] == "Who receives the parcel."
    # a typed entry `count (int): ...` with a continuation line is joined into one description
    assert props["count"]["description"] == "How many parcels to send in total."
    # parameters the Args section does not mention have no description
    assert "description" not in props["mode"]
    # the Returns section is not read as a parameter
    assert "summary" not in props


def test_summary_becomes_the_tool_description() -> None:
    t = built(plan_delivery)
    assert t.description == "Plan a delivery for some items."
    assert "Args" not in t.description and "parcel" not in t.description


def test_description_falls_back_to_the_name_without_docstring() -> None:
    t = make_tool(undocumented_helper)
    assert t.name == "undocumented_helper"
    assert t.description == "undocumented helper"
    assert t.parameters["properties"]["value"] == {"type": "integer"}


def test_spec_carries_name_description_and_schema() -> None:
    t = built(shout_async)
    spec = t.spec()
    assert isinstance(spec, ToolSpec)
    assert spec.name == "shout"
    assert spec.description == "Shout the text."
    assert spec.parameters == t.parameters
    assert spec.parameters["required"] == ["text"]


def test_tool_context_parameter_is_not_in_the_schema() -> None:
    t = built(issue_credit)
    assert t.context_param == "ctx"
    assert set(t.parameters["properties"]) == {"order_id", "amount"}
    assert "ctx" not in t.parameters["required"]
    assert "ToolContext" not in json.dumps(t.parameters)


def test_optional_tool_context_is_not_exposed_to_the_model() -> None:
    """`ctx: ToolContext | None = None` (so the function can also be called without a context)
    must still be the injected context: otherwise the model is offered a `ctx` argument and can
    forge the user_id a tool acts for."""

    def lookup(order_id: str, ctx: ToolContext | None = None) -> str:
        return ctx.user_id if ctx else "nobody"

    try:
        t = make_tool(lookup)
    except TypeError:
        return  # refusing the signature outright is also safe
    assert "ctx" not in t.parameters["properties"]
    assert t.context_param == "ctx"


def test_metadata_describes_the_gates() -> None:
    meta = built(issue_credit).metadata()
    assert meta["name"] == "issue_credit"
    assert meta["side_effect"] == "write"
    assert meta["risk"] == "high"
    assert meta["requires_approval"] is True
    assert meta["timeout_s"] == 5.0
    assert meta["retries"] == 2
    assert meta["idempotent"] is True
    assert meta["parameters"] == built(issue_credit).parameters


def test_defaults_are_a_low_risk_read_tool() -> None:
    t = built(plan_delivery)
    assert (t.side_effect, t.risk, t.requires_approval, t.retries, t.idempotent) == (
        "read",
        "low",
        False,
        0,
        False,
    )
    assert t.timeout_s > 0
    assert not t.is_write
    assert t.safe_to_repeat


def test_write_tool_is_safe_to_repeat_only_when_idempotent() -> None:
    def refund(order_id: str) -> str:
        return order_id

    assert built(issue_credit).is_write and built(issue_credit).safe_to_repeat
    plain = make_tool(refund, side_effect="write")
    assert plain.is_write
    assert not plain.safe_to_repeat


# --------------------------------------------------------------------------- validation


def test_validation_coerces_to_declared_types() -> None:
    args = built(plan_delivery).validate(
        {"name": "Bo", "count": "5", "ids": ["1", 2], "address": {"street": "Main", "zip_code": "12345"}}
    )
    assert args["count"] == 5 and isinstance(args["count"], int)
    assert args["ids"] == [1, 2]
    assert isinstance(args["address"], Address)
    assert args["address"].zip_code == 12345
    # defaults are filled in
    assert args["mode"] == "slow"
    assert args["note"] is None


def test_validation_error_names_the_bad_field() -> None:
    with pytest.raises(ToolArgumentError) as info:
        built(plan_delivery).validate({"name": "Bo", "count": "five", "ids": []})
    message = str(info.value)
    assert "plan_delivery" in message
    assert "count" in message
    assert "name" not in message.replace("plan_delivery", "")
    assert isinstance(info.value, ValueError)


def test_validation_error_names_a_nested_field() -> None:
    with pytest.raises(ToolArgumentError, match=r"address\.zip_code"):
        built(plan_delivery).validate(
            {"name": "Bo", "count": 1, "ids": [], "address": {"street": "Main", "zip_code": "x"}}
        )


def test_validation_lists_every_missing_field() -> None:
    with pytest.raises(ToolArgumentError) as info:
        built(plan_delivery).validate({"name": "Bo"})
    assert "count" in str(info.value)
    assert "ids" in str(info.value)


def test_literal_rejects_values_outside_the_enum() -> None:
    with pytest.raises(ToolArgumentError, match="mode"):
        built(plan_delivery).validate({"name": "Bo", "count": 1, "ids": [], "mode": "teleport"})


def test_unknown_arguments_are_rejected() -> None:
    with pytest.raises(ToolArgumentError, match="surprise"):
        built(plan_delivery).validate({"name": "Bo", "count": 1, "ids": [], "surprise": True})


def test_model_cannot_pass_the_context_argument(ctx: ToolContext) -> None:
    forged = {"run_id": "x", "user_id": "mallory", "thread_id": None, "step": 1}
    with pytest.raises(ToolArgumentError, match="ctx"):
        built(issue_credit).validate({"order_id": "1", "amount": 1, "ctx": forged})


# --------------------------------------------------------------------------- invoke


async def test_invoke_sync_tool_with_injected_context(ctx: ToolContext) -> None:
    result = await built(issue_credit).invoke({"order_id": "10001", "amount": "12.5"}, ctx)
    assert result == {"order_id": "10001", "amount": 12.5, "user": "alice", "key": "run-1:3"}


async def test_invoke_async_tool(ctx: ToolContext) -> None:
    assert await built(shout_async).invoke({"text": "hi", "times": "2"}, ctx) == "HI HI"


async def test_invoke_validates_before_calling(ctx: ToolContext) -> None:
    calls: list[int] = []

    def record(value: int) -> int:
        calls.append(value)
        return value

    t = make_tool(record)
    with pytest.raises(ToolArgumentError):
        await t.invoke({"value": "not a number"}, ctx)
    assert calls == []
    assert await t.invoke({"value": "7"}, ctx) == 7
    assert calls == [7]


async def test_invoke_passes_coerced_values(ctx: ToolContext) -> None:
    result = await built(plan_delivery).invoke({"name": "Bo", "count": "3", "ids": ["4"]}, ctx)
    assert result["count"] == 3
    assert result["ids"] == [4]
    assert result["mode"] == "slow"


async def test_timeout_applies_to_slow_async_tool(ctx: ToolContext) -> None:
    async def slow(x: int) -> int:
        await asyncio.sleep(1)
        return x

    t = make_tool(slow, timeout_s=0.05)
    with pytest.raises((asyncio.TimeoutError, TimeoutError)):
        await t.invoke({"x": 1}, ctx)


async def test_timeout_applies_to_slow_sync_tool(ctx: ToolContext) -> None:
    def slow(x: int) -> int:
        time.sleep(1)
        return x

    t = make_tool(slow, timeout_s=0.05)
    with pytest.raises((asyncio.TimeoutError, TimeoutError)):
        await t.invoke({"x": 1}, ctx)


async def test_tool_errors_propagate_from_invoke(ctx: ToolContext) -> None:
    def broken(x: int) -> int:
        raise RuntimeError(f"boom {x}")

    with pytest.raises(RuntimeError, match="boom 3"):
        await make_tool(broken).invoke({"x": 3}, ctx)


# --------------------------------------------------------------------------- metadata errors


@pytest.mark.parametrize(
    ("options", "mentions"),
    [
        ({"side_effect": "delete"}, "side_effect"),
        ({"risk": "extreme"}, "risk"),
        ({"retries": -1}, "retries"),
        ({"timeout_s": 0}, "timeout_s"),
        ({"timeout_s": -1.0}, "timeout_s"),
    ],
)
def test_bad_metadata_is_refused(options: dict[str, Any], mentions: str) -> None:
    def fine(x: int) -> int:
        return x

    with pytest.raises(ValueError, match=mentions):
        make_tool(fine, **options)
    with pytest.raises(ValueError, match=mentions):
        tool(**options)(fine)


def test_missing_annotation_is_refused() -> None:
    def untyped(x, y: int) -> int:  # type: ignore[no-untyped-def]
        return y

    with pytest.raises(TypeError, match=r"'x'.*annotation"):
        make_tool(untyped)


def test_var_args_are_refused() -> None:
    def star(*items: int) -> int:
        return len(items)

    def double_star(**options: int) -> int:
        return len(options)

    with pytest.raises(TypeError, match=r"\*args"):
        make_tool(star)
    with pytest.raises(TypeError, match=r"\*args"):
        tool(double_star)


# --------------------------------------------------------------------------- decorator and collection


def test_decorated_functions_stay_directly_callable() -> None:
    assert plan_delivery("Bo", 2, [1])["count"] == 2
    assert inspect.iscoroutinefunction(shout_async)
    assert asyncio.run(shout_async("a", times=2)) == "A A"
    assert plan_delivery.__name__ == "plan_delivery"


def test_collect_tools_finds_decorated_functions_by_name() -> None:
    module = types.ModuleType("fake_tools")
    module.plan_delivery = plan_delivery  # type: ignore[attr-defined]
    module.issue_credit = issue_credit  # type: ignore[attr-defined]
    module.shout_async = shout_async  # type: ignore[attr-defined]
    module.undocumented_helper = undocumented_helper  # type: ignore[attr-defined]
    module.CONSTANT = 3  # type: ignore[attr-defined]
    found = collect_tools(module)
    assert set(found) == {"plan_delivery", "issue_credit", "shout"}
    assert found["shout"].fn is shout_async
    assert found["issue_credit"].side_effect == "write"


def test_collect_tools_counts_an_alias_once() -> None:
    module = types.ModuleType("aliased")
    module.a = plan_delivery  # type: ignore[attr-defined]
    module.b = plan_delivery  # type: ignore[attr-defined]
    assert list(collect_tools(module)) == ["plan_delivery"]


def test_collect_tools_rejects_two_tools_with_one_name() -> None:
    def first(x: int) -> int:
        return x

    def second(x: int) -> int:
        return x

    module = types.ModuleType("clash")
    module.first = tool(name="same")(first)  # type: ignore[attr-defined]
    module.second = tool(name="same")(second)  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="same"):
        collect_tools(module)


def test_collect_tools_on_a_module_without_tools() -> None:
    assert collect_tools(types.ModuleType("empty")) == {}


# --------------------------------------------------------------------------- render_result


def test_render_result() -> None:
    assert render_result("plain text") == "plain text"
    assert render_result({"b": 1, "a": [1, 2]}) == '{"a": [1, 2], "b": 1}'
    assert json.loads(render_result(Address(street="Main", zip_code=1))) == {"street": "Main", "zip_code": 1}
    assert json.loads(render_result({"path": Path("/x/y")})) == {"path": "/x/y"}
    assert render_result(None) == "null"
    assert render_result(3) == "3"


def test_retries_on_a_non_idempotent_write_are_refused() -> None:
    def charge(amount: int) -> str:
        return f"charged {amount}"

    with pytest.raises(ValueError, match="retries need a read tool or idempotent=True"):
        make_tool(charge, side_effect="write", retries=2)
    assert make_tool(charge, side_effect="write", retries=2, idempotent=True).retries == 2
