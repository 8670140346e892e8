"""A pytest plugin for teams that prefer pytest to the CLI: run a suite and assert on the gate.

    def test_support_agent_ships(tether_eval):
        result = tether_eval("examples/support_agent", suites=["orders"], trials=3)
        verdict = result.gate()
        assert verdict.passed, verdict.report

Installed with Tether, so it loads in every pytest session: it imports the eval machinery only when a
test asks for the fixture. See `tether.evals.harness`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tether.evals.harness import EvalHarness


@pytest.fixture
def tether_eval(tmp_path: Path) -> EvalHarness:
    """Run an agent project's eval suites inside a test; `.gate()` on the result applies the gate."""
    from tether.evals.harness import EvalHarness

    return EvalHarness(tmp_path / "tether-evals.db")
