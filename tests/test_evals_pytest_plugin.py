"""The pytest plugin: a team's own test run uses `tether_eval` to run a suite and assert on the gate."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest
from evals_helpers import POLICY, TOOLS, write_suite

pytest_plugins = ["pytester"]

GOOD = "cases:\n  - id: echo\n    input: hi\n    expect: {output_exact: 'echo: hi'}\n"
BAD = "cases:\n  - id: wrong\n    input: hi\n    expect: {output_exact: 'hello!'}\n"


def test_the_fixture_runs_a_suite_and_asserts_on_the_gate(
    pytester: pytest.Pytester, make_project: Any
) -> None:
    project = make_project(tools=TOOLS, policy=POLICY)
    write_suite(project, "good.yaml", GOOD)
    write_suite(project, "bad.yaml", BAD)
    pytester.makeini("[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(
        textwrap.dedent(
            f"""
            PROJECT = {str(project)!r}


            def test_good_suite_ships(tether_eval):
                result = tether_eval(PROJECT, suites=["good"], trials=2)
                assert result.pass_rate == 1.0 and result.case("echo").passes == 2
                verdict = result.gate()
                assert verdict.passed, verdict.report


            def test_bad_suite_is_blocked(tether_eval):
                verdict = tether_eval(PROJECT, suites=["bad"]).gate()
                assert not verdict.passed
                assert verdict.failed_checks == ["task_success"]
                assert "wrong" in verdict.report


            def test_policy_can_be_overridden(tether_eval):
                assert tether_eval(PROJECT, suites=["bad"]).gate(min_task_success=0.0).passed


            async def test_from_an_async_test(tether_eval):
                assert tether_eval(PROJECT, suites=["good"]).gate().passed


            def test_a_failing_gate_fails_the_test(tether_eval):
                verdict = tether_eval(PROJECT, suites=["bad"]).gate()
                assert verdict.passed, verdict.report
            """
        )
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=4, failed=1)
    result.stdout.fnmatch_lines(["*Tether gate FAILED*"])
