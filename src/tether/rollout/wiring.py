"""Wire flags and experiments into a process: live topics, the decision every new run gets, and
the experiments' claim on release assignment (`Rollout.experiments`).

Called wherever a `Runtime` serves submissions (the API lifespan, the CLI session). The decision
reads only the in-memory snapshots (`LiveValue.current`), so submitting a run costs no extra query.
"""

from __future__ import annotations

from tether.live import LiveValue
from tether.rollout.assign import ArmChoice
from tether.rollout.deployment import Deployment
from tether.rollout.experiments import EMPTY_EXPERIMENTS, ExperimentSnapshot, load_experiments
from tether.rollout.flags import EMPTY_FLAGS, FlagSnapshot, load_flags
from tether.runtime.service import Runtime
from tether.runtime.submission import RunDecision, RunSubject
from tether.store.experiments import EXPERIMENTS_TOPIC
from tether.store.flags import FLAGS_TOPIC


class RunDecider:
    """Flags for every run; for production runs, the experiment arm and what it overrides."""

    def __init__(self, flags: LiveValue[FlagSnapshot], experiments: LiveValue[ExperimentSnapshot]) -> None:
        self._flags = flags
        self._experiments = experiments

    def __call__(self, subject: RunSubject) -> RunDecision:
        values = self._flags.current.evaluate_all(subject)
        enrolled = self._experiments.current.enrol(subject)
        if enrolled is None:
            return RunDecision(flags=values)
        experiment, arm = enrolled
        if arm.flag is not None and arm.value is not None:
            values[arm.flag] = arm.value
        return RunDecision(flags=values, experiment=(experiment.name, arm.name))

    @property
    def claims(self) -> LiveClaims:
        """The release-assignment hook (`Rollout.experiments`), reading the same live snapshot."""
        return LiveClaims(self._experiments)


class LiveClaims:
    """`tether.rollout.assign.ExperimentClaims` over the live experiments snapshot."""

    def __init__(self, experiments: LiveValue[ExperimentSnapshot]) -> None:
        self._experiments = experiments

    def claim(self, deployment: Deployment, *, tenant: str, user: str, bucket: int) -> ArmChoice | None:
        return self._experiments.current.claim(deployment, tenant=tenant, user=user, bucket=bucket)


def install(runtime: Runtime) -> RunDecider:
    """Register the `flags` and `experiments` topics on the runtime's live config and decide its runs."""
    flags = runtime.live.register(FLAGS_TOPIC, load_flags, EMPTY_FLAGS)
    experiments = runtime.live.register(EXPERIMENTS_TOPIC, load_experiments, EMPTY_EXPERIMENTS)
    decider = RunDecider(flags, experiments)
    runtime.decide_run = decider
    return decider
