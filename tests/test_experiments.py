"""A/B experiments: sticky arms, the report's statistics (checked against the formulas), and an
experiment of flag variations end to end through the CLI."""

from __future__ import annotations

import math
import os
from datetime import UTC, datetime

import pytest
from conftest import Cli, ProjectFactory
from flags_helpers import flags_project, run, set_flag
from pydantic import ValidationError

from tether.rollout.experiment_report import build_report
from tether.rollout.experiments import ExperimentSnapshot, arm_for, parse_arm
from tether.rollout.wiring import install
from tether.runtime.service import Runtime
from tether.runtime.submission import RunSubject
from tether.settings import Settings
from tether.store.flag_records import ArmOutcome, ExperimentArm, ExperimentRecord, ExperimentSpec
from tether.store.records import RunOrigin
from tether.store.repository import Store


def experiment(
    *weights: float, traffic: float = 100.0, metric: str = "success", **extra: object
) -> ExperimentRecord:
    arms = [ExperimentArm(name=f"arm{i}", weight=w, flag="f", value=str(i)) for i, w in enumerate(weights)]
    return ExperimentRecord(
        name="exp",
        salt="salt-1",
        status="running",
        spec=ExperimentSpec.model_validate({"arms": arms, "traffic": traffic, "metric": metric, **extra}),
        created_by="t",
        created_at=datetime.now(UTC),
    )


# ------------------------------------------------------------------------------ assignment


def test_arms_follow_their_weights_and_stay_put_when_traffic_grows() -> None:
    users = [f"user-{i}" for i in range(6000)]
    even = experiment(1, 3)
    counts = {"arm0": 0, "arm1": 0}
    for user in users:
        arm = arm_for(even, "default", user)
        assert arm is not None
        counts[arm.name] += 1
    assert 0.22 < counts["arm0"] / len(users) < 0.28

    small, large = experiment(1, 1, traffic=10), experiment(1, 1, traffic=50)
    enrolled_small = {u: arm_for(small, "default", u) for u in users}
    inside = [u for u, a in enrolled_small.items() if a is not None]
    assert 0.08 < len(inside) / len(users) < 0.12
    for user in inside:  # nobody leaves or switches arms when the share grows
        assert arm_for(large, "default", user) == enrolled_small[user]


def test_only_production_runs_are_enrolled() -> None:
    snapshot = ExperimentSnapshot((experiment(1, 1),))
    assert snapshot.enrol(RunSubject("default", "u1", RunOrigin.API)) is not None
    assert snapshot.enrol(RunSubject("default", "u1", RunOrigin.CLI)) is not None
    for origin in (RunOrigin.EVAL, RunOrigin.DRILL, RunOrigin.SHADOW, RunOrigin.CANARY):
        assert snapshot.enrol(RunSubject("default", "u1", origin)) is None


def test_arm_syntax_and_bad_specs() -> None:
    assert parse_arm("a:2:release:v1") == ExperimentArm(name="a", weight=2, release="v1")
    assert parse_arm("b:1:flag:tone=warm") == ExperimentArm(name="b", weight=1, flag="tone", value="warm")
    with pytest.raises(ValueError, match="must look like"):
        parse_arm("a:1:v1")
    with pytest.raises(ValueError, match="not a number"):
        parse_arm("a:x:release:v1")
    with pytest.raises(ValidationError, match="at least two arms"):
        ExperimentSpec(arms=(ExperimentArm(name="a", weight=1, release="v1"),))
    with pytest.raises(ValidationError, match="name a release or a flag"):
        ExperimentArm(name="a", weight=1)


# ------------------------------------------------------------------------------ statistics


def outcomes(arm: str, successes: int, runs: int, cost: float = 0.0) -> list[ArmOutcome]:
    return [
        ArmOutcome(arm=arm, status="succeeded" if i < successes else "failed", cost_usd=cost, feedback=None)
        for i in range(runs)
    ]


