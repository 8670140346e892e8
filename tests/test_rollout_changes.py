"""Deployment changes as pure functions (issue 13 items 1, 5 and 6)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tether.rollout import changes
from tether.rollout.deployment import Deployment, Plan, Stage

NOW = datetime(2026, 12, 1, tzinfo=UTC)
PLAN = Plan(steps=(5.0, 25.0, 100.0), min_runs=10, min_seconds=60)


def weights(deployment: Deployment) -> dict[str, tuple[str, float]]:
    return {e.version: (str(e.stage), e.weight) for e in deployment.entries}


def live_v1() -> Deployment:
    return changes.switch(Deployment("agent", 0, salt="agent"), "r1", "v1")


def test_switch_keeps_the_old_live_release_for_rollback() -> None:
    d = changes.switch(live_v1(), "r2", "v2")
    assert weights(d) == {"v1": ("retired", 0.0), "v2": ("live", 100.0)}
    assert d.previous_live == "r1"
    back = changes.rollback(d)
    assert weights(back)["v1"] == ("live", 100.0) and back.previous_live == "r2"
    with pytest.raises(ValueError, match="already live"):
        changes.switch(back, "r1", "v1")


def test_a_canary_walks_its_steps_and_is_promoted() -> None:
    d = changes.start_canary(live_v1(), "r2", "v2", PLAN, now=NOW)
    assert weights(d) == {"v1": ("live", 95.0), "v2": ("canary", 5.0)}
    d = changes.advance(d, now=NOW + timedelta(minutes=1))
    assert weights(d)["v2"] == ("canary", 25.0) and weights(d)["v1"] == ("live", 75.0)
    d = changes.advance(changes.advance(d, now=NOW), now=NOW)
    assert d.canary is None and weights(d)["v2"] == ("live", 100.0) and d.previous_live == "r1"


def test_rollback_of_a_canary_sets_its_weight_to_zero() -> None:
    d = changes.start_canary(live_v1(), "r2", "v2", PLAN, now=NOW)
    rolled = changes.rollback(d)
    assert rolled.canary is None
    assert weights(rolled) == {"v1": ("live", 100.0)}


def test_pause_holds_the_canary_at_zero() -> None:
    d = changes.pause(changes.start_canary(live_v1(), "r2", "v2", PLAN, now=NOW), paused=True)
    assert weights(d)["v2"] == ("canary", 0.0) and weights(d)["v1"] == ("live", 100.0)
    with pytest.raises(ValueError, match="already paused"):
        changes.pause(d, paused=True)
    assert weights(changes.pause(d, paused=False))["v2"] == ("canary", 5.0)


def test_changes_that_make_no_sense_say_why() -> None:
    with pytest.raises(ValueError, match="needs a live release"):
        changes.start_canary(Deployment("agent", 0), "r2", "v2", PLAN, now=NOW)
    with pytest.raises(ValueError, match="no canary"):
        changes.promote(live_v1())
    with pytest.raises(ValueError, match="no previous live"):
        changes.rollback(live_v1())
    with pytest.raises(ValueError, match="increasing"):
        changes.start_canary(live_v1(), "r2", "v2", Plan(steps=(50.0, 5.0)), now=NOW)
    d = changes.start_canary(live_v1(), "r2", "v2", PLAN, now=NOW)
    with pytest.raises(ValueError, match="already in progress"):
        changes.start_canary(d, "r3", "v3", PLAN, now=NOW)


def test_the_stored_form_round_trips() -> None:
    d = changes.start_canary(live_v1(), "r2", "v2", PLAN, now=NOW)
    d = changes.set_shadow(d, "r3", "v3", 0.25)
    d = changes.set_internal(d, "r4", "v4", frozenset({"alice"}), frozenset())
    again = Deployment.from_state("agent", d.revision, d.to_state())
    assert again == d
    assert again.with_stage(Stage.SHADOW) is not None and again.shadow_share == 0.25
