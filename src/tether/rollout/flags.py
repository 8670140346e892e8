"""Feature flags: decide each flag's value for one run, and change flags with an audit trail.

A flag serves its `off` value while switched off; otherwise the first targeting rule that matches
the run (tenant, user list, run-metadata attributes, then a sticky percentage of that segment)
decides, and `default` serves everyone else. Every process holds the flags as an immutable
snapshot from the live-configuration mechanism (topic `flags`), so deciding a run's flags is a
few dictionary reads, with no database query on the submission path.
"""

from __future__ import annotations

from dataclasses import dataclass

from tether.rollout.buckets import BUCKETS, bucket
from tether.runtime.submission import FlagValue, RunSubject
from tether.store.flag_records import FlagRecord, FlagRule, FlagSpec
from tether.store.flags import FLAGS_TOPIC
from tether.store.repository import Store

__all__ = ["FLAGS_TOPIC", "FlagSnapshot", "evaluate", "explain", "load_flags"]


@dataclass(frozen=True)
class FlagSnapshot:
    """Every flag as of one live revision (immutable: shared by every submission in the process)."""

    flags: tuple[FlagRecord, ...] = ()

    def evaluate_all(self, subject: RunSubject) -> dict[str, FlagValue]:
        return {flag.name: evaluate(flag.spec, flag.name, subject) for flag in self.flags}


EMPTY_FLAGS = FlagSnapshot()


async def load_flags(store: Store) -> FlagSnapshot:
    return FlagSnapshot(tuple(await store.flags.all()))


def flag_salt(name: str) -> str:
    """Each flag buckets users on its own salt, so two 10% flags do not pick the same 10%."""
    return f"flag:{name}"


def _matches(rule: FlagRule, name: str, subject: RunSubject) -> bool:
    if rule.tenants and subject.tenant_id not in rule.tenants:
        return False
    if rule.users and subject.user_id not in rule.users:
        return False
    for key, accepted in rule.attributes.items():
        if subject.attribute(key) not in accepted:
            return False
    if rule.percentage >= 100:
        return True
    # The same cut as canaries (`buckets.in_percent`): hundredths of a percent are honoured.
    return bucket(flag_salt(name), subject.tenant_id, subject.user_id) < round(
        rule.percentage * BUCKETS / 100
    )


def _decide(spec: FlagSpec, name: str, subject: RunSubject) -> tuple[FlagValue, int | None]:
    """The value, and the number of the rule that gave it (None: off or default)."""
    if not spec.enabled:
        return spec.off, None
    for index, rule in enumerate(spec.rules):
        if _matches(rule, name, subject):
            return rule.value, index
    return spec.default, None


def evaluate(spec: FlagSpec, name: str, subject: RunSubject) -> FlagValue:
    """The value this flag serves this subject (the submission path: no explanation is built)."""
    return _decide(spec, name, subject)[0]


def explain(spec: FlagSpec, name: str, subject: RunSubject) -> tuple[FlagValue, str]:
    """The value this flag serves this subject, and why (for `tether flags show --user`)."""
    value, index = _decide(spec, name, subject)
    if index is not None:
        return value, f"rule {index + 1}: {spec.rules[index].describe()}"
    return value, "the flag is off" if not spec.enabled else "no rule matched: default"
