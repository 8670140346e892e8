"""The run loop's hot path: lease-fenced writes as SQLAlchemy Core statements, few per step.

A write made on behalf of a running run first proves its caller still holds the lease. Here that
proof, the lease extension, the reservation of event sequence numbers, and the run's new counters
are one `UPDATE runs ... WHERE lease_owner = :owner RETURNING ...`: the statement that locks the
run row until commit, so events of one run commit in sequence order and a reader that saw seq N
never misses N-1. The step row and the events follow in the same transaction.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    Integer,
    Row,
    Select,
    Table,
    Update,
    and_,
    bindparam,
    func,
    insert,
    inspect,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.dml import UpdateBase

from tether.store import one_hop
from tether.store.records import RunRecord, RunStatus
from tether.store.tables import EventRow, RunRow, StepRow, ThreadRow

RUNS = cast(Table, RunRow.__table__)
STEPS = cast(Table, StepRow.__table__)
EVENTS = cast(Table, EventRow.__table__)
THREADS = cast(Table, ThreadRow.__table__)


class LeaseLostError(RuntimeError):
    """The caller no longer holds the run's lease; another worker owns it now."""


@dataclass(frozen=True)
class Fence:
    """What the fencing UPDATE handed back."""

    first_seq: int
    """The first of the event sequence numbers reserved for this transaction."""
    cancel_requested: bool
    row: Row[Any] | None = None
    """The whole run row after the update, when asked for."""


async def fence(
    conn: AsyncConnection,
    run_id: str,
    owner: str,
    *,
    now: datetime,
    expires: datetime,
    events: int = 0,
    values: Mapping[str, Any] | None = None,
    increments: Mapping[str, int] | None = None,
    whole_row: bool = False,
) -> Fence:
    """Extend `owner`'s lease, set `values` and add `increments` to counters, reserving `events`
    sequence numbers; or raise `LeaseLostError` (and change nothing) when the lease is someone
    else's now."""
    changes: dict[str, Any] = {"lease_expires_at": expires, "updated_at": now, **(values or {})}
    added = dict(increments or {})
    if events:
        added["event_seq"] = events
    statement = _fence_statement(tuple(changes), tuple(added), whole_row)
    params = {f"set_{name}": value for name, value in changes.items()}
    params.update({f"add_{name}": amount for name, amount in added.items()})
    params.update(fence_id=run_id, fence_owner=owner)
    row = (await conn.execute(statement, params)).first()
    if row is None:
        raise LeaseLostError(f"run {run_id} is no longer leased to {owner}")
    return Fence(
        first_seq=int(row.event_seq) - events + 1,
        cancel_requested=bool(row.cancel_requested),
        row=row if whole_row else None,
    )


@functools.lru_cache(maxsize=128)
def _fence_statement(columns: tuple[str, ...], counters: tuple[str, ...], whole_row: bool) -> Update:
    """The fencing UPDATE for one shape of change, built once.

    Building a statement and deriving its cache key cost SQLAlchemy about as much CPU as the rest
    of a step; a prebuilt statement with bound parameters costs neither (its compiled form is cached).
    """
    changes: dict[str, Any] = {name: bindparam(f"set_{name}", type_=RUNS.c[name].type) for name in columns}
    for name in counters:
        changes[name] = RUNS.c[name] + bindparam(f"add_{name}", type_=Integer())
    returning = list(RUNS.c) if whole_row else [RUNS.c.event_seq, RUNS.c.cancel_requested]
    return (
        update(RUNS)
        .where(
            RUNS.c.id == bindparam("fence_id"),
            RUNS.c.lease_owner == bindparam("fence_owner"),
            RUNS.c.status == RunStatus.RUNNING,
        )
        .values(changes)
        .returning(*returning)
    )


@functools.lru_cache(maxsize=64)
def step_update(columns: tuple[str, ...]) -> Update:
    """`UPDATE steps SET <columns> WHERE run_id = :step_run AND index = :step_index`, built once per
    set of columns (bind `set_<column>` for each); see `_fence_statement` for why."""
    return (
        update(STEPS)
        .where(STEPS.c.run_id == bindparam("step_run"), STEPS.c.index == bindparam("step_index"))
        .values({name: bindparam(f"set_{name}", type_=STEPS.c[name].type) for name in columns})
    )


