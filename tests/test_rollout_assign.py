"""Sticky assignment (issue 13 item 2): a pure function of the deployment snapshot and the caller."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from tether.rollout.assign import ArmChoice, Pin, assign, shadow_sampled
from tether.rollout.deployment import Canary, Deployment, Entry, Plan, Stage

NOW = datetime(2026, 12, 1, tzinfo=UTC)
names = st.text(min_size=1, max_size=30)


def deployment(canary_percent: float | None = None, **extra: object) -> Deployment:
    entries = [Entry("rel_live", "v1", Stage.LIVE, 100.0)]
    canary = None
    if canary_percent is not None:
        entries.append(Entry("rel_canary", "v2", Stage.CANARY, canary_percent))
        plan = Plan(steps=(canary_percent,), min_runs=10, min_seconds=0)
        canary = Canary("rel_canary", plan, 0, NOW, NOW)
    return Deployment("agent", 3, tuple(entries), canary=canary, salt="agent", **extra)  # type: ignore[arg-type]


@settings(max_examples=300)
@given(salt=names, tenant=names, user=names)
def test_a_user_in_a_5_percent_canary_stays_in_it_as_it_grows(salt: str, tenant: str, user: str) -> None:
    stages = []
    for percent in (5.0, 10.0, 25.0, 50.0, 100.0):
        chosen = assign(deployment(percent).evolve(salt=salt), None, tenant=tenant, user=user)
        assert chosen is not None
        stages.append(chosen.stage)
    first = stages.index("canary") if "canary" in stages else len(stages)
    assert stages[first:] == ["canary"] * (len(stages) - first)  # once in, never out
    assert stages[-1] == "canary"  # 100% is everyone


def test_the_canary_share_is_close_to_its_weight() -> None:
    chosen = [assign(deployment(25.0), None, tenant="t", user=f"u{i}") for i in range(4000)]
    share = sum(c is not None and c.stage == "canary" for c in chosen) / len(chosen)
    assert 0.22 < share < 0.28
    record = next(c for c in chosen if c is not None and c.stage == "canary").as_record()
    assert record["release"] == "v2" and record["revision"] == 3 and 0 <= record["bucket"] < 2500


def test_internal_users_and_tenants_get_the_internal_release_first() -> None:
    internal = deployment(100.0, internal_users=frozenset({"alice"}), internal_tenants=frozenset({"staff"}))
    internal = internal.evolve(entries=(*internal.entries, Entry("rel_int", "v3", Stage.INTERNAL)))
    alice = assign(internal, None, tenant="acme", user="alice")
    staff = assign(internal, None, tenant="staff", user="bob")
    other = assign(internal, None, tenant="acme", user="bob")
    assert alice is not None and alice.stage == "internal" and alice.version == "v3"
    assert staff is not None and staff.reason == "internal tenant"
    assert other is not None and other.stage == "canary"


def test_a_pin_wins_and_no_deployment_means_the_fallback() -> None:
    pinned = assign(deployment(50.0), None, tenant="t", user="u", pin=Pin("rel_x", "vX", by="ops"))
    assert pinned is not None and pinned.stage == "pin" and pinned.pinned_by == "ops"
    assert assign(None, None, tenant="t", user="u") is None


class ClaimEveryone:
    def __init__(self) -> None:
        self.asked: list[str] = []

    def claim(self, deployment: Deployment, *, tenant: str, user: str, bucket: int) -> ArmChoice | None:
        self.asked.append(user)
        return ArmChoice("exp1", "b", "rel_b", "vB")


def test_experiments_only_split_the_live_share() -> None:
    claims = ClaimEveryone()
    chosen = [assign(deployment(50.0), claims, tenant="t", user=f"u{i}") for i in range(200)]
    stages = {c.stage for c in chosen if c is not None}
    assert stages == {"canary", "experiment"}
    assert len(claims.asked) == sum(c is not None and c.stage == "experiment" for c in chosen)
    arm = next(c for c in chosen if c is not None and c.stage == "experiment")
    assert arm.as_record()["arm"] == "b" and arm.as_record()["experiment"] == "exp1"


def test_shadow_sampling_takes_about_its_share_of_runs() -> None:
    shadowed = deployment().evolve(
        entries=(*deployment().entries, Entry("rel_sh", "v9", Stage.SHADOW)), shadow_share=0.2
    )
    hits = sum(shadow_sampled(shadowed, f"run_{i}") is not None for i in range(5000))
    assert 800 < hits < 1200
    assert shadow_sampled(deployment(), "run_1") is None
