"""What a run's state changes leave behind for later work, written in the change's own transaction.

A production run that ends, parks for approval or has an approval decided leaves a webhook event in
the outbox (`webhook_events`); one that ends also leaves an online-evaluation job. Both are rows in
the same transaction as the state change, so neither is lost when a process dies after committing,
and neither exists for a change that rolled back. Eval and drill runs leave nothing: they never
reach a tenant's endpoints or the production scores.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Insert, insert, select

from tether.store.records import PRODUCTION_ORIGINS, ApprovalRecord, RunRecord
from tether.store.tables import OnlineEvalJobRow, RunRow, WebhookEventRow
from tether.store.webhooks import Executor, event_values, record_event

_PRODUCTION = frozenset(str(origin) for origin in PRODUCTION_ORIGINS)


def run_payload(run: RunRecord) -> dict[str, Any]:
    """The `data` of a run event: what a receiver needs without calling back."""
    return {
        "run_id": run.id,
        "status": str(run.status),
        "tenant_id": run.tenant_id,
        "user_id": run.user_id,
        "thread_id": run.thread_id,
        "release_version": run.release_version,
        "origin": str(run.origin),
        "output": run.output,
        "error": run.error,
        "steps_used": run.steps_used,
        "estimated_cost_usd": run.estimated_cost_usd,
        "metadata": run.run_metadata,
        "created_at": run.created_at.isoformat(),
        "finished_at": None if run.finished_at is None else run.finished_at.isoformat(),
    }


INSERT_WEBHOOK_EVENT = insert(WebhookEventRow)
INSERT_ONLINE_EVAL_JOB = insert(OnlineEvalJobRow)


def run_ended_rows(run: RunRecord, now: datetime) -> list[tuple[Insert, dict[str, Any]]]:
    """`run.<status>` for the tenant's endpoints, and a job for the online-eval scorers: the
    INSERTs (prebuilt) and their values, for a production run; none for any other."""
    if str(run.origin) not in _PRODUCTION:
        return []
    event = event_values(
        type=f"run.{run.status}", tenant_id=run.tenant_id, run_id=run.id, data=run_payload(run), now=now
    )
    job = {
        "run_id": run.id,
        "release_id": run.release_id,
        "tenant_id": run.tenant_id,
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }
    return [(INSERT_WEBHOOK_EVENT, event), (INSERT_ONLINE_EVAL_JOB, job)]


async def run_ended(executor: Executor, run: RunRecord, now: datetime) -> None:
    """Write `run_ended_rows` in the caller's transaction."""
    for statement, values in run_ended_rows(run, now):
        await executor.execute(statement, values)


async def approval_changed(executor: Executor, type: str, approval: ApprovalRecord, now: datetime) -> None:
    """`run.waiting_for_approval` or `approval.decided`, with the approval, for a production run."""
    found = (
        await executor.execute(select(RunRow.tenant_id, RunRow.origin).where(RunRow.id == approval.run_id))
    ).first()
    if found is None or found.origin not in _PRODUCTION:
        return
    data = {
        "run_id": approval.run_id,
        "status": "waiting_for_approval",
        "approval": approval.model_dump(mode="json"),
    }
    if type == "approval.decided":
        data["status"] = str(approval.status)
    await record_event(
        executor, type=type, tenant_id=found.tenant_id, run_id=approval.run_id, data=data, now=now
    )