@functools.cache
def claim_statements(postgres: bool, one_run: bool) -> tuple[Select[Any], Update]:
    """(pick, claim) for `Store.claim_run`, built once (see `_fence_statement` for why).

    Bind `claim_now`, `claim_owner`, `claim_expires` (and `claim_run` when `one_run`). On
    PostgreSQL `pick` locks a candidate (`FOR UPDATE SKIP LOCKED`) and `claim` takes the id it found
    as `claim_chosen`; on SQLite, whose writers are serialised, `claim` picks in a sub-select itself.
    """
    now = bindparam("claim_now", type_=RUNS.c.lease_expires_at.type)
    claimable = and_(
        RUNS.c.pinned.is_(False),
        or_(
            RUNS.c.status == RunStatus.QUEUED,
            and_(RUNS.c.status == RunStatus.RUNNING, RUNS.c.lease_expires_at < now),
        ),
    )
    pick = select(RUNS.c.id).where(claimable)
    if one_run:
        pick = pick.where(RUNS.c.id == bindparam("claim_run"))
    pick = pick.order_by(RUNS.c.created_at, RUNS.c.id).limit(1)
    target = RUNS.c.id == (bindparam("claim_chosen") if postgres else pick.scalar_subquery())
    claim = (
        update(RUNS)
        .where(target, claimable)
        .values(
            status=RunStatus.RUNNING,
            lease_owner=bindparam("claim_owner"),
            lease_expires_at=bindparam("claim_expires", type_=RUNS.c.lease_expires_at.type),
            attempts=RUNS.c.attempts + 1,
            started_at=func.coalesce(RUNS.c.started_at, now),
            updated_at=now,
            event_seq=RUNS.c.event_seq + 1,
        )
        .returning(*RUNS.c)
    )
    return (pick.with_for_update(skip_locked=True) if postgres else pick), claim


INSERT_STEP = insert(STEPS)
_INSERT_EVENTS = insert(EVENTS)
_EVENT_COLUMNS = ("run_id", "seq", "type", "data", "created_at")
_RUN_COLUMNS = tuple(RUNS.c)
"""What a whole-row RETURNING hands back, in order (`_fence_statement`, `claim_statements`)."""
_RUN_COLUMN_AT = {column.name: position for position, column in enumerate(_RUN_COLUMNS)}

Statement = tuple[UpdateBase, Mapping[str, Any]]
"""A prebuilt Core statement and its parameters (for an INSERT, one row's values by column)."""


async def checkpoint(
    engine: AsyncEngine,
    run_id: str,
    owner: str,
    *,
    now: datetime,
    expires: datetime,
    statements: Sequence[Statement],
    events: Sequence[tuple[str, dict[str, Any]]],
    values: Mapping[str, Any] | None = None,
    increments: Mapping[str, int] | None = None,
) -> Fence:
    """`fence`, then `statements`, then `events` (numbered from what the fence reserved), as one
    transaction on `engine` (the store's writer); `LeaseLostError` (nothing written) when the lease
    is someone else's now.

    On SQLite the whole transaction is one trip to the driver's thread (`store/one_hop.py`);
    elsewhere it is the same statements through SQLAlchemy."""
    dialect = engine.dialect
    if dialect.name != "sqlite":
        async with engine.begin() as conn:
            lease = await fence(
                conn,
                run_id,
                owner,
                now=now,
                expires=expires,
                events=len(events),
                values=values,
                increments=increments,
            )
            for statement, params in statements:
                await conn.execute(statement, dict(params))
            await add_events(conn, run_id, lease.first_seq, events, now)
        return lease
    work = _fenced_work(
        dialect, run_id, owner, now, expires, statements, events, values, increments, whole_row=False
    )
    row = await one_hop.run(engine, work)
    if row is None:
        raise LeaseLostError(f"run {run_id} is no longer leased to {owner}")
    return Fence(first_seq=int(row[0]) - len(events) + 1, cancel_requested=bool(row[1]))


async def add_events(
    conn: AsyncConnection,
    run_id: str,
    first_seq: int,
    events: Sequence[tuple[str, dict[str, Any]]],
    now: datetime,
) -> None:
    """Insert events numbered from `first_seq` (reserved by `fence` or a claim) in one statement."""
    if not events:
        return
    await conn.execute(
        _INSERT_EVENTS,
        [
            {"run_id": run_id, "seq": first_seq + i, "type": type, "data": data, "created_at": now}
            for i, (type, data) in enumerate(events)
        ],
    )


def _fenced_work(
    dialect: Dialect,
    run_id: str,
    owner: str,
    now: datetime,
    expires: datetime,
    statements: Sequence[Statement],
    events: Sequence[tuple[str, dict[str, Any]]],
    values: Mapping[str, Any] | None,
    increments: Mapping[str, int] | None,
    *,
    whole_row: bool,
    follow: Callable[[tuple[Any, ...]], Sequence[tuple[str, tuple[Any, ...]]]] | None = None,
) -> one_hop.Checkpoint:
    """The SQLite form of `fence` + `statements` + `events`, bound and ready for one trip."""
    changes: dict[str, Any] = {"lease_expires_at": expires, "updated_at": now, **(values or {})}
    added = dict(increments or {})
    if events:
        added["event_seq"] = len(events)
    fencing = one_hop.prepare(_fence_statement(tuple(changes), tuple(added), whole_row), dialect)
    params = {f"set_{name}": value for name, value in changes.items()}
    params.update({f"add_{name}": amount for name, amount in added.items()})
    params.update(fence_id=run_id, fence_owner=owner)
    inserting = one_hop.prepare(_INSERT_EVENTS, dialect, _EVENT_COLUMNS)
    return one_hop.Checkpoint(
        fence=(fencing.sql, fencing.bind(params)),
        then=[bound(statement, dialect, given) for statement, given in statements],
        events_sql=inserting.sql,
        events=[
            inserting.bind({"run_id": run_id, "seq": 0, "type": type, "data": data, "created_at": now})
            for type, data in events
        ],
        seq_at=inserting.position("seq"),
        seq_column=_RUN_COLUMN_AT["event_seq"] if whole_row else 0,
        follow=follow,
    )


