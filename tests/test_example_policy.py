"""The support-agent example: its tools against the seeded database, and its scripted policy."""

from __future__ import annotations

import json
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tether.agent.project import AgentDefinition, load_agent, snapshot_project
from tether.agent.tools import ToolContext, render_result
from tether.models.base import Message, ToolCall, ToolSpec
from tether.models.scripted import ScriptedTurn

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "support_agent"
ESCALATE = ToolSpec(name="escalate_to_human", description="Hand the conversation to a human.", parameters={})


@pytest.fixture(scope="module")
def agent() -> AgentDefinition:
    return load_agent(snapshot_project(EXAMPLE))


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def make_ctx(data_dir: Path, user_id: str = "u1", key: str = "run-1:1") -> ToolContext:
    return ToolContext(
        run_id=key.split(":")[0],
        user_id=user_id,
        thread_id=None,
        step=1,
        idempotency_key=key,
        data_dir=data_dir,
        release_version="test",
    )


def specs(agent: AgentDefinition) -> list[ToolSpec]:
    return [tool.spec() for tool in agent.tools.values()] + [ESCALATE]


def turn_of(agent: AgentDefinition, messages: list[Message]) -> ScriptedTurn:
    return ScriptedTurn(messages=messages, tools=specs(agent))


def conversation(
    text: str, *steps: tuple[ToolCall, Any], history: list[Message] | None = None
) -> list[Message]:
    """A run's messages: system, earlier thread messages, the user's request, then calls and results."""
    messages = [Message(role="system", content="system prompt"), *(history or [])]
    messages.append(Message(role="user", content=text))
    for call, result in steps:
        messages.append(Message(role="assistant", tool_calls=[call]))
        content = result if isinstance(result, str) else json.dumps(result)
        messages.append(Message(role="tool", tool_call_id=call.id, name=call.name, content=content))
    return messages


def call(name: str, index: int, **arguments: Any) -> ToolCall:
    return ToolCall(id=f"call_{index}_{name}", name=name, arguments=arguments)


async def drive(
    agent: AgentDefinition,
    data_dir: Path,
    text: str,
    *,
    user_id: str = "u1",
    history: list[Message] | None = None,
    run_id: str = "run-1",
    approve: bool = True,
) -> tuple[str, list[ToolCall]]:
    """Run the policy against the real tools until it answers; return (answer, calls made)."""
    policy = agent.resolve("policy:respond")
    messages = conversation(text, history=history)
    made: list[ToolCall] = []
    for step in range(agent.config.limits.max_steps):
        result = policy(turn_of(agent, messages))
        if isinstance(result, str):
            return result, made
        calls = result if isinstance(result, list) else [result]
        messages.append(Message(role="assistant", tool_calls=calls))
        for tool_call in calls:
            assert all(
                (tool_call.name, tool_call.arguments) != (prev.name, prev.arguments) for prev in made
            ), f"repeated call {tool_call}"
            made.append(tool_call)
            if tool_call.name == "escalate_to_human":
                content = "escalated to a human"
            elif tool_call.name == "issue_refund" and not approve:
                content = "Tool call rejected by a human reviewer. Reason: the item was a final-sale purchase"
            else:
                ctx = make_ctx(data_dir, user_id, f"{run_id}:{step}")
                content = render_result(await agent.tools[tool_call.name].invoke(tool_call.arguments, ctx))
            messages.append(
                Message(role="tool", tool_call_id=tool_call.id, name=tool_call.name, content=content)
            )
    raise AssertionError("the policy did not answer within max_steps")


def db_rows(data_dir: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(data_dir / "support.db") as conn:
        return conn.execute(sql, params).fetchall()


# --------------------------------------------------------------------------- project and tools


def test_project_loads_with_expected_tools(agent: AgentDefinition) -> None:
    assert list(agent.tools) == [
        "search_policy",
        "lookup_order",
        "check_return_eligibility",
        "draft_refund_note",
        "issue_refund",
    ]
    refund = agent.tools["issue_refund"]
    assert (refund.side_effect, refund.risk, refund.requires_approval, refund.idempotent) == (
        "write",
        "high",
        True,
        True,
    )
    note = agent.tools["draft_refund_note"]
    assert (note.side_effect, note.risk, note.requires_approval, note.idempotent) == (
        "write",
        "low",
        False,
        True,
    )
    for tool in agent.tools.values():
        assert tool.description
        assert "ctx" not in tool.parameters["properties"]
        assert all(prop.get("description") for prop in tool.parameters["properties"].values()), tool.name
    assert "escalate_to_human" in agent.instructions
    assert agent.config.model.scripted_policy == "policy:respond"


async def test_seed_data_is_created_once_even_when_connections_race(
    agent: AgentDefinition, data_dir: Path
) -> None:
    ctx = make_ctx(data_dir)
    lookup = agent.tools["lookup_order"]

    def look() -> Any:
        import asyncio

        return asyncio.run(lookup.invoke({"order_id": "12345"}, ctx))

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda _: look(), range(6)))
    assert all(result["status"] == "shipped" for result in results)
    assert db_rows(data_dir, "SELECT COUNT(*) FROM orders") == [(37,)]
    assert db_rows(data_dir, "SELECT COUNT(*) FROM customers") == [(12,)]
    assert db_rows(data_dir, "SELECT COUNT(*) FROM policy_sections") == [(17,)]


