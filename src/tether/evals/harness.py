"""Run eval suites from Python and assert on the gate: what the `tether_eval` pytest fixture returns.

    def test_support_agent_ships(tether_eval):
        result = tether_eval("examples/support_agent", suites=["orders"], trials=3)
        verdict = result.gate()
        assert verdict.passed, verdict.report

The fixture runs cases through the same runner as `tether eval run` (the one run loop, a
throwaway data copy per trial) against a private SQLite database in the test's tmp_path, unless
`database_url` is given. It works from plain and from async tests.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from tether.agent.config import GateSection, load_config
from tether.agent.project import CONFIG_FILE
from tether.evals.cases import load_suites
from tether.evals.gate import GateResult, run_gate
from tether.evals.reports import markdown
from tether.evals.runner import EvalRunner
from tether.rollout.releases import create_release, working_copy_release
from tether.settings import Settings
from tether.store.records import EvalCaseResultRecord, EvalRunRecord, ReleaseRecord
from tether.store.repository import Store

T = TypeVar("T")


def _blocking(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion, also from inside a test that already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


@dataclass
class GateOutcome:
    """The gate's verdict on a suite run; `report` is the Markdown a failing assert should show."""

    result: GateResult

    @property
    def passed(self) -> bool:
        return self.result.passed

    @property
    def failed_checks(self) -> list[str]:
        return [check.name for check in self.result.failed_checks]

    @property
    def report(self) -> str:
        return markdown(self.result)


@dataclass
class SuiteResult:
    project: Path
    database_url: str
    release: ReleaseRecord
    eval_run: EvalRunRecord
    cases: list[EvalCaseResultRecord]

    @property
    def pass_rate(self) -> float:
        trials = sum(c.trials for c in self.cases)
        return sum(c.passes for c in self.cases) / trials if trials else 0.0

    def case(self, case_id: str) -> EvalCaseResultRecord:
        for result in self.cases:
            if result.case_id == case_id:
                return result
        raise KeyError(f"no case {case_id!r} in this eval run")

    def gate(self, *, baseline: str | None = None, **policy: Any) -> GateOutcome:
        """Apply the project's `[gate]` policy (keyword arguments override fields); store the verdict."""
        config = load_config(self.project / CONFIG_FILE)
        applied = GateSection.model_validate({**config.gate.model_dump(), **policy})

        async def apply() -> GateResult:
            store = await Store.open(self.database_url)
            try:
                return await run_gate(store, self.release, applied, baseline=baseline)
            finally:
                await store.close()

        return GateOutcome(_blocking(apply()))


class EvalHarness:
    """What the `tether_eval` fixture returns: call it to run suites of an agent project."""

    def __init__(self, default_database: Path) -> None:
        self.default_database = default_database

    def __call__(
        self,
        project: str | Path,
        *,
        suites: list[str] | None = None,
        trials: int = 1,
        concurrency: int = 4,
        release: str | None = None,
        database_url: str | None = None,
        named_release: bool = False,
    ) -> SuiteResult:
        """Run the suites (all by default) on the working copy, a named release, or `release`."""
        root = Path(project).resolve()
        url = database_url or f"sqlite+aiosqlite:///{self.default_database}"

        async def run() -> SuiteResult:
            settings = Settings()
            store = await Store.open(url)
            try:
                if release is not None:
                    chosen = await store.get_release(release)
                elif named_release:
                    chosen = (await create_release(store, root)).release
                else:
                    chosen = await working_copy_release(store, root)
                runner = EvalRunner(store, settings, root, chosen, trials=trials, concurrency=concurrency)
                eval_run, cases = await runner.run(load_suites(root, suites))
            finally:
                await store.close()
            return SuiteResult(root, url, chosen, eval_run, cases)

        return _blocking(run())
