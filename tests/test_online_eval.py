"""Online evaluation of live traffic: sampling, the scorers, the durable queue, the judge's cost kept
apart from the agent's, and the scores reaching the API, /metrics, the alerts and canary analysis."""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import Cli, bare_release
from fastapi.testclient import TestClient
from timing import TestClock, wait_until
from ui_helpers import csrf_from

from tether.agent.config import AlertRule, ConfigError, load_config
from tether.api.app import ServiceOptions, create_app
from tether.api.auth import issue_key
from tether.evals.online import (
    OnlineScorer,
    sampled,
    score_cost,
    score_guardrails,
    score_latency,
    score_status,
)
from tether.observe.alerts import AlertEvaluator
from tether.settings import Settings
from tether.store.online_eval import OnlineJob, ScoreDraft
from tether.store.records import (
    RunOrigin,
    RunRecord,
    RunStatus,
    RunTotals,
    StepDraft,
    StepKind,
    StepOutcome,
    StepRecord,
    StepStatus,
)
from tether.store.repository import Store

ONLINE = """
[online_eval]
sample_rate = 1.0
scorers = ["status", "latency", "cost", "judge"]
rubric = "Gives the tracking number and the delivery status of the order."
latency_target_s = 600

[prices."scripted:judge"]
input_per_mtok = 1000.0
output_per_mtok = 1000.0
"""


def with_online_eval(project: Path, section: str = ONLINE) -> Path:
    config = project / "tether.toml"
    config.write_text(config.read_text() + section)
    return project


# --------------------------------------------------------------------------- sampling and scorers


def test_sampling_is_a_stable_share_of_runs() -> None:
    ids = [f"run_{i:05d}" for i in range(4000)]
    chosen = [run_id for run_id in ids if sampled(run_id, 0.25)]
    assert 0.2 < len(chosen) / len(ids) < 0.3
    assert chosen == [run_id for run_id in ids if sampled(run_id, 0.25)]  # same answer every time
    assert not any(sampled(run_id, 0.0) for run_id in ids)
    assert all(sampled(run_id, 1.0) for run_id in ids)


def _run(**fields: object) -> RunRecord:
    from datetime import UTC, datetime

    start = datetime(2026, 1, 1, tzinfo=UTC)
    base: dict[str, object] = {
        "id": "run_x",
        "release_id": "rel",
        "release_version": "v1",
        "user_id": "u",
        "tenant_id": "t",
        "status": RunStatus.SUCCEEDED,
        "input": "hi",
        "created_at": start,
        "started_at": start,
        "finished_at": start + timedelta(seconds=20),
        "updated_at": start,
        "estimated_cost_usd": 0.02,
        "thread_id": None,
        "origin": RunOrigin.API,
        "output": "ok",
        "error": None,
        "cancel_requested": False,
        "lease_owner": None,
        "lease_expires_at": None,
        "attempts": 1,
    }
    base.update(fields)
    return RunRecord.model_validate(base)


def test_the_scorers_that_need_no_expected_answer() -> None:
    assert score_status(_run()).score == 1.0
    assert score_status(_run(status=RunStatus.ESCALATED)).score == 0.5
    assert score_status(_run(status=RunStatus.FAILED)) == ScoreDraft("status", 0.0, False, "ended failed")
    fast, slow = score_latency(_run(), 30), score_latency(_run(), 10)
    assert (fast.score, fast.passed) == (1.0, True)
    assert (slow.score, slow.passed) == (0.5, False)  # twice the target
    assert score_cost(_run(), 0.05).score == 1.0
    assert score_cost(_run(), 0.01).score == 0.5


def _step(index: int, kind: StepKind, name: str = "model", action: str | None = None) -> StepRecord:
    from datetime import UTC, datetime

    return StepRecord.model_validate(
        {
            "run_id": "run_x",
            "index": index,
            "kind": kind,
            "status": StepStatus.SUCCEEDED,
            "name": name,
            "tool_call_id": None,
            "arguments": {"stage": "output", "action": action} if action else {},
            "result": None,
            "error": None,
            "message": None,
            "idempotency_key": f"run_x:{index}",
            "attempts": 1,
            "input_tokens": 0,
            "output_tokens": 0,
            "cost_usd": 0.0,
            "latency_ms": None,
            "started_at": datetime(2026, 1, 1, tzinfo=UTC),
            "finished_at": None,
        }
    )


