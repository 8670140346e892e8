"""An agent's data folder, built from the seed function its project declares (`[data] seed`).

Write tools change the data folder of the project (a refund approved during a tour stays
refunded). Evals, drills and `tether data reset` must not inherit that history, so a project
names a `module:function` that builds its data from nothing. The function is part of the
project's code, hence of every release: a release always builds the data it was written for.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from tether.agent.project import AgentDefinition

SeedFunction = Callable[[Path], object]


class DataError(ValueError):
    """The seed is missing, or building the data failed; the message says which and why."""


def seed_reference(agent: AgentDefinition) -> str | None:
    """The `[data] seed` of the agent's release, or None when the project declares none."""
    return agent.config.data.seed


def require_seed(agent: AgentDefinition) -> str:
    """The `[data] seed` reference; a `DataError` saying how to declare one when there is none."""
    reference = seed_reference(agent)
    if reference is None:
        raise DataError(
            f'{agent.config.agent.name} declares no [data] seed: add `seed = "module:function"` under '
            "[data] in tether.toml, naming a function that builds the data folder it is given"
        )
    return reference


def _seed_function(agent: AgentDefinition) -> SeedFunction:
    reference = require_seed(agent)
    function = agent.resolve(reference)
    if not callable(function):
        raise DataError(f"[data] seed {reference!r} is not a function")
    return function  # type: ignore[no-any-return]


def build_data(agent: AgentDefinition, target: Path) -> None:
    """Build pristine data into `target`, which must not exist yet or be empty."""
    seed = _seed_function(agent)
    if target.exists() and any(target.iterdir()):
        raise DataError(f"{target} is not empty; the seed builds data into an empty folder")
    target.mkdir(parents=True, exist_ok=True)
    try:
        seed(target)
    except Exception as exc:
        raise DataError(f"[data] seed {seed_reference(agent)!r} failed: {exc!r}") from exc


def reset_data(agent: AgentDefinition, target: Path) -> None:
    """Replace `target` with freshly built data; on a seed failure the old folder is left as it was.

    The new data is built next to the old folder and swapped in by two renames, so a reader never
    sees a half-built folder.
    """
    target = target.resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-new-"))
    try:
        build_data(agent, staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    retired = target.parent / f".{target.name}-old-{staging.name.rsplit('-', 1)[-1]}"
    if target.exists():
        target.rename(retired)
    staging.rename(target)
    shutil.rmtree(retired, ignore_errors=True)
