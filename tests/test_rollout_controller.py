"""The canary controller on both databases (issue 13 item 5): a bad canary is rolled back with its
evidence in the audit log, a good one walks its steps to promotion, and only one process acts."""

from __future__ import annotations

import random
from pathlib import Path

from test_observe_alerts import Webhook
from timing import TestClock
from ui_helpers import write_shop_project

from tether.live import LiveConfig
from tether.rollout.controller import LEASE, CanaryController
from tether.rollout.deployment import Plan, Stage
from tether.rollout.releases import create_release
from tether.rollout.service import Rollout
from tether.settings import Settings
from tether.store.records import ReleaseRecord, RunOrigin, RunStatus, RunTotals
from tether.store.repository import Store
from tether.webhooks.dispatcher import Dispatcher
from tether.webhooks.service import keep_alert_endpoint


async def releases(store: Store, root: Path) -> None:
    project = write_shop_project(root / "shop")
    await create_release(store, project, version="v1")
    (project / "prompts" / "system.md").write_text("You are a concise shop assistant.")
    await create_release(store, project, version="v2")


async def finished(store: Store, release: ReleaseRecord, user: str, status: RunStatus) -> None:
    run = await store.create_run(origin=RunOrigin.API, release=release, user_id=user, input="hi")
    await store.claim_run("test", 60, run_id=run.id)
    await store.finish_run(run.id, "test", 60, status=status, totals=RunTotals(steps_used=1), output="ok")


async def traffic(store: Store, canary_failure: float, runs: int, rng: random.Random) -> None:
    v1, v2 = await store.get_release("v1"), await store.get_release("v2")
    for index in range(runs):
        release = v2 if index % 2 else v1
        failure = canary_failure if release is v2 else 0.05
        status = RunStatus.FAILED if rng.random() < failure else RunStatus.SUCCEEDED
        await finished(store, release, f"u{index}", status)


async def started(store: Store, clock: TestClock, root: Path) -> Rollout:
    await releases(store, root)
    rollout = Rollout(store, LiveConfig(store), clock=clock)
    await rollout.switch("v1", actor="test", reason="base", override=True)
    plan = Plan(steps=(10.0, 100.0), min_runs=20, min_seconds=60)
    await rollout.start("v2", stage=Stage.CANARY, actor="test", reason="try", override=True, plan=plan)
    return rollout


async def test_a_bad_canary_is_rolled_back_with_its_evidence(
    store: Store, clock: TestClock, tmp_path: Path
) -> None:
    hook = Webhook()
    settings = Settings(alert_webhook_url=hook.url)  # the operator's endpoint, from the outbox
    try:
        await keep_alert_endpoint(store, settings)
        await rolled_back(store, clock, tmp_path)
        dispatcher = Dispatcher(store, settings)
        try:  # the canary's 160 run events go first (nobody subscribed them), then the rollback's
            sent = [d.status for _ in range(5) for d in await dispatcher.tick()]
        finally:
            await dispatcher.close()
        assert sent == ["succeeded"] and await store.webhooks.pending_events() == []
    finally:
        hook.close()
    assert [(w["type"], w["data"]["from_release"], w["data"]["to_release"]) for w in hook.received] == [
        ("rollout.rolled_back", "v2", "v1")
    ]
    assert any(m["breached"] for m in hook.received[0]["data"]["evidence"]["measures"])


async def rolled_back(store: Store, clock: TestClock, tmp_path: Path) -> None:
    rollout = await started(store, clock, tmp_path)
    await traffic(store, canary_failure=0.6, runs=160, rng=random.Random(1))
    decided = await CanaryController(rollout, owner="node-a").tick()
    assert [d.action for _, d in decided] == ["rollback"]
    after = await rollout.fresh("shop-assistant")
    assert after.canary is None and after.live is not None and after.live.version == "v1"
    assert rollout.current("shop-assistant") == after  # this process follows at once
    entry = (await rollout.history("shop-assistant"))[0]
    assert entry.action == "rollback" and entry.actor == "canary-controller"
    assert entry.evidence is not None
    breached = [m["name"] for m in entry.evidence["measures"] if m["breached"]]
    assert breached == ["error_rate"]


async def test_a_good_canary_walks_its_steps_to_promotion(
    store: Store, clock: TestClock, tmp_path: Path
) -> None:
    rollout = await started(store, clock, tmp_path)
    controller = CanaryController(rollout, owner="node-a")
    await traffic(store, canary_failure=0.05, runs=60, rng=random.Random(2))
    assert [d.action for _, d in await controller.tick()] == ["hold"]  # enough runs, too soon
    clock.advance(61)
    assert [d.action for _, d in await controller.tick()] == ["advance"]
    assert (await rollout.fresh("shop-assistant")).canary is not None
    await traffic(store, canary_failure=0.05, runs=60, rng=random.Random(3))
    clock.advance(61)
    assert [d.action for _, d in await controller.tick()] == ["advance"]
    after = await rollout.fresh("shop-assistant")
    assert after.canary is None and after.live is not None and after.live.version == "v2"
    assert [h.action for h in await rollout.history("shop-assistant")][:2] == ["promote", "advance"]


async def test_only_the_lease_holder_analyses(store: Store, clock: TestClock, tmp_path: Path) -> None:
    rollout = await started(store, clock, tmp_path)
    first = CanaryController(rollout, owner="node-a", lease_s=30)
    second = CanaryController(rollout, owner="node-b", lease_s=30)
    assert await first.tick() != []
    assert await second.tick() == []
    assert await store.deployments.claim_lease(LEASE, "node-a", 30)
    clock.advance(31)
    assert await second.tick() != []
