"""The LangGraph side of `langgraph_compare.py`: the same 3-step agent, checkpointed every step.

This file runs in the LangGraph virtual environment that `langgraph_compare.py` creates (it never
imports Tether, and Tether never imports LangGraph). It prints one JSON line with what it measured.

The agent: a scripted model node that asks for `lookup_order(order_id="12345")`, a tool node that
looks the order up, and the model node again, which answers. Every super-step is checkpointed with
durability "sync" (the checkpoint is written before the next step starts).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import time
import uuid
from typing import Annotated, Any

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from typing_extensions import TypedDict

TASK = "Where is my order 12345?"
ORDERS = {"12345": {"order_id": "12345", "status": "shipped", "carrier": "DHL", "eta": "2026-12-02"}}


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def model(state: State) -> dict[str, Any]:
    last = state["messages"][-1]
    if isinstance(last, ToolMessage):
        reply = AIMessage(content=f"Your order: {last.content}")
    else:
        call_id = f"call_{uuid.uuid4().hex[:12]}"
        reply = AIMessage(
            content="", tool_calls=[{"id": call_id, "name": "lookup_order", "args": {"order_id": "12345"}}]
        )
    return {"messages": [reply]}


def tools(state: State) -> dict[str, Any]:
    last = state["messages"][-1]
    assert isinstance(last, AIMessage)
    results = []
    for call in last.tool_calls:
        order = ORDERS.get(str(call["args"].get("order_id")), {"error": "no such order"})
        results.append(ToolMessage(content=json.dumps(order), tool_call_id=call["id"], name=call["name"]))
    return {"messages": results}


def route(state: State) -> str:
    last = state["messages"][-1]
    return "tools" if isinstance(last, AIMessage) and last.tool_calls else END


def build(checkpointer: Any) -> Any:
    graph = StateGraph(State)
    graph.add_node("model", model)
    graph.add_node("tools", tools)
    graph.add_edge(START, "model")
    graph.add_conditional_edges("model", route, ["tools", END])
    graph.add_edge("tools", "model")
    return graph.compile(checkpointer=checkpointer)


def _config() -> dict[str, Any]:
    return {"configurable": {"thread_id": uuid.uuid4().hex}}


def _check(result: dict[str, Any]) -> None:
    if len(result["messages"]) != 4 or not str(result["messages"][-1].content).startswith("Your order"):
        raise RuntimeError(f"unexpected result: {result['messages']!r}")


def run_sqlite(path: str, runs: int, warmup: int) -> tuple[float, float]:
    from langgraph.checkpoint.sqlite import SqliteSaver

    conn = sqlite3.connect(path, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    saver = SqliteSaver(conn)
    saver.setup()
    app = build(saver)
    for _ in range(warmup):
        _check(app.invoke({"messages": [HumanMessage(TASK)]}, _config(), durability="sync"))
    return _timed(
        lambda: [
            _check(app.invoke({"messages": [HumanMessage(TASK)]}, _config(), durability="sync"))
            for _ in range(runs)
        ]
    )


def run_postgres(url: str, runs: int, warmup: int) -> tuple[float, float]:
    from langgraph.checkpoint.postgres import PostgresSaver

    with PostgresSaver.from_conn_string(url) as saver:
        saver.setup()
        app = build(saver)
        for _ in range(warmup):
            _check(app.invoke({"messages": [HumanMessage(TASK)]}, _config(), durability="sync"))
        return _timed(
            lambda: [
                _check(app.invoke({"messages": [HumanMessage(TASK)]}, _config(), durability="sync"))
                for _ in range(runs)
            ]
        )


def run_postgres_parallel(url: str, runs: int, warmup: int, in_flight: int) -> tuple[float, float]:
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    from psycopg.rows import dict_row
    from psycopg_pool import AsyncConnectionPool

    async def main() -> tuple[float, float]:
        kwargs = {"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row}
        async with AsyncConnectionPool(url, min_size=in_flight, max_size=in_flight, kwargs=kwargs) as pool:
            saver = AsyncPostgresSaver(pool)  # type: ignore[arg-type]
            await saver.setup()
            app = build(saver)
            gate = asyncio.Semaphore(in_flight)

            async def one() -> None:
                async with gate:
                    _check(
                        await app.ainvoke({"messages": [HumanMessage(TASK)]}, _config(), durability="sync")
                    )

            await asyncio.gather(*(one() for _ in range(warmup)))
            wall, cpu = time.perf_counter(), time.process_time()
            await asyncio.gather(*(one() for _ in range(runs)))
            return time.perf_counter() - wall, time.process_time() - cpu

    return asyncio.run(main())


def _timed(body: Any) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    body()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=["sqlite", "postgres", "postgres-8"], required=True)
    parser.add_argument("--target", required=True, help="SQLite file or PostgreSQL URL")
    parser.add_argument("--runs", type=int, required=True)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    if args.backend == "sqlite":
        wall, cpu = run_sqlite(args.target, args.runs, args.warmup)
    elif args.backend == "postgres":
        wall, cpu = run_postgres(args.target, args.runs, args.warmup)
    else:
        wall, cpu = run_postgres_parallel(args.target, args.runs, args.warmup, 8)
    print(json.dumps({"runs": args.runs, "steps": 3, "wall_s": wall, "cpu_s": cpu}))


if __name__ == "__main__":
    main()