def test_the_guardrails_scorer_counts_interventions_and_fails_on_a_block() -> None:
    clean = [
        _step(0, StepKind.MODEL_CALL),
        _step(1, StepKind.TOOL_CALL, "lookup"),
        _step(2, StepKind.MODEL_CALL),
    ]
    assert score_guardrails(_run(), clean) == ScoreDraft(
        "guardrails", 1.0, True, "no guard decision in 3 steps"
    )
    redacted = [*clean, _step(3, StepKind.GUARDRAIL, "pii", "redact")]
    found = score_guardrails(_run(), redacted)
    assert (found.score, found.passed) == (0.75, True)  # one intervention in four steps, nothing blocked
    assert "redact 1" in found.detail and "pii" in found.detail
    blocked = [*redacted, _step(4, StepKind.GUARDRAIL, "injection", "block")]
    found = score_guardrails(_run(status=RunStatus.BLOCKED), blocked)
    assert (found.score, found.passed) == (0.6, False)
    assert "block 1" in found.detail and "injection" in found.detail
    # A blocked run fails even when its block left no step (and an empty run scores 1).
    assert not score_guardrails(_run(status=RunStatus.BLOCKED), clean).passed
    assert score_guardrails(_run(), []).score == 1.0


async def test_the_worker_scores_recorded_guard_decisions(store: Store, example_project: Path) -> None:
    with_online_eval(example_project, '\n[online_eval]\nsample_rate = 1.0\nscorers = ["guardrails"]\n')
    from tether.rollout.releases import working_copy_release

    release = await working_copy_release(store, example_project)
    run = await store.create_run(release=release, user_id="u", input="x", origin=RunOrigin.API)
    assert await store.claim_run("w", 60, run_id=run.id) is not None
    for index, (kind, name, arguments) in enumerate(
        [
            (StepKind.MODEL_CALL, "model", {}),
            (StepKind.GUARDRAIL, "pii", {"stage": "output", "action": "redact"}),
        ]
    ):
        draft = StepDraft(index=index, kind=kind, name=name, arguments=arguments)
        await store.begin_step(run.id, "w", 60, draft)
        outcome = StepOutcome(status=StepStatus.SUCCEEDED)
        await store.finish_step(run.id, "w", 60, index, outcome, RunTotals())
    await store.finish_run(run.id, "w", 60, status=RunStatus.SUCCEEDED, totals=RunTotals())
    scorer = OnlineScorer(store, project=example_project, poll_s=1)
    assert await scorer.tick() == 1
    [score] = await store.online_eval.scores_for_run(run.id)
    assert (score.scorer, score.score, score.passed) == ("guardrails", 0.5, True)
    now = store.online_eval.now()
    summary = await store.online_eval.summary(since=now - timedelta(hours=1), until=now + timedelta(hours=1))
    assert [(row.scorer, row.mean) for row in summary if row.scorer == "guardrails"] == [("guardrails", 0.5)]


def test_the_judge_scorer_needs_a_rubric(example_project: Path) -> None:
    with_online_eval(example_project, '\n[online_eval]\nsample_rate = 0.5\nscorers = ["judge"]\n')
    with pytest.raises(ConfigError, match="needs a rubric"):
        load_config(example_project / "tether.toml")


# --------------------------------------------------------------------------- the durable queue


async def _finished(store: Store, origin: RunOrigin = RunOrigin.API) -> RunRecord:
    found = await store.find_release(content_hash="0" * 64)
    release = found if found is not None else await bare_release(store)
    run = await store.create_run(release=release, user_id="u", input="x", origin=origin, tenant_id="t1")
    assert await store.claim_run("w", 60, run_id=run.id) is not None
    return await store.finish_run(run.id, "w", 60, status=RunStatus.SUCCEEDED, totals=RunTotals())