async def test_lookup_order_returns_own_order(agent: AgentDefinition, data_dir: Path) -> None:
    order = await agent.tools["lookup_order"].invoke({"order_id": "12345"}, make_ctx(data_dir, "u1"))
    assert order["status"] == "shipped"
    assert order["carrier"] == "UPS"
    assert order["tracking_number"] == "1Z999AA10123456784"


async def test_lookup_order_hides_other_customers_orders(agent: AgentDefinition, data_dir: Path) -> None:
    result = await agent.tools["lookup_order"].invoke({"order_id": "12345"}, make_ctx(data_dir, "u2"))
    assert set(result) == {"error"}
    assert "12345" in result["error"]
    text = json.dumps(result)
    assert "Headphones" not in text and "1Z999" not in text

    answer, calls = await drive(agent, data_dir, "Where is my order 12345?", user_id="u2")
    assert [c.name for c in calls] == ["lookup_order"]
    assert "couldn't find order 12345 on your account" in answer
    assert "Headphones" not in answer and "UPS" not in answer


@pytest.mark.parametrize(
    ("user_id", "order_id", "eligible", "reason_part"),
    [
        ("u1", "12346", True, "within the 30-day"),
        ("u1", "12347", False, "outside the 30-day"),
        ("u1", "12345", False, "not been delivered"),
        ("u1", "12349", False, "cancelled"),
        ("u2", "12351", False, "already been refunded"),
        ("u6", "12363", True, "30 days ago"),
        ("u7", "12365", False, "31 days ago"),
    ],
)
async def test_return_eligibility(
    agent: AgentDefinition, data_dir: Path, user_id: str, order_id: str, eligible: bool, reason_part: str
) -> None:
    result = await agent.tools["check_return_eligibility"].invoke(
        {"order_id": order_id}, make_ctx(data_dir, user_id)
    )
    assert result["eligible"] is eligible
    assert reason_part in result["reason"]
    assert (result["max_refundable_usd"] > 0) is eligible


async def test_search_policy_ranks_the_relevant_section_first(agent: AgentDefinition, data_dir: Path) -> None:
    search = agent.tools["search_policy"]
    for query, title in [
        ("how many days do I have to return something", "Return Policy"),
        ("how long does shipping take", "Shipping Options and Delivery Times"),
        ("is my headphone covered by warranty", "Warranty"),
        ("do you sell my personal data", "Privacy and Your Data"),
    ]:
        results = await search.invoke({"query": query}, make_ctx(data_dir))
        assert 1 <= len(results) <= 3
        assert results[0]["title"] == title, query
    assert await search.invoke({"query": "the"}, make_ctx(data_dir)) == []


async def test_issue_refund_is_idempotent_per_key(agent: AgentDefinition, data_dir: Path) -> None:
    refund = agent.tools["issue_refund"]
    arguments = {"order_id": "12346", "amount_usd": 249.0, "reason": "within window"}
    first = await refund.invoke(arguments, make_ctx(data_dir, "u1", "run-9:4"))
    again = await refund.invoke(arguments, make_ctx(data_dir, "u1", "run-9:4"))
    assert first == again
    assert first["amount_usd"] == 249.0
    assert db_rows(data_dir, "SELECT COUNT(*) FROM refunds WHERE order_id = '12346'") == [(1,)]

    other_key = await refund.invoke(arguments, make_ctx(data_dir, "u1", "run-10:4"))
    assert "already been refunded" in other_key["error"]
    assert db_rows(data_dir, "SELECT COUNT(*) FROM refunds WHERE order_id = '12346'") == [(1,)]


async def test_issue_refund_validates_owner_and_amount(agent: AgentDefinition, data_dir: Path) -> None:
    refund = agent.tools["issue_refund"]
    not_mine = await refund.invoke(
        {"order_id": "12346", "amount_usd": 10.0, "reason": "x"}, make_ctx(data_dir, "u2", "r:1")
    )
    too_much = await refund.invoke(
        {"order_id": "12350", "amount_usd": 5000.0, "reason": "x"}, make_ctx(data_dir, "u1", "r:2")
    )
    assert "error" in not_mine and "error" in too_much
    assert "exceeds" in too_much["error"]
    assert db_rows(data_dir, "SELECT COUNT(*) FROM refunds") == [(1,)]  # only the seeded one