def test_success_rates_match_the_two_proportion_z_test() -> None:
    report = build_report(experiment(1, 1), outcomes("arm0", 120, 200) + outcomes("arm1", 150, 200))
    control, treatment = report.arms
    assert (control.runs, control.estimate, treatment.estimate) == (200, 0.6, 0.75)
    assert control.ci_low is not None and control.ci_low < 0.6 < (control.ci_high or 0)
    (comparison,) = report.comparisons
    assert comparison.difference == pytest.approx(0.15)
    pooled = 270 / 400
    z = 0.15 / math.sqrt(pooled * (1 - pooled) * (2 / 200))
    assert comparison.p_value == pytest.approx(math.erfc(z / math.sqrt(2)), rel=1e-6)
    assert comparison.ci_low is not None and 0 < comparison.ci_low < 0.15 < (comparison.ci_high or 0)
    assert comparison.still_needed == 0  # the observed difference is already detectable


def test_the_sample_size_still_needed_follows_the_power_analysis() -> None:
    # Cohen's h for 0.5 -> 0.6 is 0.2014; two arms: n = 2 * ((1.96 + 0.8416) / h)^2 = 387.1 per arm.
    report = build_report(
        experiment(1, 1, min_effect=0.1), outcomes("arm0", 25, 50) + outcomes("arm1", 26, 50)
    )
    (comparison,) = report.comparisons
    assert comparison.needed_per_arm == 388
    assert comparison.still_needed == 338
    assert comparison.p_value is not None and comparison.p_value > 0.5


def test_cost_uses_welch_t_test_and_an_empty_arm_gives_no_comparison() -> None:
    cheap = [
        ArmOutcome(arm="arm0", status="succeeded", cost_usd=0.01 + i * 1e-4, feedback=None) for i in range(30)
    ]
    dear = [
        ArmOutcome(arm="arm1", status="succeeded", cost_usd=0.02 + i * 1e-4, feedback=None) for i in range(30)
    ]
    report = build_report(experiment(1, 1, 1, metric="cost"), cheap + dear)
    first, second = report.comparisons
    assert first.difference == pytest.approx(0.01)
    assert first.p_value is not None and first.p_value < 1e-10
    assert first.ci_low is not None and first.ci_low < 0.01 < (first.ci_high or 0)
    assert first.needed_per_arm == 2 and first.still_needed == 0  # a huge effect: the minimum
    assert second.arm == "arm2" and second.difference is None and second.p_value is None
    assert report.arms[2].runs == 0 and report.arms[2].estimate is None


# ------------------------------------------------------------------------------ end to end


def test_an_experiment_of_flag_variations_end_to_end(cli: Cli, make_project: ProjectFactory) -> None:
    project = flags_project(make_project)
    set_flag(cli, project, "greeting-style", "--kind", "string", "--variations", "plain,warm", "--on")
    created = cli.json(
        "experiment",
        "create",
        "tone-test",
        "--arm",
        "control:1:flag:greeting-style=plain",
        "--arm",
        "warm:1:flag:greeting-style=warm",
        "--metric",
        "success",
        "--reason",
        "try warm",
        "--project",
        project,
    )
    assert created["status"] == "running" and len(created["spec"]["arms"]) == 2

    arms: dict[str, str] = {}
    for i in range(12):
        done = run(cli, project, "greet", user=f"user-{i}")
        assert done["experiment"] == "tone-test"
        arms[f"user-{i}"] = done["experiment_arm"]
        style = "warm" if done["experiment_arm"] == "warm" else "plain"
        assert done["flags"]["greeting-style"] == style
        assert done["output"] == f"GREET:{style}:ann"
    assert set(arms.values()) == {"control", "warm"}
    again = run(cli, project, "greet", user="user-3")
    assert again["experiment_arm"] == arms["user-3"]  # sticky

    report = cli.json("experiment", "report", "tone-test", "--project", project)
    assert sum(a["runs"] for a in report["arms"]) == 13
    assert report["comparisons"][0]["difference"] == 0.0
    text = cli("experiment", "report", "tone-test", "--project", project).stdout
    assert "success rate" in text and "warm - control" in text

    assert [e["name"] for e in cli.json("experiment", "list", "--project", project)] == ["tone-test"]
    cli("experiment", "stop", "tone-test", "--reason", "enough", "--project", project)
    shown = cli.json("experiment", "show", "tone-test", "--project", project)
    assert shown["status"] == "stopped" and [h["action"] for h in shown["history"]] == ["stop", "create"]
    after = run(cli, project, "greet", user="user-3")
    assert after["experiment"] is None and after["flags"]["greeting-style"] == "plain"

    dup = cli(
        "experiment",
        "create",
        "tone-test",
        "--arm",
        "a:1:flag:greeting-style=plain",
        "--arm",
        "b:1:flag:greeting-style=warm",
        "--reason",
        "again",
        "--project",
        project,
        expect=2,
    )
    assert "already exists" in dup.stderr
    bad = cli(
        "experiment",
        "create",
        "x",
        "--arm",
        "a:1:flag:greeting-style=loud",
        "--arm",
        "b:1:flag:greeting-style=warm",
        "--reason",
        "r",
        "--project",
        project,
        expect=2,
    )
    assert "not a variation" in bad.stderr


