"""A/B experiments: which arm a production run is enrolled in, and starting or stopping one.

Enrolment and arm are both sticky: a user's enrolment bucket is a hash of (experiment salt,
tenant, user) and the arm comes from a second hash of the same user, so raising an experiment's
traffic share adds users without moving anyone between arms. Only production runs (api, cli) are
enrolled; eval, drill, shadow and canary runs never dilute an experiment. A run belongs to at most
one experiment: the oldest running experiment that enrols its user.

An experiment between releases is enrolled by release assignment (`tether.rollout.assign`, through
`ExperimentSnapshot.claim`): it splits the live share only, never canary, internal or pinned
traffic. An experiment of flag variations is enrolled when the run's flags are decided.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from tether.live import LiveConfig
from tether.rollout.assign import ArmChoice
from tether.rollout.buckets import BUCKETS, bucket
from tether.rollout.deployment import Deployment
from tether.rollout.flag_edits import parse_value
from tether.runtime.submission import RunSubject
from tether.store.experiments import EXPERIMENTS_TOPIC
from tether.store.flag_records import ExperimentArm, ExperimentRecord, ExperimentSpec
from tether.store.records import PRODUCTION_ORIGINS
from tether.store.repository import Store


@dataclass(frozen=True)
class ExperimentSnapshot:
    """The running experiments, oldest first, as of one live revision, with their releases' ids."""

    running: tuple[ExperimentRecord, ...] = ()
    release_ids: Mapping[str, str] = field(default_factory=dict)
    """Release version -> id, for the arms that name a release."""
    agents: Mapping[str, str] = field(default_factory=dict)
    """Release version -> agent name: an experiment claims users of its own agent only."""

    def enrol(self, subject: RunSubject) -> tuple[ExperimentRecord, ExperimentArm] | None:
        """The experiment arm of a new run, if any.

        Experiments between releases enrol through release assignment (`claim`), which only splits
        the live share and has already chosen the run's release: their arm arrives as
        `subject.claimed`. Experiments of flag variations enrol here.
        """
        if subject.origin not in PRODUCTION_ORIGINS:
            return None
        if subject.claimed is not None:
            name, arm_name = subject.claimed
            for experiment in self.running:
                if experiment.name == name:
                    arm = next((a for a in experiment.spec.arms if a.name == arm_name), None)
                    return None if arm is None else (experiment, arm)
            return None
        for experiment in self.running:
            if experiment.spec.between_releases:
                continue
            arm = arm_for(experiment, subject.tenant_id, subject.user_id)
            if arm is not None:
                return experiment, arm
        return None

    def claim(self, deployment: Deployment, *, tenant: str, user: str, bucket: int) -> ArmChoice | None:
        """The rollout's EXPERIMENT HOOK: a live-share user enrolled in an experiment between this
        agent's releases gets the arm's release (the deployment's own bucket is not used: each
        experiment buckets users on its own salt)."""
        for experiment in self.running:
            if not experiment.spec.between_releases:
                continue
            arm = arm_for(experiment, tenant, user)
            if arm is None or arm.release is None:
                continue
            release_id = self.release_ids.get(arm.release)
            agent = self.agents.get(arm.release)
            if release_id is None or agent != deployment.agent_name:
                continue
            return ArmChoice(experiment.name, arm.name, release_id, arm.release)
        return None


EMPTY_EXPERIMENTS = ExperimentSnapshot()


async def load_experiments(store: Store) -> ExperimentSnapshot:
    running = sorted(await store.experiments.all(running_only=True), key=lambda e: (e.created_at, e.name))
    versions = {arm.release for e in running for arm in e.spec.arms if arm.release is not None}
    releases = [await store.get_release(version) for version in sorted(versions)]
    return ExperimentSnapshot(
        tuple(running),
        release_ids={r.version: r.id for r in releases},
        agents={r.version: r.agent_name for r in releases},
    )


def arm_for(experiment: ExperimentRecord, tenant_id: str, user_id: str) -> ExperimentArm | None:
    """The arm this user is in, or None when the user is outside the experiment's traffic share."""
    spec = experiment.spec
    if bucket(experiment.salt, tenant_id, user_id) >= round(spec.traffic * BUCKETS / 100):
        return None
    point = bucket(experiment.salt + ":arm", tenant_id, user_id) / BUCKETS * sum(a.weight for a in spec.arms)
    edge = 0.0
    for arm in spec.arms:
        edge += arm.weight
        if point < edge:
            return arm
    return spec.arms[-1]


async def start_experiment(
    store: Store, live: LiveConfig, name: str, spec: ExperimentSpec, *, actor: str, reason: str
) -> ExperimentRecord:
    """Create a running experiment after checking what its arms name exists."""
    flags = {flag.name: flag for flag in await store.flags.all()}
    arms: list[ExperimentArm] = []
    agents = {(await store.get_release(a.release)).agent_name for a in spec.arms if a.release is not None}
    if len(agents) > 1:  # NotFoundError above names a missing release
        raise ValueError(f"the arms' releases belong to different agents ({', '.join(sorted(agents))})")
    for arm in spec.arms:
        if arm.flag is not None:
            flag = flags.get(arm.flag)
            if flag is None:
                raise ValueError(f"arm {arm.name}: no flag {arm.flag!r}")
            value = parse_value(flag.spec.kind, arm.value) if isinstance(arm.value, str) else arm.value
            if value not in flag.spec.variations or type(value) is not type(flag.spec.variations[0]):
                raise ValueError(f"arm {arm.name}: {arm.value!r} is not a variation of flag {arm.flag}")
            arm = arm.model_copy(update={"value": value})
        arms.append(arm)
    spec = spec.model_copy(update={"arms": tuple(arms)})
    created = await store.experiments.create(name, spec, actor=actor, reason=reason)
    await live.changed(EXPERIMENTS_TOPIC)
    return created


async def stop_experiment(
    store: Store, live: LiveConfig, name: str, *, actor: str, reason: str
) -> ExperimentRecord:
    stopped = await store.experiments.stop(name, actor=actor, reason=reason)
    await live.changed(EXPERIMENTS_TOPIC)
    return stopped


def parse_arm(text: str) -> ExperimentArm:
    """`NAME:WEIGHT:release:VERSION` or `NAME:WEIGHT:flag:FLAG=VALUE` (the CLI's --arm)."""
    parts = text.split(":", 3)
    if len(parts) != 4 or parts[2] not in ("release", "flag"):
        raise ValueError(
            f"arm {text!r} must look like NAME:WEIGHT:release:VERSION or NAME:WEIGHT:flag:FLAG=VALUE"
        )
    name, weight, kind, target = parts
    try:
        share = float(weight)
    except ValueError:
        raise ValueError(f"arm {text!r}: weight {weight!r} is not a number") from None
    if kind == "release":
        return ExperimentArm(name=name, weight=share, release=target)
    flag, sep, value = target.partition("=")
    if not sep or not flag:
        raise ValueError(f"arm {text!r}: name the flag and its value as FLAG=VALUE")
    return ExperimentArm(name=name, weight=share, flag=flag, value=value)