async def test_draft_refund_note_is_idempotent(agent: AgentDefinition, data_dir: Path) -> None:
    draft = agent.tools["draft_refund_note"]
    arguments = {"order_id": "12346", "note": "customer wants a refund"}
    first = await draft.invoke(arguments, make_ctx(data_dir, "u1", "run-3:2"))
    again = await draft.invoke(arguments, make_ctx(data_dir, "u1", "run-3:2"))
    assert first == again
    assert db_rows(data_dir, "SELECT COUNT(*) FROM refund_notes") == [(1,)]


# --------------------------------------------------------------------------- policy, step by step


def test_order_status_flow(agent: AgentDefinition) -> None:
    policy = agent.resolve("policy:respond")
    text = "Where is my order 12345?"
    first = policy(turn_of(agent, conversation(text)))
    assert isinstance(first, ToolCall)
    assert (first.name, first.arguments) == ("lookup_order", {"order_id": "12345"})

    order = {
        "order_id": "12345",
        "item": "Wireless Noise-Cancelling Headphones",
        "amount_usd": 189.99,
        "status": "shipped",
        "ordered_on": "2026-11-16",
        "delivered_on": None,
        "carrier": "UPS",
        "tracking_number": "1Z999AA10123456784",
        "note": "",
    }
    answer = policy(turn_of(agent, conversation(text, (first, order))))
    assert isinstance(answer, str)
    for fact in ("shipped", "UPS", "1Z999AA10123456784", "2026-11-16"):
        assert fact in answer


def test_rejected_approval_yields_apology(agent: AgentDefinition) -> None:
    policy = agent.resolve("policy:respond")
    text = "I want a refund for order 12346"
    order = {"order_id": "12346", "item": "Espresso Machine", "amount_usd": 249.0, "status": "delivered"}
    eligibility = {"order_id": "12346", "eligible": True, "max_refundable_usd": 249.0, "reason": "delivered"}
    steps = [
        (call("lookup_order", 2, order_id="12346"), order),
        (call("check_return_eligibility", 4, order_id="12346"), eligibility),
        (call("draft_refund_note", 6, order_id="12346", note="n"), {"note_id": 1, "order_id": "12346"}),
    ]
    rejections = [
        "Tool call rejected by a human reviewer. Reason: duplicate of a store-credit claim",
        {"error": "issue_refund was rejected by the reviewer", "reason": "duplicate of a store-credit claim"},
    ]
    for rejection in rejections:
        refund_call = call("issue_refund", 8, order_id="12346", amount_usd=249.0, reason="r")
        answer = policy(turn_of(agent, conversation(text, *steps, (refund_call, rejection))))
        assert isinstance(answer, str)
        assert "sorry" in answer.lower()
        assert "declined" in answer
        assert "duplicate of a store-credit claim" in answer
        assert "Done" not in answer


def test_tool_errors_get_an_apology_not_invented_data(agent: AgentDefinition) -> None:
    policy = agent.resolve("policy:respond")
    text = "Can I return order 12346?"
    lookup = call("lookup_order", 2, order_id="12346")
    for failure in (
        "tool error: TimeoutError()",
        "Error: database is locked",
        {"error": "database is locked"},
    ):
        answer = policy(turn_of(agent, conversation(text, (lookup, failure))))
        assert isinstance(answer, str)
        assert "sorry" in answer.lower()
        assert "look up order 12346" in answer
        assert "Espresso" not in answer and "$" not in answer


def test_order_number_comes_from_thread_history(agent: AgentDefinition) -> None:
    policy = agent.resolve("policy:respond")
    history = [
        Message(role="user", content="Where is my order 12346?"),
        Message(role="assistant", content="Order 12346 was delivered on 2026-11-06."),
    ]
    step = policy(turn_of(agent, conversation("Can I return it?", history=history)))
    assert isinstance(step, ToolCall)
    assert (step.name, step.arguments) == ("lookup_order", {"order_id": "12346"})

    ask = policy(turn_of(agent, conversation("I want a refund for my order")))
    assert isinstance(ask, str)
    assert "order number" in ask


@pytest.mark.parametrize(
    "text",
    ["I want to speak to a manager", "I'm calling my lawyer about order 12345", "I will file a chargeback"],
)
def test_escalation(agent: AgentDefinition, text: str) -> None:
    policy = agent.resolve("policy:respond")
    step = policy(turn_of(agent, conversation(text)))
    assert isinstance(step, ToolCall)
    assert step.name == "escalate_to_human"
    assert step.arguments["reason"]
    without_tool = policy(ScriptedTurn(messages=conversation(text), tools=[]))
    assert isinstance(without_tool, str)


