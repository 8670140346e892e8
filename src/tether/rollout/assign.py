"""Which release a new run gets, and why: a pure function of the deployment snapshot and the caller.

Order of precedence:
1. an operator's pin (API `release` with the operator scope) wins;
2. internal users and tenants get the `internal` stage's release when there is one;
3. the user's bucket (`tether.rollout.buckets.bucket`: sha256 of salt, tenant and user into 10,000
   buckets) below the canary's weight gets the canary, so raising the weight only ever adds users:
   a user in a 5% canary stays in it at 10, 25 and 50%;
4. everyone else gets the live release, unless an experiment claims the user's live share
   (the EXPERIMENT HOOK below).

No I/O and no clock here: the same inputs always give the same answer, which is what makes
assignment sticky across API processes and testable by properties.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from tether.rollout.buckets import bucket as bucket_of
from tether.rollout.deployment import Deployment, Entry, Stage

BUCKETS = 10_000


@dataclass(frozen=True)
class Pin:
    """An operator's choice of release for one run."""

    release_id: str
    version: str
    by: str


@dataclass(frozen=True)
class ArmChoice:
    """What an experiment answers when it claims a user: the arm and the release that arm serves."""

    experiment: str
    arm: str
    release_id: str
    version: str


class ExperimentClaims(Protocol):
    """EXPERIMENT HOOK: the experiments snapshot (tether.rollout.experiments) implements this.

    `claim` is asked only for users who would otherwise get the live release, i.e. an experiment
    splits the live share and never steals canary or internal traffic. Return None to leave the
    user on live.
    """

    def claim(self, deployment: Deployment, *, tenant: str, user: str, bucket: int) -> ArmChoice | None: ...


@dataclass(frozen=True)
class Assignment:
    """The release a run gets and why; `as_record()` is stored on the run (runs.assignment)."""

    release_id: str
    version: str
    stage: str
    bucket: int | None
    reason: str
    experiment: str | None = None
    arm: str | None = None
    flag: str | None = None
    pinned_by: str | None = None
    revision: int | None = None

    def as_record(self) -> dict[str, Any]:
        record = {
            "stage": self.stage,
            "release": self.version,
            "bucket": self.bucket,
            "reason": self.reason,
            "revision": self.revision,
        }
        extras = {
            "experiment": self.experiment,
            "arm": self.arm,
            "flag": self.flag,
            "pinned_by": self.pinned_by,
        }
        record.update({key: value for key, value in extras.items() if value is not None})
        return record


def assign(
    deployment: Deployment | None,
    experiments: ExperimentClaims | None,
    *,
    tenant: str,
    user: str,
    pin: Pin | None = None,
) -> Assignment | None:
    """The release for a run of `user` in `tenant`; None when there is no deployment to follow
    (the caller then uses its fallback release, e.g. the working copy of `tether serve`)."""
    revision = deployment.revision if deployment is not None else None
    if pin is not None:
        return Assignment(
            pin.release_id,
            pin.version,
            "pin",
            None,
            f"pinned by {pin.by}",
            pinned_by=pin.by,
            revision=revision,
        )
    if deployment is None:
        return None
    live = deployment.live
    internal = deployment.with_stage(Stage.INTERNAL)
    if internal is not None and (user in deployment.internal_users or tenant in deployment.internal_tenants):
        why = "internal user" if user in deployment.internal_users else "internal tenant"
        return _of(internal, "internal", None, why, revision)
    number = bucket_of(deployment.salt, tenant, user)
    canary = deployment.canary_entry
    if canary is not None and deployment.canary is not None:
        weight = deployment.canary.weight
        if number < round(weight * BUCKETS / 100):
            return _of(canary, "canary", number, f"bucket {number} < {weight:g}% canary", revision)
    if live is None:
        return None
    if experiments is not None:
        arm = experiments.claim(deployment, tenant=tenant, user=user, bucket=number)
        if arm is not None:
            return Assignment(
                arm.release_id,
                arm.version,
                "experiment",
                number,
                f"experiment {arm.experiment} arm {arm.arm}",
                experiment=arm.experiment,
                arm=arm.arm,
                revision=revision,
            )
    return _of(live, "live", number, "live release", revision)


def shadow_sampled(deployment: Deployment, run_id: str) -> Entry | None:
    """The shadow release, if this live run is in the sampled share that is copied to it."""
    shadow = deployment.with_stage(Stage.SHADOW)
    if shadow is None or deployment.shadow_share <= 0:
        return None
    number = bucket_of(deployment.salt, "shadow", run_id)
    return shadow if number < round(deployment.shadow_share * BUCKETS) else None


def _of(entry: Entry, stage: str, number: int | None, reason: str, revision: int | None) -> Assignment:
    return Assignment(entry.release_id, entry.version, stage, number, reason, revision=revision)
