"""Data folders for eval trials and readiness drills: pristine, whatever the working copy went through.

With a `[data] seed`, the release's seed builds a template once per eval run (or review); each
trial gets its own copy of the template, which is far cheaper than seeding per trial. Without a
seed, the only data there is the project's working folder, so trials copy that, and `note` says so.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

from tether.agent.data import build_data, seed_reference
from tether.agent.project import AgentDefinition


class TrialData:
    """Use as a context manager: the template lives until the block ends; `copy()` per trial."""

    def __init__(self, agent: AgentDefinition, working_data: Path) -> None:
        self.agent = agent
        self.working_data = working_data
        self.seed = seed_reference(agent)
        self._scratch: Path | None = None
        self._template: Path | None = None

    @property
    def pristine(self) -> bool:
        return self.seed is not None

    @property
    def note(self) -> str:
        """Where the trials' data comes from, in one line (the CLI prints it)."""
        if self.seed is not None:
            return f"data: built by [data] seed {self.seed} (pristine for every trial)"
        return (
            f"data: no [data] seed declared, so every trial copies {self.working_data} as it is now "
            "(changes made there, e.g. an approved refund, change the results)"
        )

    def __enter__(self) -> TrialData:
        if self.seed is not None:
            self._scratch = Path(tempfile.mkdtemp(prefix="tether-seed-"))
            self._template = self._scratch / "data"
            try:
                build_data(self.agent, self._template)
            except BaseException:
                self.close()
                raise
        else:
            self._template = self.working_data
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
        self._scratch = self._template = None

    @contextmanager
    def copy(self) -> Iterator[Path]:
        """A private copy of the template (empty when there is nothing to copy), deleted afterwards."""
        if self._template is None:
            raise RuntimeError("TrialData.copy() outside its `with` block")
        scratch = Path(tempfile.mkdtemp(prefix="tether-trial-"))
        target = scratch / "data"
        try:
            if self._template.is_dir():
                shutil.copytree(self._template, target)
            else:
                target.mkdir()
            yield target
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
