"""The one place the loop reads a run's evaluated flags and experiment arm (for routing rules).

Flags are evaluated when a run is created and travel with it, so a run routes the same way when it
is resumed; this reads them from the run record (a `flags` attribute when the record has one,
otherwise `metadata["flags"]`), plus `metadata["experiment"] = {"name": ..., "arm": ...}`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tether.store.records import RunRecord


def run_flags(run: RunRecord) -> Mapping[str, str]:
    found: dict[str, str] = {}
    flags: Any = getattr(run, "flags", None)
    if not isinstance(flags, Mapping):
        flags = run.run_metadata.get("flags")
    if isinstance(flags, Mapping):
        found.update({str(name): _text(value) for name, value in flags.items()})
    experiment = run.run_metadata.get("experiment")
    if isinstance(experiment, Mapping) and "name" in experiment and "arm" in experiment:
        found[str(experiment["name"])] = _text(experiment["arm"])
    return found


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
