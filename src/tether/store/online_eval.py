"""Reads and writes of online evaluation: the queue of finished production runs, and their scores.

Jobs are written by `store/outbox.py` in the transaction that ends a run. A scorer claims a job
by pushing its `next_attempt_at` forward (a lease: a scorer that dies leaves the job due again),
then stores the scores and deletes the job in one transaction. `Store.online_eval` hands one out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict
from sqlalchemy import delete, func, select, update

from tether.store.aggregate import Aggregate
from tether.store.records import PRODUCTION_ORIGINS
from tether.store.tables import FeedbackRow, OnlineEvalJobRow, OnlineScoreRow, RunRow

FEEDBACK = "feedback"
"""The scorer name user feedback is reported under (thumbs up 1, down 0; `POST /v1/runs/{id}/feedback`)."""


class OnlineJob(BaseModel):
    model_config = ConfigDict(from_attributes=True, frozen=True)

    run_id: str
    release_id: str
    tenant_id: str
    attempts: int


class OnlineScoreRecord(BaseModel):
    model_config = ConfigDict(from_attributes=True, frozen=True)

    run_id: str
    scorer: str
    release_id: str
    tenant_id: str
    score: float
    passed: bool
    detail: str | None
    cost_usd: float
    input_tokens: int
    output_tokens: int
    created_at: datetime


@dataclass(frozen=True)
class ScoreDraft:
    scorer: str
    score: float
    passed: bool
    detail: str | None = None
    cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass(frozen=True)
class ScoreSummary:
    """The mean of one scorer over a window (for one release, or for one tenant)."""

    key: str
    scorer: str
    mean: float
    count: int


class OnlineEvalStore(Aggregate):
    async def claim_jobs(self, *, limit: int, claim_s: float) -> list[OnlineJob]:
        now = self._now()
        query = (
            select(OnlineEvalJobRow.run_id)
            .where(OnlineEvalJobRow.next_attempt_at <= now)
            .order_by(OnlineEvalJobRow.next_attempt_at)
            .limit(limit)
        )
        async with self._sessions() as session:
            candidates = list((await session.scalars(query)).all())
        claimed: list[OnlineJob] = []
        for run_id in candidates:
            async with self._writes.begin() as session:
                taken = await session.execute(
                    update(OnlineEvalJobRow)
                    .where(OnlineEvalJobRow.run_id == run_id, OnlineEvalJobRow.next_attempt_at <= now)
                    .values(
                        next_attempt_at=now + timedelta(seconds=claim_s),
                        attempts=OnlineEvalJobRow.attempts + 1,
                    )
                )
                if taken.rowcount != 1:  # type: ignore[attr-defined]
                    continue
                row = await session.get(OnlineEvalJobRow, run_id)
                assert row is not None
                claimed.append(OnlineJob.model_validate(row))
        return claimed

    async def queue_depth(self) -> int:
        async with self._sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(OnlineEvalJobRow)) or 0)

    async def complete(self, job: OnlineJob, scores: list[ScoreDraft]) -> None:
        """Store the run's scores (none: it was not sampled) and take the job off the queue, together."""
        now = self._now()
        async with self._writes.begin() as session:
            for draft in scores:
                await session.merge(
                    OnlineScoreRow(
                        run_id=job.run_id,
                        scorer=draft.scorer,
                        release_id=job.release_id,
                        tenant_id=job.tenant_id,
                        score=draft.score,
                        passed=draft.passed,
                        detail=draft.detail,
                        cost_usd=draft.cost_usd,
                        input_tokens=draft.input_tokens,
                        output_tokens=draft.output_tokens,
                        created_at=now,
                    )
                )
            await session.execute(delete(OnlineEvalJobRow).where(OnlineEvalJobRow.run_id == job.run_id))

    async def retry_later(self, job: OnlineJob, *, error: str, after_s: float) -> None:
        async with self._writes.begin() as session:
            await session.execute(
                update(OnlineEvalJobRow)
                .where(OnlineEvalJobRow.run_id == job.run_id)
                .values(next_attempt_at=self._now() + timedelta(seconds=after_s), last_error=error[:2000])
            )

    async def scores_for_run(self, run_id: str) -> list[OnlineScoreRecord]:
        query = select(OnlineScoreRow).where(OnlineScoreRow.run_id == run_id).order_by(OnlineScoreRow.scorer)
        async with self._sessions() as session:
            rows = (await session.scalars(query)).all()
        return [OnlineScoreRecord.model_validate(row) for row in rows]

    async def summary(
        self,
        *,
        since: datetime,
        until: datetime | None = None,
        by: str = "release",
        release_id: str | None = None,
        tenant_id: str | None = None,
    ) -> list[ScoreSummary]:
        """Mean score per scorer and release (`by="release"`) or tenant (`by="tenant"`) over a window,
        user feedback of production runs included under the scorer name `feedback`."""
        until = until or self._now()
        score_key = OnlineScoreRow.release_id if by == "release" else OnlineScoreRow.tenant_id
        scores = (
            select(score_key, OnlineScoreRow.scorer, func.avg(OnlineScoreRow.score), func.count())
            .where(OnlineScoreRow.created_at >= since, OnlineScoreRow.created_at < until)
            .group_by(score_key, OnlineScoreRow.scorer)
        )
        run_key = RunRow.release_id if by == "release" else RunRow.tenant_id
        feedback = (
            select(run_key, func.avg((FeedbackRow.score + 1) / 2.0), func.count())
            .join(RunRow, RunRow.id == FeedbackRow.run_id)
            .where(
                FeedbackRow.created_at >= since,
                FeedbackRow.created_at < until,
                RunRow.origin.in_([str(o) for o in PRODUCTION_ORIGINS]),
            )
            .group_by(run_key)
        )
        if release_id is not None:
            scores = scores.where(OnlineScoreRow.release_id == release_id)
            feedback = feedback.where(RunRow.release_id == release_id)
        if tenant_id is not None:
            scores = scores.where(OnlineScoreRow.tenant_id == tenant_id)
            feedback = feedback.where(RunRow.tenant_id == tenant_id)
        async with self._sessions() as session:
            score_rows = (await session.execute(scores)).all()
            feedback_rows = (await session.execute(feedback)).all()
        result = [ScoreSummary(str(r[0]), str(r[1]), float(r[2]), int(r[3])) for r in score_rows]
        result += [ScoreSummary(str(r[0]), FEEDBACK, float(r[1]), int(r[2])) for r in feedback_rows]
        return sorted(result, key=lambda s: (s.key, s.scorer))

    async def mean_score(
        self, release_id: str, *, since: datetime, until: datetime | None = None, scorer: str | None = None
    ) -> tuple[float | None, int]:
        """The mean online score of a release over a window and how many scores it averages: every
        scorer's scores weighted alike, or one scorer's. For canary analysis (release vs baseline)."""
        until = until or self._now()
        query = select(func.avg(OnlineScoreRow.score), func.count()).where(
            OnlineScoreRow.release_id == release_id,
            OnlineScoreRow.created_at >= since,
            OnlineScoreRow.created_at < until,
        )
        if scorer is not None:
            query = query.where(OnlineScoreRow.scorer == scorer)
        async with self._sessions() as session:
            row = (await session.execute(query)).one()
        return (None if row[0] is None else float(row[0])), int(row[1])

    async def judge_spend(self, *, since: datetime | None = None) -> tuple[float, int, int]:
        """What scoring itself cost (since `since`, or ever): USD, input and output tokens (never the
        agent's: those stay on the run)."""
        query = select(
            func.coalesce(func.sum(OnlineScoreRow.cost_usd), 0.0),
            func.coalesce(func.sum(OnlineScoreRow.input_tokens), 0),
            func.coalesce(func.sum(OnlineScoreRow.output_tokens), 0),
        )
        if since is not None:
            query = query.where(OnlineScoreRow.created_at >= since)
        async with self._sessions() as session:
            row = (await session.execute(query)).one()
        return float(row[0]), int(row[1]), int(row[2])