async def test_only_production_runs_are_queued_and_a_dead_scorer_loses_nothing(
    store: Store, clock: TestClock
) -> None:
    run = await _finished(store)
    release = await store.find_release(content_hash="0" * 64)
    assert release is not None
    pinned = await store.create_run(
        release=release, user_id="u", input="x", origin=RunOrigin.EVAL, tenant_id="t1", lease=("w", 60)
    )
    await store.finish_run(pinned.id, "w", 60, status=RunStatus.FAILED, totals=RunTotals())
    assert await store.online_eval.queue_depth() == 1  # the eval run left no job
    [job] = await store.online_eval.claim_jobs(limit=10, claim_s=300)  # ... and its scorer dies
    assert job.run_id == run.id
    assert await store.online_eval.claim_jobs(limit=10, claim_s=300) == []
    clock.advance(301)
    [again] = await store.online_eval.claim_jobs(limit=10, claim_s=300)
    assert again.run_id == run.id and again.attempts == 2
    await store.online_eval.complete(again, [ScoreDraft("status", 1.0, True)])
    assert await store.online_eval.queue_depth() == 0
    assert [s.scorer for s in await store.online_eval.scores_for_run(run.id)] == ["status"]


async def test_mean_score_per_release_over_a_window_for_canary_analysis(
    store: Store, clock: TestClock
) -> None:
    start = clock()
    runs = [await _finished(store) for _ in range(3)]
    online = store.online_eval
    for run, score in zip(runs, (1.0, 0.5, 0.0), strict=True):
        job = OnlineJob(run_id=run.id, release_id=run.release_id, tenant_id="t1", attempts=1)
        await online.complete(
            job, [ScoreDraft("judge", score, score >= 0.5), ScoreDraft("status", 1.0, True)]
        )
    mean, count = await online.mean_score(runs[0].release_id, since=start - timedelta(seconds=1))
    assert count == 6 and mean == pytest.approx(0.75)
    judge_mean, judge_count = await online.mean_score(
        runs[0].release_id, since=start - timedelta(seconds=1), scorer="judge"
    )
    assert judge_count == 3 and judge_mean == pytest.approx(0.5)
    assert await online.mean_score(runs[0].release_id, since=clock() + timedelta(seconds=5)) == (None, 0)
    await store.add_feedback(runs[0].id, user_id="u", score=1, comment=None)
    await store.add_feedback(runs[1].id, user_id="u", score=-1, comment=None)
    summary = {s.scorer: s for s in await online.summary(since=start - timedelta(seconds=1))}
    assert summary["feedback"].mean == pytest.approx(0.5) and summary["feedback"].count == 2
    assert summary["judge"].mean == pytest.approx(0.5)


async def test_a_score_drop_fires_the_alert(store: Store, clock: TestClock) -> None:
    rule = AlertRule(name="quality dropped", metric="online_score_drop", above=0.2, window="1h", min_runs=3)
    online = store.online_eval

    async def scored(value: float) -> None:
        run = await _finished(store)
        job = OnlineJob(run_id=run.id, release_id=run.release_id, tenant_id="t1", attempts=1)
        await online.complete(job, [ScoreDraft("judge", value, value >= 0.5)])

    for _ in range(4):
        await scored(0.9)
    clock.advance(2 * 3600)  # those are now the baseline, before the rule's window
    evaluator = AlertEvaluator(store, [rule])
    for _ in range(3):
        await scored(0.85)
    assert await evaluator.check(clock()) == []  # a 0.05 dip is noise
    for _ in range(6):
        await scored(0.3)
    [fired] = await evaluator.check(clock())
    assert fired.state == "firing" and fired.alert.metric == "online_score_drop"
    assert fired.alert.value is not None and fired.alert.value > 0.2


# --------------------------------------------------------------------------- end to end, in the service


def _key(tenant: str = "default") -> str:
    async def create() -> str:
        store = await Store.open(os.environ["TETHER_DATABASE_URL"])
        try:
            _, plaintext = await issue_key(store, user_id="u1", tenant_id=tenant, scopes=["admin"])
        finally:
            await store.close()
        return plaintext

    return asyncio.run(create())


