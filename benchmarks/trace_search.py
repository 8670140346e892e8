"""Trace search on 100k stored runs: how long do the search queries of `GET /v1/traces` take?

A scratch database (SQLite file, or a scratch PostgreSQL database with `--postgres`) is migrated
with Tether's own migrations and filled with `--runs` runs spread over the last 30 days: 4 releases,
6 tools, about 3 steps per run, a mix of statuses and error types, feedback on 5% of runs and a
guardrail span on 2%. Rows are bulk-inserted (the point is the read path, not the write path).
Then each query below runs `--repeat` times through `Store.insights.search_runs` (the code the API
and `tether traces search` call) and the median and worst wall time are reported.

    python benchmarks/trace_search.py --runs 100000
    python benchmarks/trace_search.py --runs 100000 --postgres
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from service_helpers import machine_info

from tether.store.insights import RunFilter
from tether.store.repository import Store
from tether.store.tables import FeedbackRow, ReleaseRow, RunRow, SpanRow, StepRow, ThreadRow

RESULTS = Path(__file__).resolve().parent / "results"
TOOLS = (
    "lookup_order",
    "search_policy",
    "check_return_eligibility",
    "draft_refund_note",
    "issue_refund",
    "escalate_to_human",
)
RELEASES = ("v1", "v2", "v3", "v4")
STATUSES = (
    ("succeeded", None, 0.80),
    ("failed", "model call failed: provider timeout", 0.06),
    ("failed", "internal error: KeyError('x')", 0.02),
    ("escalated", None, 0.07),
    ("budget_exhausted", "budget exhausted: 12 steps", 0.03),
    ("cancelled", "cancelled by request", 0.02),
)


@dataclass(frozen=True)
class Query:
    label: str
    where: RunFilter


def queries(now: datetime) -> list[Query]:
    hour = now - timedelta(hours=1)
    day = now - timedelta(days=1)
    return [
        Query(
            "failing runs of v3 that used issue_refund in the last hour",
            RunFilter(tenant_id="default", release="v3", status="failed", tool="issue_refund", since=hour),
        ),
        Query("newest runs, no filter", RunFilter(tenant_id="default")),
        Query("failed, any release", RunFilter(tenant_id="default", status="failed")),
        Query(
            "error type model_error, last day",
            RunFilter(tenant_id="default", error_type="model_error", since=day),
        ),
        Query("used issue_refund", RunFilter(tenant_id="default", tool="issue_refund")),
        Query("a tool failed, release v2", RunFilter(tenant_id="default", release="v2", tool_failed=True)),
        Query("latency > 20 s", RunFilter(tenant_id="default", min_latency_ms=20_000)),
        Query(
            "cost between $0.04 and $0.05",
            RunFilter(tenant_id="default", min_cost_usd=0.04, max_cost_usd=0.05),
        ),
        Query("one user", RunFilter(tenant_id="default", user_id="user-42")),
        Query("guardrail triggered", RunFilter(tenant_id="default", guardrail="any")),
        Query("negative feedback, v4", RunFilter(tenant_id="default", release="v4", feedback="negative")),
        Query(
            "rare: v1 + escalated + issue_refund + latency > 25 s (matches ~nothing)",
            RunFilter(
                tenant_id="default",
                release="v1",
                status="escalated",
                tool="issue_refund",
                min_latency_ms=25_000,
            ),
        ),
    ]


def _status(rng: random.Random) -> tuple[str, str | None]:
    pick = rng.random()
    for status, error, share in STATUSES:
        if pick < share:
            return status, error
        pick -= share
    return "succeeded", None


async def fill(store: Store, runs: int, now: datetime, seed: int) -> float:
    """Insert the runs; returns the mean number of tool calls per run."""
    rng = random.Random(seed)
    async with store.engine.begin() as connection:
        release_ids = {}
        for version in RELEASES:
            release_ids[version] = f"rel_{uuid.uuid4().hex}"
            await connection.execute(
                insert(ReleaseRow).values(
                    id=release_ids[version],
                    version=version,
                    agent_name="bench",
                    kind="release",
                    content_hash=uuid.uuid4().hex * 2,
                    snapshot={},
                    created_at=now - timedelta(days=60),
                )
            )
        await connection.execute(insert(ThreadRow).values(id="thr_bench", user_id="u", created_at=now))
    batch = 5_000
    tool_calls = 0
    for start in range(0, runs, batch):
        run_rows: list[dict[str, Any]] = []
        step_rows: list[dict[str, Any]] = []
        feedback_rows: list[dict[str, Any]] = []
        span_rows: list[dict[str, Any]] = []
        for _ in range(start, min(start + batch, runs)):
            run_id = f"run_{uuid.UUID(int=rng.getrandbits(128)).hex}"
            created = now - timedelta(seconds=rng.uniform(0, 30 * 86400))
            began = created + timedelta(seconds=rng.uniform(0, 2))
            status, error = _status(rng)
            used = rng.sample(TOOLS[:5], rng.choice((0, 1, 1, 2, 2, 3)))
            if status == "escalated":
                used.append("escalate_to_human")
            version = rng.choice(RELEASES)
            tool_calls += len(used)
            run_rows.append(
                {
                    "id": run_id,
                    "release_id": release_ids[version],
                    "release_version": version,
                    "user_id": f"user-{rng.randrange(2000)}",
                    "tenant_id": "default",
                    "thread_id": None,
                    "status": status,
                    "input": "benchmark",
                    "output": None,
                    "error": error,
                    "steps_used": 1 + 2 * len(used),
                    "tools_called": used,
                    "input_tokens": rng.randrange(200, 4000),
                    "output_tokens": rng.randrange(20, 400),
                    "estimated_cost_usd": round(rng.uniform(0, 0.05), 6),
                    "risk_level": "low",
                    "run_metadata": {},
                    "cancel_requested": False,
                    "lease_owner": None,
                    "lease_expires_at": None,
                    "attempts": 1,
                    "event_seq": 1,
                    "created_at": created,
                    "started_at": began,
                    "finished_at": began + timedelta(seconds=rng.lognormvariate(0.7, 0.8)),
                    "updated_at": created,
                }
            )
            index = 0
            for tool in used:
                for kind, name in (("model_call", "scripted:support-v1"), ("tool_call", tool)):
                    failed = kind == "tool_call" and rng.random() < 0.04
                    step_rows.append(
                        {
                            "run_id": run_id,
                            "index": index,
                            "kind": kind,
                            "status": "failed" if failed else "succeeded",
                            "name": name,
                            "tool_call_id": f"call_{index}",
                            "arguments": {},
                            "result": "ok",
                            "error": "boom" if failed else None,
                            "message": None,
                            "idempotency_key": f"{run_id}:{index}",
                            "attempts": 1,
                            "input_tokens": 0,
                            "output_tokens": 0,
                            "cost_usd": 0.0,
                            "latency_ms": 5.0,
                            "started_at": began,
                            "finished_at": began,
                        }
                    )
                    index += 1
            if rng.random() < 0.05:
                feedback_rows.append(
                    {
                        "run_id": run_id,
                        "user_id": "u",
                        "score": rng.choice((1, -1)),
                        "comment": None,
                        "created_at": began,
                    }
                )
            if rng.random() < 0.02:
                span_rows.append(
                    {
                        "span_id": uuid.uuid4().hex[:16],
                        "trace_id": run_id[4:],
                        "parent_span_id": None,
                        "run_id": run_id,
                        "name": "guardrail pii",
                        "operation": "guardrail",
                        "outcome": rng.choice(("allow", "redact", "block")),
                        "status": "unset",
                        "status_message": None,
                        "started_at": began,
                        "ended_at": began,
                        "duration_ms": 0.1,
                        "attributes": {},
                        "events": [],
                    }
                )
        async with store.engine.begin() as connection:
            await connection.execute(insert(RunRow), run_rows)
            await connection.execute(insert(StepRow), step_rows)
            if feedback_rows:
                await connection.execute(insert(FeedbackRow), feedback_rows)
            if span_rows:
                await connection.execute(insert(SpanRow), span_rows)
        print(f"  inserted {min(start + batch, runs)}/{runs} runs", file=sys.stderr)
    if store.dialect == "postgresql":
        async with store.engine.connect() as connection:
            await (await connection.execution_options(isolation_level="AUTOCOMMIT")).exec_driver_sql(
                "ANALYZE"
            )
    else:
        async with store.engine.begin() as connection:
            await connection.exec_driver_sql("ANALYZE")
    return tool_calls / max(runs, 1)


async def measure(store: Store, now: datetime, repeat: int) -> list[tuple[str, int, float, float]]:
    rows = []
    for query in queries(now):
        page = await store.insights.search_runs(query.where, limit=50)  # warm the caches once
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            page = await store.insights.search_runs(query.where, limit=50)
            times.append((time.perf_counter() - started) * 1000)
        rows.append((query.label, len(page.runs), statistics.median(times), max(times)))
    return rows


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument(
        "--postgres", action="store_true", help="a scratch PostgreSQL database instead of SQLite"
    )
    parser.add_argument(
        "--admin-url",
        default=os.environ.get("TETHER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    parser.add_argument("--no-write", action="store_true", help="do not write results/trace-search-<date>.md")
    args = parser.parse_args()
    now = datetime.now(UTC)
    scratch_db = None
    with tempfile.TemporaryDirectory() as folder:
        if args.postgres:
            scratch_db = f"tether_trace_search_{uuid.uuid4().hex[:10]}"
            with psycopg.connect(args.admin_url, autocommit=True) as admin:
                admin.execute(f'CREATE DATABASE "{scratch_db}"')
            url = f"postgresql+psycopg://{args.admin_url.split('://', 1)[1].rsplit('/', 1)[0]}/{scratch_db}"
        else:
            url = f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}"
        try:
            store = await Store.open(url)
            try:
                started = time.perf_counter()
                tools_per_run = await fill(store, args.runs, now, args.seed)
                fill_s = time.perf_counter() - started
                rows = await measure(store, now, args.repeat)
                version = await _server_version(store)
            finally:
                await store.close()
        finally:
            if scratch_db is not None:
                with psycopg.connect(args.admin_url, autocommit=True) as admin:
                    admin.execute(f'DROP DATABASE IF EXISTS "{scratch_db}" WITH (FORCE)')
    database = "PostgreSQL" if args.postgres else "SQLite"
    lines = [
        f"# Trace search, {now:%Y-%m-%d %H:%M} UTC ({database})",
        "",
        f"`python benchmarks/trace_search.py --runs {args.runs} --repeat {args.repeat}"
        + (" --postgres`" if args.postgres else "`"),
        "",
        f"{args.runs} runs over 30 days, {tools_per_run:.1f} tool calls per run, 4 releases; "
        f"filled in {fill_s:.0f} s (bulk insert). Each query: first page (50 runs), newest first; "
        f"median and worst of {args.repeat}.",
        "",
        "| | |",
        "|---|---|",
        *(f"| {key} | {value} |" for key, value in machine_info()),
        f"| database | {database} {version} |",
        "",
        "| query | runs returned | median ms | worst ms |",
        "|---|---|---|---|",
        *(f"| {label} | {n} | {median:.1f} | {worst:.1f} |" for label, n, median, worst in rows),
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        RESULTS.mkdir(exist_ok=True)
        suffix = "-postgres" if args.postgres else "-sqlite"
        target = RESULTS / f"trace-search-{now:%Y-%m-%d}{suffix}.md"
        target.write_text(text)
        print(f"wrote {target}", file=sys.stderr)


async def _server_version(store: Store) -> str:
    async with store.engine.connect() as connection:
        if store.dialect == "postgresql":
            return str((await connection.exec_driver_sql("SHOW server_version")).scalar())
        return str((await connection.exec_driver_sql("select sqlite_version()")).scalar())


if __name__ == "__main__":
    asyncio.run(main())
