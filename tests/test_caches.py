"""Caches: exact responses, tool results (`@tool(cache_ttl=...)`), semantic final answers; each scoped
to a tenant (and user unless the release says answers are user-independent), in the database or Redis."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import ProjectFactory
from timing import TestClock

from tether import tool
from tether.caches.backend import RedisCache
from tether.caches.semantic import best_match, embed, identifiers
from tether.rollout.releases import working_copy_release
from tether.runtime.service import Runtime
from tether.settings import Settings
from tether.store.records import RunOrigin, RunRecord, StepRecord
from tether.store.repository import Store

TOOLS = '''
from tether import tool

CALLS = {"lookup": 0}

@tool(cache_ttl=600)
def lookup_order(order_id: str) -> str:
    """Look an order up.

    Args:
        order_id: The order number.
    """
    CALLS["lookup"] += 1
    return f"order {order_id}: shipped (lookup #{CALLS['lookup']})"
'''

POLICY = """
import re

def respond(turn):
    if turn.observations:
        return f"Your order: {turn.observations[-1].content}"
    found = re.search(r"\\d+", turn.user_input)
    if found:
        return turn.call("lookup_order", order_id=found.group())
    return "Hello! How can I help?"
"""

PRICES = """
[prices."scripted:test-v1"]
input_per_mtok = 100.0
output_per_mtok = 100.0
"""


async def _runs(
    project: Path, data: Path, asks: list[tuple[str, str, str]]
) -> tuple[list[RunRecord], list[list[StepRecord]]]:
    """Run each (tenant, user, input) in order on one runtime; the runs and their steps."""
    store = await Store.open(os.environ["TETHER_DATABASE_URL"])
    runtime = Runtime(store, Settings(), data_dir=data)
    try:
        release = await working_copy_release(store, project)
        runs, steps = [], []
        for tenant, user, text in asks:
            run = await runtime.submit(
                release, origin=RunOrigin.API, user_id=user, input=text, tenant_id=tenant
            )
            runs.append(await runtime.execute(run.id))
            steps.append(await store.list_steps(run.id))
        return runs, steps
    finally:
        await store.close()


def _caches(steps: list[StepRecord]) -> list[str | None]:
    return [step.cache for step in steps]


async def test_exact_response_cache_answers_the_same_request_within_tenant_and_user(
    make_project: ProjectFactory, isolated_env: Path
) -> None:
    project = make_project(
        tools=TOOLS, policy=POLICY, extra=PRICES + "[cache]\nresponse = true\ntools = false\n"
    )
    runs, steps = await _runs(
        project,
        isolated_env / "data",
        [("t1", "ann", "hello"), ("t1", "ann", "hello"), ("t1", "bob", "hello"), ("t2", "ann", "hello")],
    )
    assert [run.output for run in runs] == ["Hello! How can I help?"] * 4
    assert [_caches(s) for s in steps] == [["exact:miss"], ["exact:hit"], ["exact:miss"], ["exact:miss"]]
    hit = steps[1][0]
    assert hit.cost_usd == 0 and hit.input_tokens == 0 and hit.attempts == 0
    assert hit.saved_cost_usd == pytest.approx(steps[0][0].cost_usd) and hit.saved_cost_usd > 0
    assert runs[1].estimated_cost_usd == 0


async def test_user_independent_answers_are_shared_by_users_but_never_tenants(
    make_project: ProjectFactory, isolated_env: Path
) -> None:
    extra = PRICES + "[cache]\nresponse = true\nuser_independent = true\n"
    project = make_project(tools=TOOLS, policy=POLICY, extra=extra)
    _, steps = await _runs(
        project,
        isolated_env / "data",
        [("t1", "ann", "hello"), ("t1", "bob", "hello"), ("t2", "cy", "hello")],
    )
    assert [_caches(s) for s in steps] == [["exact:miss"], ["exact:hit"], ["exact:miss"]]


async def test_read_tool_results_are_reused_for_their_ttl(
    make_project: ProjectFactory, isolated_env: Path
) -> None:
    project = make_project(tools=TOOLS, policy=POLICY)  # tools = true by default; no other cache
    runs, steps = await _runs(
        project,
        isolated_env / "data",
        [("t1", "ann", "where is 7?"), ("t1", "ann", "where is 7?"), ("t1", "ann", "where is 8?")],
    )
    assert [run.output for run in runs] == [
        "Your order: order 7: shipped (lookup #1)",
        "Your order: order 7: shipped (lookup #1)",  # from the cache: the tool ran once
        "Your order: order 8: shipped (lookup #2)",
    ]
    assert [s[1].cache for s in steps] == ["tool:miss", "tool:hit", "tool:miss"]
    assert steps[1][1].attempts == 0 and runs[1].tools_called == []


def test_write_tools_cannot_be_cached() -> None:
    with pytest.raises(ValueError, match="cache_ttl is for read tools only"):

        @tool(side_effect="write", cache_ttl=60)
        def refund(order_id: str) -> str:
            """Refund an order."""
            return "refunded"


async def test_semantic_cache_reuses_a_close_final_answer_but_not_for_another_order(
    make_project: ProjectFactory, isolated_env: Path
) -> None:
    project = make_project(
        tools=TOOLS, policy=POLICY, extra=PRICES + "[cache]\nsemantic = true\ntools = false\n"
    )
    runs, steps = await _runs(
        project,
        isolated_env / "data",
        [
            ("t1", "ann", "Where is my order 12345?"),
            ("t1", "ann", "where is my order 12345"),
            ("t1", "ann", "Where is my order 12346?"),
            ("t1", "bob", "where is my order 12345"),
        ],
    )
    assert runs[1].output == runs[0].output and runs[1].estimated_cost_usd == 0
    assert _caches(steps[1]) == ["semantic:hit"] and steps[1][0].saved_cost_usd == pytest.approx(
        runs[0].estimated_cost_usd
    )
    assert "12346" in str(runs[2].output) and _caches(steps[2])[0] == "semantic:miss"
    assert _caches(steps[3])[0] == "semantic:miss"  # another user


def test_identifiers_gate_semantic_matches() -> None:
    entries = [
        {
            "vector": embed("Where is my order 12345?"),
            "identifiers": sorted(identifiers("order 12345")),
            "value": "a",
        }
    ]
    assert best_match("where is my order 12345", embed("where is my order 12345"), entries, 0.9) is not None
    assert best_match("Where is my order 12346?", embed("Where is my order 12346?"), entries, 0.5) is None


async def test_database_entries_expire(store: Store, clock: TestClock) -> None:
    await store.caches.put("k" * 64, "tool", "t1/ann", {"value": "v"}, 60)
    assert await store.caches.get("k" * 64) == {"value": "v"}
    assert await store.caches.recent("tool", "t1/ann", 10) == [{"value": "v"}]
    clock.advance(61)
    assert await store.caches.get("k" * 64) is None
    assert await store.caches.recent("tool", "t1/ann", 10) == []


async def test_redis_cache_store(redis_url: str) -> None:
    cache = RedisCache(redis_url)
    try:
        await cache.put("a" * 64, "semantic", "scope", {"value": "answer", "vector": [1.0]}, 60)
        assert (await cache.get("a" * 64) or {})["value"] == "answer"
        assert [e["value"] for e in await cache.recent("semantic", "scope", 10)] == ["answer"]
        assert await cache.recent("semantic", "other", 10) == []
    finally:
        await cache.aclose()
