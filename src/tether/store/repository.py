"""The one place that reads and writes Tether's tables.

Writes made on behalf of a running run are *fenced*: they happen in a transaction that first
proves the caller still holds the run's lease (and extends it). A worker that lost its lease
can therefore never write a step over the worker that took the run over.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, cast

from sqlalchemy import Table, and_, bindparam, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from tether.store import db, fenced, outbox
from tether.store.batch import CreateBatcher, NewRun
from tether.store.breakers import BreakerStore
from tether.store.caches import CacheStore
from tether.store.costs import CostStore
from tether.store.deployments import DeploymentStore
from tether.store.fenced import RUNS, STEPS
from tether.store.fenced import LeaseLostError as LeaseLostError  # raised here; callers import it from here
from tether.store.insights import Insights
from tether.store.live import LiveRevisions, bump_revision
from tether.store.online_eval import OnlineEvalStore
from tether.store.records import (
    FINAL_STATUSES,
    PRODUCTION_ORIGINS,
    ApiKeyRecord,
    ApprovalKind,
    ApprovalRecord,
    EvalCaseResultRecord,
    EvalRunRecord,
    EventRecord,
    FeedbackRecord,
    GateVerdictRecord,
    ReleaseRecord,
    RunOrigin,
    RunPage,
    RunRecord,
    RunStatus,
    RunTotals,
    StepDraft,
    StepOutcome,
    StepRecord,
    StepStatus,
    ThreadRecord,
    WorkerRecord,
)
from tether.store.redteam import RedteamStore
from tether.store.tables import (
    ApiKeyRow,
    ApprovalRow,
    EvalCaseResultRow,
    EvalRunRow,
    EventRow,
    FeedbackRow,
    GateVerdictRow,
    ReleaseRow,
    RunRow,
    ThreadRow,
    WorkerRow,
)
from tether.store.telemetry import TelemetryStore
from tether.store.ui_sessions import UiSessionStore
from tether.store.webhooks import WebhookStore

if TYPE_CHECKING:
    from tether.store.experiments import ExperimentStore
    from tether.store.flags import FlagStore

if TYPE_CHECKING:  # their modules import this one (for its errors), so they are imported late
    from tether.store.controls import ControlStore
    from tether.store.incidents import IncidentStore

Clock = Callable[[], datetime]
EventHook = Callable[[str], Awaitable[None]]


def utc_now() -> datetime:
    return datetime.now(UTC)


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


_API_KEYS = cast(Table, ApiKeyRow.__table__)
_GET_API_KEY = select(_API_KEYS).where(_API_KEYS.c.id == bindparam("key_id"))
API_KEYS_TOPIC = "api_keys"
"""The live-configuration topic bumped by every revocation: processes drop their verified-key cache."""
# Read when every run starts (the conversation it continues): built once, no ORM session.
_THREAD_RUNS = (
    select(RUNS)
    .where(
        RUNS.c.thread_id == bindparam("thread"),
        RUNS.c.created_at < bindparam("before", type_=RUNS.c.created_at.type),
    )
    .order_by(RUNS.c.created_at, RUNS.c.id)
)


class NotFoundError(LookupError):
    """No such run, release, thread or approval."""


class ConflictError(RuntimeError):
    """The request contradicts the current state (e.g. deciding an approval twice)."""


class Store:
    """Repository over one database. Create with `await Store.open(url)`."""

    default_clock: ClassVar[Clock] = utc_now
    """The clock (lease deadlines, timestamps) of a store opened without one. Tests that drive time
    through code which opens its own store (the CLI, the API app) replace it instead of sleeping."""

    def __init__(
        self, engine: AsyncEngine, *, clock: Clock | None = None, on_event: EventHook | None = None
    ) -> None:
        self.engine = engine
        """Reads, migrations, and on PostgreSQL writes too."""
        self._writer = db.create_writer(engine)
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._write_engine = self._writer or engine
        self._writes = async_sessionmaker(self._write_engine, expire_on_commit=False)
        """Every write transaction (on SQLite: the process's one writer connection)."""
        self._creates = CreateBatcher(self._write_engine, own=db.create_creates_engine(engine))
        self._releases: dict[str, ReleaseRecord] = {}
        """Releases by id: they are immutable, and every run's execution starts by reading one."""
        self._now = clock if clock is not None else Store.default_clock
        self.on_event = on_event

    @classmethod
    async def open(
        cls, url: str, *, clock: Clock | None = None, migrate: bool = True, on_event: EventHook | None = None
    ) -> Store:
        engine = db.create_engine(url)
        try:
            if migrate:
                await db.upgrade(engine)
        except Exception as exc:
            await engine.dispose()
            raise db.DatabaseError(f"cannot open database {engine.url.render_as_string()}: {exc}") from exc
        return cls(engine, clock=clock, on_event=on_event)

    async def _emit(self, session: AsyncSession, run_id: str, type: str, data: dict[str, Any]) -> None:
        """Append an event in the caller's transaction.

        The sequence number comes from the run row, whose lock is held until commit, so events of
        one run commit in sequence order and a reader that saw seq N never misses N-1.
        """
        seq = await session.scalar(
            update(RunRow)
            .where(RunRow.id == run_id)
            .values(event_seq=RunRow.event_seq + 1)
            .returning(RunRow.event_seq)
        )
        if seq is None:
            raise NotFoundError(f"no run {run_id!r}")
        session.add(EventRow(run_id=run_id, seq=seq, type=type, data=data, created_at=self._now()))

    async def _notify(self, run_id: str) -> None:
        """Tell listeners (SSE streams, perhaps on other nodes) that a run has new events."""
        if self.on_event is not None:
            await self.on_event(run_id)

    async def close(self) -> None:
        await self._creates.close()
        if self._writer is not None:
            await self._writer.dispose()
        await self.engine.dispose()

    def now(self) -> datetime:
        """The store's clock (a test clock in tests): for timestamps other rooms compare with rows."""
        return self._now()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def insights(self) -> Insights:
        """Aggregates and search over runs, for the dashboard."""
        return Insights(self._sessions, self.dialect)

    @property
    def telemetry(self) -> TelemetryStore:
        """Spans, alert episodes and the live numbers behind /metrics (store/telemetry.py)."""
        return TelemetryStore(
            self._sessions, self._now, self.dialect, writes=self._writes, writer=self._writer
        )

    @property
    def breakers(self) -> BreakerStore:
        """Circuit-breaker states shared by every process (store/breakers.py)."""
        return BreakerStore(self._sessions, self._writes, self._now, self.dialect)

    @property
    def caches(self) -> CacheStore:
        """Cache entries, when the cache store is the database (store/caches.py)."""
        return CacheStore(self._sessions, self._writes, self._now, self.dialect)

    @property
    def costs(self) -> CostStore:
        """Spend grouped by user, thread, tenant, tag, release, model or tier (store/costs.py)."""
        return CostStore(self._sessions)

    @property
    def controls(self) -> ControlStore:
        """Operator controls and their history (store/controls.py)."""
        from tether.store.controls import ControlStore

        return ControlStore(self._sessions, self._writes, self._now)

    @property
    def incidents(self) -> IncidentStore:
        """Incidents, their notes and linked runs (store/incidents.py)."""
        from tether.store.incidents import IncidentStore

        return IncidentStore(self._sessions, self._writes, self._now)

    @property
    def deployments(self) -> DeploymentStore:
        """Deployment revisions (the rollout audit log) and the analysis lease (store/deployments.py)."""
        return DeploymentStore(self._sessions, self._writes, self._now)

    @property
    def redteam(self) -> RedteamStore:
        """Results of `tether redteam` (store/redteam.py)."""
        return RedteamStore(self._sessions, self._writes, self._now)

    @property
    def live_revisions(self) -> LiveRevisions:
        """Revision counters of the live configuration (store/live.py); writers bump them in their own
        transactions with `tether.store.live.bump_revision`."""
        return LiveRevisions(self._sessions, self._writes, self._now)

    @property
    def ui_sessions(self) -> UiSessionStore:
        """Server-side dashboard sessions (store/ui_sessions.py)."""
        return UiSessionStore(self._sessions, self._now)

    @property
    def webhooks(self) -> WebhookStore:
        """Webhook endpoints, the event outbox and deliveries (store/webhooks.py)."""
        return WebhookStore(self._sessions, self._writes, self._now)

    @property
    def online_eval(self) -> OnlineEvalStore:
        """The online-evaluation queue and scores of production runs (store/online_eval.py)."""
        return OnlineEvalStore(self._sessions, self._writes, self._now)

    @property
    def flags(self) -> FlagStore:
        """Feature flags and their audit log (store/flags.py)."""
        from tether.store.flags import FlagStore  # it raises this module's NotFoundError

        return FlagStore(self._sessions, self._writes, self._now, self.dialect)

    @property
    def experiments(self) -> ExperimentStore:
        """A/B experiments and their enrolled runs' outcomes (store/experiments.py)."""
        from tether.store.experiments import ExperimentStore

        return ExperimentStore(self._sessions, self._writes, self._now, self.dialect)

    # -- releases -------------------------------------------------------------------------------

    async def add_release(
        self, *, version: str, agent_name: str, kind: str, content_hash: str, snapshot: dict[str, Any]
    ) -> ReleaseRecord:
        row = ReleaseRow(
            id=new_id("rel"),
            version=version,
            agent_name=agent_name,
            kind=kind,
            content_hash=content_hash,
            snapshot=snapshot,
            created_at=self._now(),
        )
        try:
            async with self._writes.begin() as session:
                session.add(row)
        except IntegrityError:
            raise ConflictError(f"release version {version!r} already exists") from None
        return ReleaseRecord.model_validate(row)

    async def find_release(self, *, content_hash: str, kind: str | None = None) -> ReleaseRecord | None:
        query = select(ReleaseRow).where(ReleaseRow.content_hash == content_hash)
        if kind is not None:
            query = query.where(ReleaseRow.kind == kind)
        async with self._sessions() as session:
            row = (await session.scalars(query.order_by(ReleaseRow.created_at).limit(1))).first()
        return None if row is None else ReleaseRecord.model_validate(row)

    async def get_release(self, version_or_id: str) -> ReleaseRecord:
        cached = self._releases.get(version_or_id)
        if cached is not None:
            return cached
        query = select(ReleaseRow).where(
            or_(ReleaseRow.version == version_or_id, ReleaseRow.id == version_or_id)
        )
        async with self._sessions() as session:
            row = (await session.scalars(query)).first()
        if row is None:
            raise NotFoundError(f"no release {version_or_id!r}")
        record = ReleaseRecord.model_validate(row)
        if len(self._releases) < 1000:
            self._releases[record.id] = record
        return record

    async def list_releases(self, *, include_adhoc: bool = False) -> list[ReleaseRecord]:
        query = select(ReleaseRow).order_by(ReleaseRow.created_at.desc())
        if not include_adhoc:
            query = query.where(ReleaseRow.kind == "release")
        async with self._sessions() as session:
            rows = (await session.scalars(query)).all()
        return [ReleaseRecord.model_validate(row) for row in rows]

    async def release_versions_like(self, prefix: str) -> list[str]:
        query = select(ReleaseRow.version).where(ReleaseRow.version.startswith(prefix, autoescape=True))
        async with self._sessions() as session:
            return list((await session.scalars(query)).all())

    # -- threads --------------------------------------------------------------------------------

    async def create_thread(
        self, user_id: str, thread_id: str | None = None, *, tenant_id: str = "default"
    ) -> ThreadRecord:
        row = ThreadRow(
            id=thread_id or new_id("thr"), user_id=user_id, tenant_id=tenant_id, created_at=self._now()
        )
        try:
            async with self._writes.begin() as session:
                session.add(row)
        except IntegrityError:
            raise ConflictError(f"thread {row.id!r} already exists") from None
        return ThreadRecord.model_validate(row)

    async def get_thread(self, thread_id: str) -> ThreadRecord:
        async with self._sessions() as session:
            row = await session.get(ThreadRow, thread_id)
        if row is None:
            raise NotFoundError(f"no thread {thread_id!r}")
        return ThreadRecord.model_validate(row)

    async def list_threads(
        self, *, tenant_id: str, user_id: str | None = None, limit: int = 50
    ) -> list[ThreadRecord]:
        query = select(ThreadRow).where(ThreadRow.tenant_id == tenant_id)
        if user_id is not None:
            query = query.where(ThreadRow.user_id == user_id)
        async with self._sessions() as session:
            rows = (await session.scalars(query.order_by(ThreadRow.created_at.desc()).limit(limit))).all()
        return [ThreadRecord.model_validate(row) for row in rows]

    async def thread_runs(self, thread_id: str, *, before: datetime) -> list[RunRecord]:
        """Earlier runs of a thread, oldest first: the conversation a new run continues."""
        async with self.engine.connect() as conn:
            rows = (await conn.execute(_THREAD_RUNS, {"thread": thread_id, "before": as_utc(before)})).all()
        return [fenced.run_record(row) for row in rows]

    # -- runs -----------------------------------------------------------------------------------

    async def create_run(
        self,
        *,
        release: ReleaseRecord,
        user_id: str,
        input: str,
        origin: RunOrigin,
        thread_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        tenant_id: str = "default",
        lease: tuple[str, float] | None = None,
        key_id: str | None = None,
        scopes: list[str] | None = None,
        new_thread: bool = False,
        run_id: str | None = None,
        assignment: dict[str, Any] | None = None,
        flags: dict[str, bool | str] | None = None,
        experiment: tuple[str, str] | None = None,
    ) -> RunRecord:
        """Store a queued run (with `run_id`, under that id: a caller that must record something
        about the run before any worker can see it, such as its callback endpoint); with `lease`
        (owner, seconds), a *pinned* run already claimed by that
        owner: no worker polling the same database ever takes it, and if its owner dies it fails
        (see `fail_abandoned_pinned_runs`) rather than being resumed elsewhere. With `new_thread`,
        the run starts a new thread (of `thread_id` if given), created in the same transaction.

        Creates that arrive together are committed together (`store/batch.py`), so a burst of them
        costs one disk flush, not one each, and never queues behind every step write."""
        now = self._now()
        thread: dict[str, Any] | None = None
        if new_thread:
            thread_id = thread_id or new_id("thr")
            thread = {"id": thread_id, "user_id": user_id, "tenant_id": tenant_id, "created_at": now}
        row = _new_run_row(release, user_id, tenant_id, thread_id, input, metadata, RunStatus.QUEUED, now)
        row.id = run_id or row.id
        row.origin = str(RunOrigin(origin))
        row.key_id, row.scopes = key_id, scopes
        if assignment is not None:  # why rollout chose this release (tether.rollout.assign)
            row.stage, row.assignment = str(assignment.get("stage")), assignment
        row.flags = flags
        row.experiment, row.experiment_arm = experiment if experiment is not None else (None, None)
        events = [
            EventRow(run_id=row.id, seq=1, type="status", data={"status": RunStatus.QUEUED}, created_at=now)
        ]
        if lease is not None:
            owner, lease_s = lease
            row.status = RunStatus.RUNNING
            row.pinned = True
            row.lease_owner = owner
            row.lease_expires_at = now + timedelta(seconds=lease_s)
            row.attempts = 1
            row.started_at = now
            row.event_seq = 2
            events.append(
                EventRow(
                    run_id=row.id,
                    seq=2,
                    type="status",
                    data={"status": RunStatus.RUNNING, "worker": owner},
                    created_at=now,
                )
            )
        stored = await self._creates.create(
            NewRun(
                run=fenced.run_values(row),
                events=[fenced.event_values(event) for event in events],
                thread=thread,
            )
        )
        await self._notify(row.id)
        return fenced.run_record(stored)

    async def get_run(self, run_id: str) -> RunRecord:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(RUNS).where(RUNS.c.id == run_id))).first()
        if row is None:
            raise NotFoundError(f"no run {run_id!r}")
        return fenced.run_record(row)

    async def list_runs(
        self,
        *,
        status: RunStatus | None = None,
        origins: Collection[RunOrigin] | None = PRODUCTION_ORIGINS,
        limit: int = 50,
    ) -> list[RunRecord]:
        return (await self.page_runs(status=status, origins=origins, limit=limit)).runs

    async def page_runs(
        self,
        *,
        tenant_id: str | None = None,
        user_id: str | None = None,
        status: RunStatus | None = None,
        release: str | None = None,
        since: datetime | None = None,
        origins: Collection[RunOrigin] | None = PRODUCTION_ORIGINS,
        cursor: str | None = None,
        limit: int = 50,
    ) -> RunPage:
        """Runs newest first, filtered; `next_cursor` continues where this page ended.

        Production runs only by default; `origins=None` lists every origin."""
        query = select(RunRow).order_by(RunRow.created_at.desc(), RunRow.id.desc()).limit(limit + 1)
        if origins is not None:
            query = query.where(RunRow.origin.in_([str(o) for o in origins]))
        if tenant_id is not None:
            query = query.where(RunRow.tenant_id == tenant_id)
        if user_id is not None:
            query = query.where(RunRow.user_id == user_id)
        if status is not None:
            query = query.where(RunRow.status == status)
        if release is not None:
            query = query.where(RunRow.release_version == release)
        if since is not None:
            query = query.where(RunRow.created_at >= as_utc(since))
        if cursor is not None:
            created_at, run_id = decode_cursor(cursor)
            query = query.where(
                or_(RunRow.created_at < created_at, and_(RunRow.created_at == created_at, RunRow.id < run_id))
            )
        async with self._sessions() as session:
            rows = (await session.scalars(query)).all()
        records = [RunRecord.model_validate(row) for row in rows[:limit]]
        more = len(rows) > limit
        return RunPage(runs=records, next_cursor=encode_cursor(records[-1]) if more and records else None)

    async def spend(
        self, *, since: datetime, user_id: str | None = None, tenant_id: str | None = None
    ) -> float:
        """Estimated cost of the production runs created since `since` (for per-user and per-tenant
        budgets: an eval or drill run as user u1 does not spend u1's budget)."""
        query = select(func.coalesce(func.sum(RunRow.estimated_cost_usd), 0.0)).where(
            RunRow.created_at >= since, RunRow.origin.in_([str(o) for o in PRODUCTION_ORIGINS])
        )
        if user_id is not None:
            query = query.where(RunRow.user_id == user_id)
        if tenant_id is not None:
            query = query.where(RunRow.tenant_id == tenant_id)
        async with self._sessions() as session:
            return float(await session.scalar(query) or 0.0)

    async def queue_depth(self) -> int:
        async with self._sessions() as session:
            return int(
                await session.scalar(select(func.count()).where(RunRow.status == RunStatus.QUEUED)) or 0
            )

    async def fail_abandoned_pinned_runs(self) -> list[str]:
        """End pinned runs whose process died (lease expired) as `failed`: they ran on that process's
        own data, so no other process may resume them, and none may stay `running` forever."""
        now = self._now()
        error = "abandoned: the process that alone executes this run (an eval or a drill) stopped"
        async with self._writes.begin() as session:
            ended = list(
                (
                    await session.scalars(
                        update(RunRow)
                        .where(
                            RunRow.pinned.is_(True),
                            RunRow.status == RunStatus.RUNNING,
                            RunRow.lease_expires_at < now,
                        )
                        .values(
                            status=RunStatus.FAILED,
                            error=error,
                            lease_owner=None,
                            lease_expires_at=None,
                            finished_at=now,
                            updated_at=now,
                        )
                        .returning(RunRow.id)
                    )
                ).all()
            )
            for run_id in ended:
                await self._emit(session, run_id, "status", {"status": RunStatus.FAILED, "error": error})
        for run_id in ended:
            await self._notify(run_id)
        return ended

    async def claim_run(self, owner: str, lease_s: float, *, run_id: str | None = None) -> RunRecord | None:
        """Take the lease on one claimable run (queued, or running with an expired lease).

        SQLite serialises writers, so one UPDATE over a sub-select is atomic; PostgreSQL picks the
        row with `FOR UPDATE SKIP LOCKED` so concurrent workers never wait on each other.
        """
        now = self._now()
        pick, claim = fenced.claim_statements(self.dialect == "postgresql", run_id is not None)
        params: dict[str, Any] = {
            "claim_now": now,
            "claim_owner": owner,
            "claim_expires": now + timedelta(seconds=lease_s),
        }
        if run_id is not None:
            params["claim_run"] = run_id
        if self.dialect == "sqlite":
            found = await fenced.claim(self._write_engine, params, one_run=run_id is not None, owner=owner)
            if found is not None:
                await self._notify(found.id)
            return found
        async with self._write_engine.begin() as conn:
            if self.dialect == "postgresql":
                chosen = (await conn.execute(pick, params)).scalar()
                if chosen is None:
                    return None
                params["claim_chosen"] = chosen
            row = (await conn.execute(claim, params)).first()
            if row is None:
                return None
            claimed = fenced.run_record(row)
            event = {"status": RunStatus.RUNNING, "worker": owner}
            await fenced.add_events(conn, claimed.id, row.event_seq, [("status", event)], now)
        await self._notify(claimed.id)
        return claimed

    @asynccontextmanager
    async def _fenced(self, run_id: str, owner: str, lease_s: float) -> AsyncIterator[AsyncSession]:
        """A transaction that holds only while `owner` still holds the lease, which it extends."""
        now = self._now()
        async with self._writes.begin() as session:
            result = await session.execute(
                update(RunRow)
                .where(RunRow.id == run_id, RunRow.lease_owner == owner, RunRow.status == RunStatus.RUNNING)
                .values(lease_expires_at=now + timedelta(seconds=lease_s), updated_at=now)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                raise LeaseLostError(f"run {run_id} is no longer leased to {owner}")
            yield session

    async def heartbeat(self, run_id: str, owner: str, lease_s: float) -> bool:
        now = self._now()
        try:
            async with self._write_engine.begin() as conn:
                await fenced.fence(conn, run_id, owner, now=now, expires=now + timedelta(seconds=lease_s))
        except LeaseLostError:
            return False
        return True

    async def is_cancel_requested(self, run_id: str) -> bool:
        async with self.engine.connect() as conn:
            value = await conn.scalar(select(RUNS.c.cancel_requested).where(RUNS.c.id == run_id))
        return bool(value)

    async def begin_step(self, run_id: str, owner: str, lease_s: float, draft: StepDraft) -> StepRecord:
        """Record that a step is starting, durably, before its side effects happen."""
        now = self._now()
        step: dict[str, Any] = {
            "run_id": run_id,
            "index": draft.index,
            "kind": draft.kind,
            "status": StepStatus.STARTED,
            "name": draft.name,
            "tool_call_id": draft.tool_call_id,
            "arguments": draft.arguments,
            "result": None,
            "error": None,
            "message": None,
            "idempotency_key": f"{run_id}:{draft.index}",
            "attempts": 0,
            "input_tokens": 0,
            "output_tokens": 0,
            "cost_usd": 0.0,
            "latency_ms": None,
            "started_at": now,
            "finished_at": None,
        }
        event = {"index": draft.index, "kind": draft.kind, "name": draft.name, "arguments": draft.arguments}
        await fenced.checkpoint(
            self._write_engine,
            run_id,
            owner,
            now=now,
            expires=now + timedelta(seconds=lease_s),
            statements=[(fenced.INSERT_STEP, step)],
            events=[("step_started", event)],
            increments={"steps_used": 1},
        )
        await self._notify(run_id)
        return StepRecord.model_validate(step)

    async def finish_step(
        self, run_id: str, owner: str, lease_s: float, index: int, outcome: StepOutcome, totals: RunTotals
    ) -> bool:
        """Record a step's outcome and the run's new totals in one transaction (the checkpoint).

        Returns whether the run's cancellation has been requested, as of this write: the loop's
        step-boundary check, without a read of its own."""
        now = self._now()
        counters = totals.values()
        event = {"index": index, **outcome.model_dump(mode="json", exclude={"message"}), "totals": counters}
        columns = {**outcome.columns(), "finished_at": now}
        params = {"step_run": run_id, "step_index": index, **{f"set_{k}": v for k, v in columns.items()}}
        lease = await fenced.checkpoint(
            self._write_engine,
            run_id,
            owner,
            now=now,
            expires=now + timedelta(seconds=lease_s),
            statements=[(fenced.step_update(tuple(columns)), params)],
            events=[("step_finished", event)],
            values=counters,
        )
        await self._notify(run_id)
        return lease.cancel_requested

    async def finish_run(
        self,
        run_id: str,
        owner: str,
        lease_s: float,
        *,
        status: RunStatus,
        totals: RunTotals,
        output: str | None = None,
        error: str | None = None,
    ) -> RunRecord:
        if status not in FINAL_STATUSES:
            raise ValueError(f"{status} is not a final status")
        now = self._now()
        events: list[tuple[str, dict[str, Any]]] = (
            [] if output is None else [("final_output", {"output": output})]
        )
        events.append(("status", {"status": status, "error": error}))
        values = {
            **totals.values(),
            "status": status,
            "output": output,
            "error": error,
            "finished_at": now,
            "lease_owner": None,
            "lease_expires_at": None,
        }
        if self.dialect == "sqlite":  # one trip; the outbox rows are made from the finished row
            finished = await fenced.finish(
                self._write_engine,
                run_id,
                owner,
                now=now,
                values=values,
                events=events,
                after=lambda run: outbox.run_ended_rows(run, now),
            )
            await self._notify(run_id)
            return finished
        async with self._write_engine.begin() as conn:
            lease = await fenced.fence(
                conn, run_id, owner, now=now, expires=now, events=len(events), values=values, whole_row=True
            )
            await fenced.add_events(conn, run_id, lease.first_seq, events, now)
            assert lease.row is not None
            finished = fenced.run_record(lease.row)
            await outbox.run_ended(conn, finished, now)  # webhooks and online eval, in this transaction
        await self._notify(run_id)
        return finished

    async def release_lease(self, run_id: str, owner: str) -> None:
        """Hand a still-running run back to the queue (e.g. a worker shutting down)."""
        async with self._writes.begin() as session:
            released = await session.execute(
                update(RunRow)
                .where(RunRow.id == run_id, RunRow.lease_owner == owner, RunRow.status == RunStatus.RUNNING)
                .values(
                    status=RunStatus.QUEUED, lease_owner=None, lease_expires_at=None, updated_at=self._now()
                )
            )
            if released.rowcount == 1:  # type: ignore[attr-defined]
                await self._emit(
                    session, run_id, "status", {"status": RunStatus.QUEUED, "reason": "worker stopping"}
                )
        await self._notify(run_id)

    async def list_steps(self, run_id: str) -> list[StepRecord]:
        query = select(STEPS).where(STEPS.c.run_id == run_id).order_by(STEPS.c.index)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [StepRecord.model_validate(row._mapping) for row in rows]

    # -- approvals ------------------------------------------------------------------------------

    async def wait_for_approval(
        self,
        run_id: str,
        owner: str,
        lease_s: float,
        *,
        tool_call_id: str,
        kind: ApprovalKind,
        tool: str,
        arguments: dict[str, Any],
        reason: str,
        totals: RunTotals,
    ) -> ApprovalRecord:
        """Park the run: record the pending call and let go of the lease (no process holds it)."""
        now = self._now()
        row = ApprovalRow(
            id=new_id("apr"),
            run_id=run_id,
            tool_call_id=tool_call_id,
            kind=kind,
            tool=tool,
            arguments=arguments,
            reason=reason,
            status="pending",
            created_at=now,
        )
        async with self._fenced(run_id, owner, lease_s) as session:
            session.add(row)
            await session.execute(
                update(RunRow)
                .where(RunRow.id == run_id)
                .values(
                    **totals.values(),
                    status=RunStatus.WAITING_FOR_APPROVAL,
                    lease_owner=None,
                    lease_expires_at=None,
                    updated_at=now,
                )
            )
            await session.flush()
            record = ApprovalRecord.model_validate(row)
            await self._emit(session, run_id, "approval_requested", record.model_dump(mode="json"))
            await self._emit(session, run_id, "status", {"status": RunStatus.WAITING_FOR_APPROVAL})
            await outbox.approval_changed(session, "run.waiting_for_approval", record, now)
        await self._notify(run_id)
        return record

    async def use_approval(self, run_id: str, owner: str, lease_s: float, approval_id: str) -> None:
        """Spend an approved retry, durably, before the attempt it covers begins."""
        async with self._fenced(run_id, owner, lease_s) as session:
            await session.execute(
                update(ApprovalRow)
                .where(ApprovalRow.id == approval_id, ApprovalRow.run_id == run_id)
                .values(used_at=self._now())
            )

    async def list_approvals(
        self,
        *,
        run_id: str | None = None,
        status: str | None = None,
        tenant_id: str | None = None,
        origins: Collection[RunOrigin] | None = None,
    ) -> list[ApprovalRecord]:
        """Approvals oldest first; `origins` keeps those of runs from these origins (the inbox passes
        production: an eval's or drill's parked call is never put in front of a human)."""
        query = select(ApprovalRow).order_by(ApprovalRow.created_at, ApprovalRow.id)
        if run_id is not None:
            query = query.where(ApprovalRow.run_id == run_id)
        if status is not None:
            query = query.where(ApprovalRow.status == status)
        if tenant_id is not None or origins is not None:
            query = query.join(RunRow, RunRow.id == ApprovalRow.run_id)
        if tenant_id is not None:
            query = query.where(RunRow.tenant_id == tenant_id)
        if origins is not None:
            query = query.where(RunRow.origin.in_([str(o) for o in origins]))
        async with self._sessions() as session:
            rows = (await session.scalars(query)).all()
        return [ApprovalRecord.model_validate(row) for row in rows]

    async def decide_approval(
        self,
        approval_id: str,
        *,
        approve: bool,
        decided_by: str,
        reason: str | None,
        decided_by_key: str | None = None,
    ) -> ApprovalRecord:
        """Record a human decision and put the run back in the queue for any worker to resume."""
        now = self._now()
        async with self._writes.begin() as session:
            row = await session.get(ApprovalRow, approval_id)
            if row is None:
                raise NotFoundError(f"no approval {approval_id!r}")
            decided = await session.execute(
                update(ApprovalRow)
                .where(ApprovalRow.id == approval_id, ApprovalRow.status == "pending")
                .values(
                    status="approved" if approve else "rejected",
                    decided_by=decided_by,
                    decided_by_key=decided_by_key,
                    decision_reason=reason,
                    decided_at=now,
                )
            )
            if decided.rowcount != 1:  # type: ignore[attr-defined]
                raise ConflictError(f"approval {approval_id} was already decided ({row.status})")
            requeued = await session.execute(
                update(RunRow)
                .where(RunRow.id == row.run_id, RunRow.status == RunStatus.WAITING_FOR_APPROVAL)
                .values(status=RunStatus.QUEUED, updated_at=now)
            )
            await session.refresh(row)
            record = ApprovalRecord.model_validate(row)
            await self._emit(session, row.run_id, "approval_decided", record.model_dump(mode="json"))
            await outbox.approval_changed(session, "approval.decided", record, now)
            if requeued.rowcount == 1:  # type: ignore[attr-defined]
                await self._emit(session, row.run_id, "status", {"status": RunStatus.QUEUED})
        await self._notify(record.run_id)
        return record

    # -- cancellation ---------------------------------------------------------------------------

    async def request_cancel(self, run_id: str) -> RunRecord:
        """Cancel now if nothing runs it; otherwise flag it for the loop's next step boundary."""
        now = self._now()
        async with self._writes.begin() as session:
            row = await session.get(RunRow, run_id, with_for_update=self.dialect == "postgresql")
            if row is None:
                raise NotFoundError(f"no run {run_id!r}")
            if row.status in FINAL_STATUSES:
                raise ConflictError(f"run {run_id} already ended ({row.status})")
            idle = row.status in (RunStatus.QUEUED, RunStatus.WAITING_FOR_APPROVAL)
            await session.execute(
                update(RunRow)
                .where(RunRow.id == run_id)
                .values(
                    cancel_requested=True,
                    updated_at=now,
                    **(
                        {
                            "status": RunStatus.CANCELLED,
                            "finished_at": now,
                            "error": f"cancelled while {row.status}",
                        }
                        if idle
                        else {}
                    ),
                )
            )
            if idle:
                await session.execute(
                    update(ApprovalRow)
                    .where(ApprovalRow.run_id == run_id, ApprovalRow.status == "pending")
                    .values(status="cancelled", decided_at=now)
                )
                await self._emit(
                    session, run_id, "status", {"status": RunStatus.CANCELLED, "error": "cancelled"}
                )
                await session.refresh(row)
                await outbox.run_ended(session, RunRecord.model_validate(row), now)
            else:
                await self._emit(session, run_id, "cancel_requested", {})
        await self._notify(run_id)
        return await self.get_run(run_id)

    # -- events ---------------------------------------------------------------------------------

    async def list_events(self, run_id: str, *, after: int = 0, limit: int = 500) -> list[EventRecord]:
        query = (
            select(EventRow)
            .where(EventRow.run_id == run_id, EventRow.seq > after)
            .order_by(EventRow.seq)
            .limit(limit)
        )
        async with self._sessions() as session:
            rows = (await session.scalars(query)).all()
        return [EventRecord.model_validate(row) for row in rows]

    # -- API keys -------------------------------------------------------------------------------

    async def add_api_key(
        self, *, key_id: str, key_hash: str, user_id: str, tenant_id: str, scopes: list[str], label: str
    ) -> ApiKeyRecord:
        row = ApiKeyRow(
            id=key_id,
            key_hash=key_hash,
            user_id=user_id,
            tenant_id=tenant_id,
            scopes=scopes,
            label=label,
            created_at=self._now(),
        )
        async with self._writes.begin() as session:
            session.add(row)
        return ApiKeyRecord.model_validate(row)

    async def get_api_key(self, key_id: str) -> ApiKeyRecord | None:
        """Read on every API request: one Core statement built once, no ORM session."""
        async with self.engine.connect() as conn:
            row = (await conn.execute(_GET_API_KEY, {"key_id": key_id})).first()
        return None if row is None else ApiKeyRecord.model_validate(dict(row._mapping))

    async def list_api_keys(self) -> list[ApiKeyRecord]:
        async with self._sessions() as session:
            rows = (await session.scalars(select(ApiKeyRow).order_by(ApiKeyRow.created_at))).all()
        return [ApiKeyRecord.model_validate(row) for row in rows]

    async def revoke_api_key(self, key_id: str) -> ApiKeyRecord:
        async with self._writes.begin() as session:
            row = await session.get(ApiKeyRow, key_id)
            if row is None:
                raise NotFoundError(f"no API key {key_id!r}")
            if row.revoked_at is None:
                row.revoked_at = self._now()
                # Same transaction: a process that sees the new revision also sees the revocation.
                await bump_revision(session, API_KEYS_TOPIC, row.revoked_at)
        return ApiKeyRecord.model_validate(row)

    # -- feedback -------------------------------------------------------------------------------

    async def add_feedback(
        self, run_id: str, *, user_id: str, score: int, comment: str | None
    ) -> FeedbackRecord:
        row = FeedbackRow(
            run_id=run_id, user_id=user_id, score=score, comment=comment, created_at=self._now()
        )
        async with self._writes.begin() as session:
            session.add(row)
            await session.flush()
            record = FeedbackRecord.model_validate(row)
            await self._emit(session, run_id, "feedback", record.model_dump(mode="json"))
        await self._notify(run_id)
        return record

    # -- workers --------------------------------------------------------------------------------

    async def worker_heartbeat(self, worker_id: str, *, concurrency: int, active_runs: int) -> None:
        now = self._now()
        async with self._writes.begin() as session:
            row = await session.get(WorkerRow, worker_id)
            if row is None:
                session.add(
                    WorkerRow(
                        id=worker_id,
                        concurrency=concurrency,
                        active_runs=active_runs,
                        started_at=now,
                        heartbeat_at=now,
                    )
                )
            else:
                row.active_runs = active_runs
                row.heartbeat_at = now
                row.stopped_at = None

    async def worker_stopped(self, worker_id: str) -> None:
        async with self._writes.begin() as session:
            await session.execute(
                update(WorkerRow)
                .where(WorkerRow.id == worker_id)
                .values(stopped_at=self._now(), active_runs=0)
            )

    async def live_workers(self, *, within_s: float) -> list[WorkerRecord]:
        since = self._now() - timedelta(seconds=within_s)
        query = select(WorkerRow).where(WorkerRow.heartbeat_at >= since, WorkerRow.stopped_at.is_(None))
        async with self._sessions() as session:
            rows = (await session.scalars(query.order_by(WorkerRow.id))).all()
        return [WorkerRecord.model_validate(row) for row in rows]

    # -- evals: seeded thread history, eval runs, case results, gate verdicts (issue #4) ----------

    async def add_history_turn(
        self,
        *,
        release: ReleaseRecord,
        thread_id: str,
        user_id: str,
        input: str,
        output: str | None,
        at: datetime,
        metadata: dict[str, Any] | None = None,
        tenant_id: str = "default",
    ) -> RunRecord:
        """An earlier turn of a thread, recorded as a finished run (no steps) so later runs continue it.

        `at` orders the turns: the run loop replays a thread's runs created before the current one.
        """
        row = _new_run_row(release, user_id, tenant_id, thread_id, input, metadata, RunStatus.SUCCEEDED, at)
        row.origin = str(RunOrigin.EVAL)  # only eval cases seed history
        row.output = output
        row.started_at = row.finished_at = at
        event = EventRow(
            run_id=row.id, seq=1, type="status", data={"status": RunStatus.SUCCEEDED}, created_at=at
        )
        async with self._writes.begin() as session:
            session.add(row)
            await session.flush()
            session.add(event)
        return RunRecord.model_validate(row)

    async def create_eval_run(
        self,
        *,
        release_id: str,
        suites: list[str],
        trials: int,
        judge_model: str | None,
        judge_prompt_hash: str | None,
    ) -> EvalRunRecord:
        row = EvalRunRow(
            id=new_id("evr"),
            release_id=release_id,
            suites=suites,
            trials=trials,
            status="running",
            judge_model=judge_model,
            judge_prompt_hash=judge_prompt_hash,
            summary={},
            created_at=self._now(),
        )
        async with self._writes.begin() as session:
            session.add(row)
        return EvalRunRecord.model_validate(row)

    async def finish_eval_run(
        self, eval_run_id: str, *, results: list[EvalCaseResultRecord], summary: dict[str, Any]
    ) -> EvalRunRecord:
        """Store every case result and mark the eval run finished, in one transaction."""
        async with self._writes.begin() as session:
            row = await session.get(EvalRunRow, eval_run_id)
            if row is None:
                raise NotFoundError(f"no eval run {eval_run_id!r}")
            for result in results:
                session.add(EvalCaseResultRow(**result.model_dump()))
            row.status = "finished"
            row.summary = summary
            row.finished_at = self._now()
        return EvalRunRecord.model_validate(row)

    async def get_eval_run(self, eval_run_id: str) -> EvalRunRecord:
        async with self._sessions() as session:
            row = await session.get(EvalRunRow, eval_run_id)
        if row is None:
            raise NotFoundError(f"no eval run {eval_run_id!r}")
        return EvalRunRecord.model_validate(row)

    async def latest_eval_run(self, release_id: str) -> EvalRunRecord | None:
        """The release's newest finished eval run (the one a gate or cost estimate reads)."""
        query = (
            select(EvalRunRow)
            .where(EvalRunRow.release_id == release_id, EvalRunRow.status == "finished")
            .order_by(EvalRunRow.created_at.desc(), EvalRunRow.id.desc())
            .limit(1)
        )
        async with self._sessions() as session:
            row = (await session.scalars(query)).first()
        return None if row is None else EvalRunRecord.model_validate(row)

    async def list_eval_case_results(self, eval_run_id: str) -> list[EvalCaseResultRecord]:
        query = (
            select(EvalCaseResultRow)
            .where(EvalCaseResultRow.eval_run_id == eval_run_id)
            .order_by(EvalCaseResultRow.suite, EvalCaseResultRow.case_id)
        )
        async with self._sessions() as session:
            rows = (await session.scalars(query)).all()
        return [EvalCaseResultRecord.model_validate(row) for row in rows]

    async def add_gate_verdict(
        self,
        *,
        release_id: str,
        eval_run_id: str,
        baseline_release_id: str | None,
        passed: bool,
        policy: dict[str, Any],
        checks: list[dict[str, Any]],
    ) -> GateVerdictRecord:
        row = GateVerdictRow(
            id=new_id("gate"),
            release_id=release_id,
            eval_run_id=eval_run_id,
            baseline_release_id=baseline_release_id,
            passed=passed,
            policy=policy,
            checks=checks,
            created_at=self._now(),
        )
        async with self._writes.begin() as session:
            session.add(row)
        return GateVerdictRecord.model_validate(row)

    async def latest_gate_verdict(self, release_id: str) -> GateVerdictRecord | None:
        """The release's verdict: its newest gate decision."""
        query = (
            select(GateVerdictRow)
            .where(GateVerdictRow.release_id == release_id)
            .order_by(GateVerdictRow.created_at.desc(), GateVerdictRow.id.desc())
            .limit(1)
        )
        async with self._sessions() as session:
            row = (await session.scalars(query)).first()
        return None if row is None else GateVerdictRecord.model_validate(row)

    async def last_passing_release(self, *, agent_name: str, exclude: str) -> ReleaseRecord | None:
        """The release (other than `exclude`) whose newest gate verdict passed most recently."""
        query = (
            select(GateVerdictRow, ReleaseRow)
            .join(ReleaseRow, ReleaseRow.id == GateVerdictRow.release_id)
            .where(ReleaseRow.agent_name == agent_name, ReleaseRow.id != exclude)
            .order_by(GateVerdictRow.created_at.desc(), GateVerdictRow.id.desc())
        )
        seen: set[str] = set()
        async with self._sessions() as session:
            for verdict, release in (await session.execute(query)).all():
                if release.id in seen:
                    continue  # an older verdict of a release whose newest verdict was seen already
                seen.add(release.id)
                if verdict.passed:
                    return ReleaseRecord.model_validate(release)
        return None


def _new_run_row(
    release: ReleaseRecord,
    user_id: str,
    tenant_id: str,
    thread_id: str | None,
    input: str,
    metadata: dict[str, Any] | None,
    status: RunStatus,
    at: datetime,
) -> RunRow:
    """A run that has done nothing yet: no steps, tokens, cost or attempts."""
    return RunRow(
        id=new_id("run"),
        release_id=release.id,
        release_version=release.version,
        user_id=user_id,
        tenant_id=tenant_id,
        thread_id=thread_id,
        origin=str(RunOrigin.API),  # callers set the real origin
        status=status,
        input=input,
        steps_used=0,
        tools_called=[],
        input_tokens=0,
        output_tokens=0,
        estimated_cost_usd=0.0,
        risk_level="none",
        run_metadata=metadata or {},
        cancel_requested=False,
        attempts=0,
        event_seq=1,
        created_at=at,
        updated_at=at,
    )


def encode_cursor(run: RunRecord) -> str:
    raw = f"{run.created_at.isoformat()}|{run.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """Raise `ValueError` (a client error) for anything that is not a cursor we issued."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, run_id = raw.split("|", 1)
        created_at = as_utc(datetime.fromisoformat(stamp))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"invalid cursor {cursor!r}") from exc
    if not run_id:
        raise ValueError(f"invalid cursor {cursor!r}")
    return created_at, run_id


def as_utc(moment: datetime) -> datetime:
    """`moment` in UTC; `ValueError` for a naive time or one that leaves the representable range."""
    if moment.tzinfo is None:
        raise ValueError(f"{moment.isoformat()} needs a time zone, e.g. 2026-11-22T00:00:00Z")
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{moment.isoformat()} is outside the range of UTC times") from None