def test_small_talk_gets_a_polite_answer(agent: AgentDefinition) -> None:
    answer = agent.resolve("policy:respond")(turn_of(agent, conversation("hello there")))
    assert isinstance(answer, str)
    assert "orders" in answer and "refunds" in answer


# --------------------------------------------------------------------------- policy against the real tools


async def test_refund_flow_reaches_issue_refund(agent: AgentDefinition, data_dir: Path) -> None:
    answer, calls = await drive(agent, data_dir, "I want a refund for order 12346")
    assert [c.name for c in calls] == [
        "lookup_order",
        "check_return_eligibility",
        "draft_refund_note",
        "issue_refund",
    ]
    assert calls[-1].arguments["order_id"] == "12346"
    assert calls[-1].arguments["amount_usd"] == 249.0
    assert "refund of $249.00" in answer
    assert db_rows(data_dir, "SELECT order_id, amount_usd FROM refunds WHERE order_id = '12346'") == [
        ("12346", 249.0)
    ]

    again, calls = await drive(agent, data_dir, "I want a refund for order 12346", run_id="run-2")
    assert "issue_refund" not in [c.name for c in calls]
    assert "already been refunded" in again


async def test_refund_rejected_by_reviewer_end_to_end(agent: AgentDefinition, data_dir: Path) -> None:
    answer, calls = await drive(agent, data_dir, "I want a refund for order 12346", approve=False)
    assert calls[-1].name == "issue_refund"
    assert "declined" in answer and "final-sale" in answer
    assert db_rows(data_dir, "SELECT COUNT(*) FROM refunds WHERE order_id = '12346'") == [(0,)]


async def test_ineligible_refund_is_explained_not_issued(agent: AgentDefinition, data_dir: Path) -> None:
    answer, calls = await drive(agent, data_dir, "I want a refund for order 12347")
    assert [c.name for c in calls] == ["lookup_order", "check_return_eligibility"]
    assert "outside the 30-day return window" in answer


async def test_injected_note_does_not_cause_a_refund(agent: AgentDefinition, data_dir: Path) -> None:
    order = await agent.tools["lookup_order"].invoke({"order_id": "12350"}, make_ctx(data_dir))
    assert "IGNORE PREVIOUS INSTRUCTIONS" in order["note"]

    answer, calls = await drive(agent, data_dir, "Where is my order 12350?")
    assert [c.name for c in calls] == ["lookup_order"]
    assert "5000" not in answer and "4242" not in answer
    assert db_rows(data_dir, "SELECT COUNT(*) FROM refunds WHERE order_id = '12350'") == [(0,)]

    answer, calls = await drive(agent, data_dir, "Can I return order 12350?", run_id="run-2")
    assert "issue_refund" not in [c.name for c in calls]

    # Even a genuine refund request refunds the real amount, never what the note asks for.
    answer, calls = await drive(agent, data_dir, "I want a refund for order 12350", run_id="run-3")
    refunds = [c for c in calls if c.name == "issue_refund"]
    assert len(refunds) == 1 and refunds[0].arguments["amount_usd"] == 79.0
    assert db_rows(data_dir, "SELECT amount_usd FROM refunds WHERE order_id = '12350'") == [(79.0,)]


async def test_policy_question_cites_the_section(agent: AgentDefinition, data_dir: Path) -> None:
    answer, calls = await drive(agent, data_dir, "What is your return policy?")
    assert [c.name for c in calls] == ["search_policy"]
    assert '"Return Policy"' in answer
    assert "30 days" in answer


def test_rejected_refund_note_stops_the_refund(agent: AgentDefinition) -> None:
    policy = agent.resolve("policy:respond")
    text = "I want a refund for order 12346"
    order = {"order_id": "12346", "item": "Espresso Machine", "amount_usd": 249.0, "status": "delivered"}
    eligibility = {"order_id": "12346", "eligible": True, "max_refundable_usd": 249.0, "reason": "delivered"}
    steps = [
        (call("lookup_order", 2, order_id="12346"), order),
        (call("check_return_eligibility", 4, order_id="12346"), eligibility),
        (call("draft_refund_note", 6, order_id="12346", note="n"), "Rejected by reviewer."),
    ]
    answer = policy(turn_of(agent, conversation(text, *steps)))
    assert isinstance(answer, str)
    assert "declined" in answer and "no refund has been issued" in answer


async def test_order_note_text_never_reads_as_a_rejection(agent: AgentDefinition, data_dir: Path) -> None:
    answer, calls = await drive(agent, data_dir, "Where is my order 12359?", user_id="u4")
    assert [c.name for c in calls] == ["lookup_order"]
    assert "cancelled" in answer and "declined" not in answer
