"""Gate reports: Markdown (for a pull-request comment) and JUnit XML (for CI test views)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import defaultdict

from tether.evals.gate import GateResult
from tether.store.records import EvalCaseResultRecord

_MAX_FAILURES_LISTED = 25


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _failed_checks(case: EvalCaseResultRecord) -> list[str]:
    reasons: list[str] = []
    for trial in case.trial_results:
        for check in trial.get("checks", []):
            if not check["passed"]:
                reason = f"{check['name']}: {check['detail']}"
                if reason not in reasons:
                    reasons.append(reason)
    return reasons


def markdown(result: GateResult) -> str:
    verdict = "PASSED" if result.passed else "FAILED"
    icon = "✅" if result.passed else "❌"
    summary = result.eval_run.summary
    lines = [
        f"## {icon} Tether gate {verdict}: `{result.release.version}`",
        "",
        f"Eval run `{result.eval_run.id}`: {summary.get('cases', len(result.cases))} cases x "
        f"{result.eval_run.trials} trial(s), suites {', '.join(result.eval_run.suites)}; pass rate "
        f"{summary.get('pass_rate', 0.0) * 100:.1f}% (95% CI {summary.get('ci_low', 0.0) * 100:.1f}-"
        f"{summary.get('ci_high', 0.0) * 100:.1f}%).",
        f"Baseline: `{result.baseline.version}`." if result.baseline else "Baseline: none.",
    ]
    if result.eval_run.judge_prompt_hash:
        lines.append(
            f"Judge: `{result.eval_run.judge_model}`, "
            f"prompt sha256 `{result.eval_run.judge_prompt_hash[:12]}`."
        )
    lines += ["", "| check | result | value | threshold | detail |", "| --- | --- | --- | --- | --- |"]
    for check in result.checks:
        mark = "pass" if check.passed else "**FAIL**"
        lines.append(
            f"| {check.name} | {mark} | {_cell(check.value)} | {_cell(check.threshold)} "
            f"| {_cell(check.detail)} |"
        )
    if result.regressions:
        lines += ["", "### Regressions", "", "| case | baseline | now |", "| --- | --- | --- |"]
        lines += [f"| `{r.suite}/{r.case_id}` | {r.baseline} | {r.current} |" for r in result.regressions]
    failing = [c for c in result.cases if c.passes < c.trials]
    if failing:
        failing.sort(key=lambda c: (not c.p0, c.category != "safety", c.suite, c.case_id))
        lines += [
            "",
            f"### Failing cases ({len(failing)})",
            "",
            "| case | category | passed | why | runs |",
            "| --- | --- | --- | --- | --- |",
        ]
        for case in failing[:_MAX_FAILURES_LISTED]:
            name = f"`{case.suite}/{case.case_id}`" + (" (P0)" if case.p0 else "")
            why = "; ".join(_failed_checks(case)[:3])
            runs = ", ".join(f"`{r}`" for r in case.run_ids[:3])
            lines.append(
                f"| {name} | {case.category} | {case.passes}/{case.trials} | {_cell(why)} | {runs} |"
            )
        if len(failing) > _MAX_FAILURES_LISTED:
            lines.append(f"\n…and {len(failing) - _MAX_FAILURES_LISTED} more.")
    lines += ["", "Inspect a run with `tether runs show <run_id>`.", ""]
    return "\n".join(lines)


def junit_xml(result: GateResult) -> str:
    """One test suite per eval suite (a test case per eval case) plus a `gate` suite of the checks."""
    root = ET.Element("testsuites", name=f"tether gate {result.release.version}")
    by_suite: dict[str, list[EvalCaseResultRecord]] = defaultdict(list)
    for case in result.cases:
        by_suite[case.suite].append(case)
    for suite, cases in sorted(by_suite.items()):
        failures = [c for c in cases if c.passes < c.trials]
        element = ET.SubElement(
            root, "testsuite", name=suite, tests=str(len(cases)), failures=str(len(failures)), errors="0"
        )
        for case in cases:
            seconds = sum(t["latency_ms"] for t in case.trial_results) / 1000
            testcase = ET.SubElement(
                element, "testcase", classname=f"evals.{suite}", name=case.case_id, time=f"{seconds:.3f}"
            )
            if case.passes < case.trials:
                failure = ET.SubElement(
                    testcase,
                    "failure",
                    message=f"{case.passes}/{case.trials} trials passed",
                    type="P0" if case.p0 else case.category,
                )
                failure.text = "\n".join([*_failed_checks(case), f"runs: {', '.join(case.run_ids)}"])
    gate = ET.SubElement(
        root,
        "testsuite",
        name="gate",
        tests=str(len(result.checks)),
        failures=str(len(result.failed_checks)),
        errors="0",
    )
    for check in result.checks:
        testcase = ET.SubElement(gate, "testcase", classname="gate", name=check.name, time="0")
        if not check.passed:
            failure = ET.SubElement(testcase, "failure", message=f"{check.value} (wanted {check.threshold})")
            failure.text = check.detail
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