def bound(statement: UpdateBase, dialect: Dialect, values: Mapping[str, Any]) -> tuple[str, tuple[Any, ...]]:
    """`statement` (for an INSERT: with `values`' columns) compiled once, and `values` bound to it."""
    prepared = one_hop.prepare(statement, dialect, tuple(values) if statement.is_insert else None)
    return prepared.sql, prepared.bind(values)


async def finish(
    engine: AsyncEngine,
    run_id: str,
    owner: str,
    *,
    now: datetime,
    values: Mapping[str, Any],
    events: Sequence[tuple[str, dict[str, Any]]],
    after: Callable[[RunRecord], Sequence[Statement]],
) -> RunRecord:
    """SQLite: `Store.finish_run`'s write (the fence setting the final values and handing the lease
    back, the events, then `after(finished run)`: the outbox rows) in one trip."""
    dialect = engine.dialect
    finished: list[RunRecord] = []

    def follow(row: tuple[Any, ...]) -> list[tuple[str, tuple[Any, ...]]]:
        finished.append(_record(one_hop.processed(row, _RUN_COLUMNS, dialect)))
        return [bound(statement, dialect, given) for statement, given in after(finished[-1])]

    work = _fenced_work(
        dialect, run_id, owner, now, now, (), events, values, None, whole_row=True, follow=follow
    )
    if await one_hop.run(engine, work) is None:
        raise LeaseLostError(f"run {run_id} is no longer leased to {owner}")
    return finished[-1]


async def claim(
    engine: AsyncEngine, params: Mapping[str, Any], *, one_run: bool, owner: str
) -> RunRecord | None:
    """SQLite: `Store.claim_run`'s claiming UPDATE ... RETURNING and its status event, one
    transaction in one trip (`store/one_hop.py`); None when no run was claimable."""
    dialect = engine.dialect
    _, statement = claim_statements(False, one_run)
    claiming = one_hop.prepare(statement, dialect)
    inserting = one_hop.prepare(_INSERT_EVENTS, dialect, _EVENT_COLUMNS)
    columns = _RUN_COLUMNS
    event = {"status": RunStatus.RUNNING, "worker": owner}
    placeholder = {"run_id": "", "seq": 0, "type": "status", "data": event, "created_at": params["claim_now"]}
    work = one_hop.Checkpoint(
        fence=(claiming.sql, claiming.bind(params)),
        then=(),
        events_sql=inserting.sql,
        events=[inserting.bind(placeholder)],
        seq_at=inserting.position("seq"),
        seq_column=_RUN_COLUMN_AT["event_seq"],
        run_at=inserting.position("run_id"),
        id_column=_RUN_COLUMN_AT["id"],
    )
    row = await one_hop.run(engine, work)
    if row is None:
        return None
    return _record(one_hop.processed(row, columns, dialect))


def _record(values: Mapping[str, Any]) -> RunRecord:
    """A `RunRecord` from every runs column's value, by column name."""
    return RunRecord.model_validate({key: values[name] for key, name in _run_attributes()})


@functools.cache
def _run_attributes() -> tuple[tuple[str, str], ...]:
    """(record field, column name) for every column of the runs table (`metadata` is `run_metadata`)."""
    return tuple((attr.key, attr.columns[0].name) for attr in inspect(RunRow).column_attrs)


def run_record(row: Row[Any]) -> RunRecord:
    """A `RunRecord` from a Core row of every runs column."""
    mapping = row._mapping
    return RunRecord.model_validate({key: mapping[name] for key, name in _run_attributes()})


def run_values(row: RunRow) -> dict[str, Any]:
    """Column values of a not yet stored run for a Core INSERT; unset ones are left to the defaults."""
    values = {name: getattr(row, key) for key, name in _run_attributes()}
    return {name: value for name, value in values.items() if value is not None}


def event_values(event: EventRow) -> dict[str, Any]:
    return {
        "run_id": event.run_id,
        "seq": event.seq,
        "type": event.type,
        "data": event.data,
        "created_at": event.created_at,
    }