async def test_eval_runs_get_flags_but_are_never_enrolled(make_project: ProjectFactory) -> None:
    from tether.rollout.experiments import start_experiment
    from tether.rollout.releases import working_copy_release
    from tether.store.flag_records import FlagSpec

    project = flags_project(make_project)
    store = await Store.open(os.environ["TETHER_DATABASE_URL"])
    try:
        runtime = Runtime(store, Settings(), data_dir=project / "data")
        install(runtime)
        await store.flags.put("new-tone", FlagSpec(enabled=True, default=True), actor="t", reason="r")
        await start_experiment(
            store,
            runtime.live,
            "e",
            ExperimentSpec(
                arms=(
                    ExperimentArm(name="a", weight=1, flag="new-tone", value=False),
                    ExperimentArm(name="b", weight=1, flag="new-tone", value=False),
                )
            ),
            actor="t",
            reason="r",
        )
        release = await working_copy_release(store, project)
        production = await runtime.submit(release, user_id="u", input="prompt", origin=RunOrigin.API)
        evaluation = await runtime.submit(release, user_id="u", input="prompt", origin=RunOrigin.EVAL)
        assert (production.experiment, production.flags) == ("e", {"new-tone": False})
        assert (evaluation.experiment, evaluation.flags) == (None, {"new-tone": True})
    finally:
        await store.close()


async def test_outcomes_count_finished_production_runs_with_their_mean_feedback(store: Store) -> None:
    from conftest import bare_release

    from tether.store.records import RunStatus, RunTotals

    release = await bare_release(store)
    spec = ExperimentSpec(
        arms=(ExperimentArm(name="a", weight=1, release="x"), ExperimentArm(name="b", weight=1, release="y"))
    )
    await store.experiments.create("exp", spec, actor="t", reason="r")
    made = []
    for arm, origin in (
        ("a", RunOrigin.API),
        ("a", RunOrigin.API),
        ("b", RunOrigin.CLI),
        ("b", RunOrigin.EVAL),
    ):
        made.append(
            await store.create_run(
                release=release,
                user_id="u",
                input="x",
                origin=origin,
                experiment=("exp", arm),
                lease=("me", 60),
            )
        )
    statuses = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.SUCCEEDED, RunStatus.SUCCEEDED)
    for stored, status in zip(made, statuses, strict=True):  # the eval run is finished too, and left out
        await store.finish_run(stored.id, "me", 60, status=status, totals=RunTotals(estimated_cost_usd=0.5))
    await store.add_feedback(made[0].id, user_id="u", score=1, comment=None)
    await store.add_feedback(made[0].id, user_id="u", score=-1, comment=None)
    found = sorted(await store.experiments.outcomes("exp"), key=lambda o: (o.arm, o.status))
    assert [(o.arm, o.status, o.cost_usd, o.feedback) for o in found] == [
        ("a", "failed", 0.5, None),
        ("a", "succeeded", 0.5, 0.0),
        ("b", "succeeded", 0.5, None),
    ]
