"""Live configuration: a change committed by one node reaches the others' snapshots."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from timing import wait_until_async

from tether.controls.service import set_control
from tether.live import LiveConfig
from tether.store.repository import Store


@dataclass
class Source:
    """What the store holds for a topic, and how often a node loaded it."""

    value: tuple[str, ...] = ()
    loads: int = 0
    broken: bool = False

    async def load(self, _store: Store) -> tuple[str, ...]:
        self.loads += 1
        if self.broken:
            raise RuntimeError("database away")
        return self.value


@pytest.fixture
async def nodes(store: Store) -> AsyncIterator[tuple[LiveConfig, LiveConfig]]:
    first, second = LiveConfig(store, poll_s=3600), LiveConfig(store, poll_s=3600)
    yield first, second
    await first.close()
    await second.close()


async def test_a_change_reaches_another_node_at_its_next_check(
    store: Store, nodes: tuple[LiveConfig, LiveConfig]
) -> None:
    source = Source(("tool-a",))
    first, second = nodes
    here = first.register("controls", source.load, empty=())
    there = second.register("controls", source.load, empty=())
    assert there.current == () and there.revision == -1
    await first.ready()
    await second.ready()
    assert here.current == there.current == ("tool-a",)
    assert here.revision == there.revision == 0

    source.value = ("tool-a", "tool-b")
    await store.live_revisions.bump("controls")
    await first.changed("controls")
    assert here.current == ("tool-a", "tool-b") and here.revision == 1
    assert there.current == ("tool-a",), "a node without Redis sees it at its next check, not before"
    await second.refresh()
    assert there.current == ("tool-a", "tool-b") and there.revision == 1


async def test_only_topics_whose_revision_moved_are_reloaded(
    store: Store, nodes: tuple[LiveConfig, LiveConfig]
) -> None:
    node, _ = nodes
    flags, controls = Source(("f",)), Source(("c",))
    node.register("flags", flags.load, empty=())
    node.register("controls", controls.load, empty=())
    await node.ready()
    await node.ready()
    await node.refresh()
    assert (flags.loads, controls.loads) == (1, 1)
    await store.live_revisions.bump("flags")
    await node.refresh()
    assert (flags.loads, controls.loads) == (2, 1)


async def test_a_topic_registered_late_is_loaded_by_ready(nodes: tuple[LiveConfig, LiveConfig]) -> None:
    node, _ = nodes
    await node.ready()
    late = Source(("x",))
    value = node.register("deployment", late.load, empty=())
    await node.ready()
    assert value.current == ("x",)


async def test_a_topic_registered_twice_is_kept_once(nodes: tuple[LiveConfig, LiveConfig]) -> None:
    node, _ = nodes
    first, second = Source(("first",)), Source(("second",))
    value = node.register("flags", first.load, empty=())
    assert node.register("flags", second.load, empty=()) is value
    await node.ready()
    assert value.current == ("first",) and second.loads == 0


async def test_the_last_snapshot_stays_in_force_while_loading_fails(store: Store) -> None:
    source = Source(("before",))
    node = LiveConfig(store, poll_s=0.05)
    value = node.register("controls", source.load, empty=())
    try:
        await node.start()
        assert value.current == ("before",)
        source.broken = True
        source.value = ("after",)
        await store.live_revisions.bump("controls")
        loads = source.loads
        await wait_until_async(lambda: source.loads >= loads + 2, message="the poller retried the load")
        assert value.current == ("before",), "a failed load must not drop the configuration"
        source.broken = False
        await wait_until_async(lambda: value.current == ("after",), message="reloaded once the store is back")
    finally:
        await node.close()


async def test_the_poller_picks_up_a_change_without_being_told(store: Store) -> None:
    source = Source(("old",))
    node = LiveConfig(store, poll_s=0.05)
    value = node.register("flags", source.load, empty=())
    try:
        await node.start()
        source.value = ("new",)
        await store.live_revisions.bump("flags")
        await wait_until_async(lambda: value.current == ("new",), message="the poll saw the new revision")
    finally:
        await node.close()


@pytest.mark.parametrize("store", ["postgresql"], indirect=True)
async def test_redis_announcement_wakes_other_nodes_at_once(store: Store, redis_url: str) -> None:
    """With an hour between polls, only the Redis announcement can explain the reload."""
    source = Source(("v1",))
    writer = LiveConfig(store, redis_url=redis_url, poll_s=3600)
    reader = LiveConfig(store, redis_url=redis_url, poll_s=3600)
    writer.register("deployment", source.load, empty=())
    seen = reader.register("deployment", source.load, empty=())
    try:
        await writer.start()
        await reader.start()
        assert seen.current == ("v1",)
        source.value = ("v2",)
        await store.live_revisions.bump("deployment")

        async def announced() -> bool:
            # The subscription may not be in place the instant start() returns: announce until heard.
            await writer.changed("deployment")
            return seen.current == ("v2",)

        await wait_until_async(announced, interval=0.2, message="the reader reloaded on the announcement")
    finally:
        await writer.close()
        await reader.close()


async def test_an_announced_revision_is_applied_with_one_query(store: Store) -> None:
    """The announcement names the topic and revision: no revision read, one load, on the loader's
    own engine (a started node's), never through the runs' pool."""
    from sqlalchemy import event

    from tether.live.config import announcement
    from tether.runtime.controls import watch_controls

    writer, node = LiveConfig(store, poll_s=3600), LiveConfig(store, poll_s=3600)
    seen = watch_controls(node)
    try:
        await node.start()
        assert node.reader is not store
        await set_control(store, writer, kind="read_only", reason="incident", by="oncall")
        revision = (await store.live_revisions.current())["controls"]
        statements: list[str] = []
        shared: list[str] = []

        def on_reader(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            statements.append(statement)

        def on_shared(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            shared.append(statement)

        event.listen(node.reader.engine.sync_engine, "before_cursor_execute", on_reader)
        event.listen(store.engine.sync_engine, "before_cursor_execute", on_shared)
        try:
            node.heard(announcement("flags", 99))  # a topic this node does not watch: ignored
            node.heard(announcement("controls", revision))  # as the Redis listener hands it over
            await wait_until_async(lambda: seen.revision == revision, message="the poller applied it")
        finally:
            event.remove(node.reader.engine.sync_engine, "before_cursor_execute", on_reader)
            event.remove(store.engine.sync_engine, "before_cursor_execute", on_shared)
        assert [c.kind for c in seen.current.controls] == ["read_only"]
        assert len(statements) == 1 and "controls" in statements[0] and "live_revisions" not in statements[0]
        assert shared == [], "the loader must not read through the runs' pool"
    finally:
        await writer.close()
        await node.close()


async def test_an_announcement_older_than_the_snapshot_loads_nothing(
    store: Store, nodes: tuple[LiveConfig, LiveConfig]
) -> None:
    from tether.live.config import announcement

    node, _ = nodes
    source = Source(("v1",))
    value = node.register("controls", source.load, empty=())
    await store.live_revisions.bump("controls")
    await store.live_revisions.bump("controls")
    await node.ready()
    assert value.revision == 2 and source.loads == 1
    node.heard(announcement("controls", 1))  # late, or out of order: what is in force is newer
    node.heard("controls")  # an older node's bare topic: only a wake-up
    await node.apply_announced()
    assert source.loads == 1
    source.value = ("v2",)
    node.heard(announcement("controls", 3))
    await node.apply_announced()
    assert value.current == ("v2",) and value.revision == 3 and source.loads == 2


@pytest.mark.parametrize("store", ["postgresql"], indirect=True)
async def test_the_loader_has_its_own_connection_when_the_runs_pool_is_exhausted(store: Store) -> None:
    """Every pooled connection is held (as by a worker's busy runs): a reload still goes through at
    once on the loader's own connection. Without it, it would wait for the pool's 30 s timeout."""
    from tether.runtime.controls import watch_controls

    writer, node = LiveConfig(store, poll_s=3600), LiveConfig(store, poll_s=3600)
    seen = watch_controls(node)
    await node.start()  # a long-lived process: its loader opens its own connection
    await set_control(store, writer, kind="read_only", reason="incident", by="oncall")
    pool = store.engine.pool
    size = pool.size() + pool._max_overflow  # type: ignore[attr-defined]
    held = [await store.engine.connect() for _ in range(size)]
    try:
        assert pool.checkedout() == size  # nothing left for anyone else
        await asyncio.wait_for(node.refresh(), timeout=20)
        assert [c.kind for c in seen.current.controls] == ["read_only"]
        assert node.reader is not store and node.reader.engine.pool.checkedout() == 0
    finally:
        for connection in held:
            await connection.close()
        await writer.close()
        await node.close()
