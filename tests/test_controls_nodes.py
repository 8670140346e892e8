"""A control set through one process reaches another's run loop (issue 14 item 2): on PostgreSQL,
at the other node's next revision check without Redis, and at once through Redis."""

from __future__ import annotations

from pathlib import Path

import pytest
from timing import wait_until_async

from tether.controls.service import clear_control, set_control
from tether.runtime.service import Runtime
from tether.settings import Settings
from tether.store.repository import Store, utc_now


async def _node(url: str, tmp_path: Path, redis_url: str | None) -> Runtime:
    settings = Settings(redis_url=redis_url, live_poll_s=3600)  # only a check or Redis moves it
    return Runtime(await Store.open(url), settings, data_dir=tmp_path)


@pytest.mark.parametrize("with_redis", [False, True], ids=["poll", "redis"])
async def test_a_switch_set_on_one_node_applies_on_another(
    postgres_url: str, redis_url: str, tmp_path: Path, with_redis: bool
) -> None:
    redis = redis_url if with_redis else None
    operator, worker = await _node(postgres_url, tmp_path, redis), await _node(postgres_url, tmp_path, redis)
    try:
        await worker.live.start()
        assert (
            worker.controls.current.for_run("t", "v1", utc_now()).tool_refusal("pay", is_write=True) is None
        )
        change = await set_control(
            operator.store, operator.live, kind="disable_tool", value="pay", reason="fraud", by="oncall"
        )
        if not with_redis:
            await worker.live.refresh()  # the next poll, without waiting for it

        async def refused() -> bool:
            effective = worker.controls.current.for_run("t", "v1", utc_now())
            return effective.tool_refusal("pay", is_write=True) is not None

        await wait_until_async(refused, message="the worker node has the switch")
        await clear_control(operator.store, operator.live, change.control.id, by="oncall", reason="ok")
        if not with_redis:
            await worker.live.refresh()

        async def lifted() -> bool:
            return not await refused()

        await wait_until_async(lifted, message="the worker node has the switch lifted")
    finally:
        for node in (operator, worker):
            await node.live.close()
            await node.store.close()