def test_the_worker_scores_live_runs_and_the_judge_is_costed_apart(example_project: Path) -> None:
    with_online_eval(example_project)
    auth = {"Authorization": f"Bearer {_key()}"}
    settings = Settings(online_eval_poll_s=0.05)
    app = create_app(
        ServiceOptions(project=example_project, embedded_worker_concurrency=2, settings=settings)
    )
    with TestClient(app) as client:
        run = client.post(
            "/v1/runs", headers=auth, json={"input": "Where is my order 12345?", "wait": 30}
        ).json()
        assert run["status"] == "succeeded"
        scores = wait_until(lambda: client.get(f"/v1/runs/{run['run_id']}/scores", headers=auth).json())
        by_name = {s["scorer"]: s for s in scores}
        assert set(by_name) == {"status", "latency", "cost", "judge"}
        assert by_name["status"]["score"] == 1.0 and by_name["latency"]["passed"]
        assert 0 < by_name["judge"]["score"] <= 1 and "scripted overlap judge" in by_name["judge"]["detail"]
        # The judge's own spend is stored with its score; the run's cost is what the agent spent.
        assert by_name["judge"]["judge_cost_usd"] > 0
        assert by_name["status"]["judge_cost_usd"] == 0
        after = client.get(f"/v1/runs/{run['run_id']}", headers=auth).json()
        assert after["estimated_cost_usd"] == run["estimated_cost_usd"]
        summary = client.get("/v1/online-eval/summary", headers=auth, params={"hours": 1}).json()
        assert {row["scorer"] for row in summary} == {"status", "latency", "cost", "judge"}
        assert {row["release_version"] for row in summary} == {run["release_version"]}
        metrics = client.get("/metrics", headers=auth).text
        assert 'tether_online_score_mean{release="' + run["release_version"] + '",scorer="judge"}' in metrics
        assert "tether_online_eval_judge_cost_usd_total " in metrics
        # The dashboard: the run page lists the scores, the health page the means per release.
        form = client.get("/ui/login", params={"next": "/ui/health"})
        login = {"key": auth["Authorization"].removeprefix("Bearer "), "csrf": csrf_from(form.text)}
        assert client.post("/ui/login", data={**login, "next": "/ui/health"}).status_code == 200
        page = client.get(f"/ui/runs/{run['run_id']}").text
        assert 'id="online-scores"' in page and "scripted overlap judge" in page
        health = client.get("/ui/health").text
        assert 'id="online-by-release"' in health and run["release_version"] in health
        other = {"Authorization": f"Bearer {_key('elsewhere')}"}
        assert client.get(f"/v1/runs/{run['run_id']}/scores", headers=other).status_code == 404
        assert client.get("/v1/online-eval/summary", headers=other).json() == []
        assert (
            client.get("/v1/online-eval/summary", headers=auth, params={"release": "nope"}).status_code == 404
        )


async def test_unsampled_runs_leave_the_queue_unscored(store: Store, example_project: Path) -> None:
    with_online_eval(example_project, "\n[online_eval]\nsample_rate = 0.0\n")
    from tether.rollout.releases import working_copy_release

    release = await working_copy_release(store, example_project)
    run = await store.create_run(release=release, user_id="u", input="x", origin=RunOrigin.API)
    assert await store.claim_run("w", 60, run_id=run.id) is not None
    await store.finish_run(run.id, "w", 60, status=RunStatus.SUCCEEDED, totals=RunTotals())
    scorer = OnlineScorer(store, project=example_project, poll_s=1)
    assert await scorer.tick() == 0
    assert await store.online_eval.queue_depth() == 0
    assert await store.online_eval.scores_for_run(run.id) == []


def test_the_cli_shows_scores_and_the_summary(example_project: Path, cli: Cli) -> None:
    with_online_eval(example_project)
    p = ("--project", example_project)
    run = cli.json("run", "--user", "u1", "Where is my order 12345?", *p)
    assert cli.json("online-eval", "scores", run["run_id"], *p) == []  # queued, not scored yet

    async def score_queue() -> int:
        store = await Store.open(os.environ["TETHER_DATABASE_URL"])
        try:
            return await OnlineScorer(store, project=example_project, poll_s=1).tick()
        finally:
            await store.close()

    assert asyncio.run(score_queue()) == 4  # what a worker does in the background
    scores = cli.json("online-eval", "scores", run["run_id"], *p)
    assert {s["scorer"] for s in scores} == {"status", "latency", "cost", "judge"}
    summary = cli.json("online-eval", "summary", "--hours", "1", *p)
    assert {row["release"] for row in summary} == {run["release_version"]}
    assert "judge" in cli("online-eval", "summary", *p).stdout
    assert "no run" in cli("online-eval", "scores", "run_missing", *p, expect=2).stderr
