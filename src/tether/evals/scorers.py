"""Scorers: each expectation of a case becomes one check on what a trial's run did.

A trial passes when every check passes. Checks read a `TrialOutcome`, built from the stored run,
its steps and its approvals, so the eval sees exactly what an operator would see.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import re
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.validators import validator_for
from pydantic import BaseModel, Field

from tether.evals.cases import Case, ToolExpectation
from tether.evals.judge import Judge
from tether.runtime.builtins import ESCALATE
from tether.store.records import ApprovalRecord, RunRecord, StepKind, StepRecord, StepStatus


class ToolCallSeen(BaseModel):
    """A tool the run executed, or asked a human's approval for (`parked`)."""

    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    parked: bool = False


class TrialOutcome(BaseModel):
    """What one trial of a case did: the thing every scorer (and a Python scorer hook) reads."""

    run_id: str
    status: str
    output: str
    error: str | None = None
    tool_calls: list[ToolCallSeen] = Field(default_factory=list)
    steps: int = 0
    latency_ms: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0

    @property
    def tools(self) -> list[str]:
        return [call.name for call in self.tool_calls]

    @classmethod
    def from_run(
        cls, run: RunRecord, steps: list[StepRecord], approvals: list[ApprovalRecord], *, latency_ms: float
    ) -> TrialOutcome:
        calls = [
            ToolCallSeen(name=step.name, arguments=step.arguments)
            for step in steps
            if step.kind == StepKind.TOOL_CALL
            and step.status != StepStatus.STARTED
            and (step.attempts > 0 or step.name == ESCALATE)
        ]
        calls += [
            ToolCallSeen(name=a.tool, arguments=a.arguments, parked=True)
            for a in approvals
            if a.status == "pending"
        ]
        return cls(
            run_id=run.id,
            status=run.status,
            output=run.output or "",
            error=run.error,
            tool_calls=calls,
            steps=run.steps_used,
            latency_ms=round(latency_ms, 3),
            input_tokens=run.input_tokens,
            output_tokens=run.output_tokens,
            cost_usd=run.estimated_cost_usd,
        )


class Check(BaseModel):
    name: str
    passed: bool
    detail: str = ""
    cost_usd: float = 0.0
    """What the check itself cost (the judge model's call); never part of the run's cost."""


PythonScorer = Callable[[Case, TrialOutcome], Any]


class ScorerError(ValueError):
    """A Python scorer named by a case cannot be found."""


class PythonScorers:
    """Loads `module:function` scorers from the project folder (e.g. `evals/scorers.py`), once each."""

    def __init__(self, project: Path) -> None:
        self.project = project
        self._cache: dict[str, PythonScorer] = {}

    def get(self, reference: str) -> PythonScorer:
        if reference not in self._cache:
            module_name, _, attribute = reference.partition(":")
            path = self.project.joinpath(*module_name.split(".")).with_suffix(".py")
            if not path.is_file():
                raise ScorerError(f"python scorer {reference!r}: {path} not found")
            unique = f"tether_eval_scorers_{abs(hash(path))}_{module_name.replace('.', '_')}"
            spec = importlib.util.spec_from_file_location(unique, path)
            if spec is None or spec.loader is None:
                raise ScorerError(f"python scorer {reference!r}: cannot import {path}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[unique] = module
            spec.loader.exec_module(module)
            function = getattr(module, attribute, None)
            if not callable(function):
                raise ScorerError(f"python scorer {reference!r}: {path.name} has no function {attribute!r}")
            self._cache[reference] = function
        return self._cache[reference]


def transcript(case: Case) -> str:
    lines = ["## Conversation"]
    lines += [f"{turn.role}: {turn.content}" for turn in case.history]
    lines.append(f"user: {case.input}")
    return "\n".join(lines)


async def score_trial(
    case: Case, outcome: TrialOutcome, *, judge: Judge | None, python: PythonScorers | None
) -> list[Check]:
    """Every check the case's expectations ask for, in a fixed order."""
    expect = case.expect
    output = outcome.output
    lowered = output.lower()
    checks: list[Check] = []
    if expect.status is not None:
        allowed = [str(s) for s in expect.status]
        checks.append(
            Check(
                name="status", passed=outcome.status in allowed, detail=f"{outcome.status}; wanted {allowed}"
            )
        )
    for text in expect.output_contains:
        checks.append(Check(name="output_contains", passed=text.lower() in lowered, detail=repr(text)))
    for text in expect.output_not_contains:
        checks.append(
            Check(name="output_not_contains", passed=text.lower() not in lowered, detail=repr(text))
        )
    if expect.output_regex is not None:
        found = re.search(expect.output_regex, output, re.IGNORECASE | re.DOTALL) is not None
        checks.append(Check(name="output_regex", passed=found, detail=expect.output_regex))
    if expect.output_exact is not None:
        checks.append(
            Check(name="output_exact", passed=output.strip() == expect.output_exact.strip(), detail="exact")
        )
    if expect.output_schema is not None:
        checks.append(_schema_check(output, expect.output_schema))
    for wanted in expect.tools_called:
        checks.append(_called_check(wanted, outcome))
    for name in expect.tools_not_called:
        checks.append(
            Check(
                name="tools_not_called",
                passed=name not in outcome.tools,
                detail=f"{name}; called {outcome.tools}",
            )
        )
    if expect.tool_order:
        checks.append(_order_check(expect.tool_order, outcome.tools))
    if expect.max_steps is not None:
        checks.append(
            Check(name="max_steps", passed=outcome.steps <= expect.max_steps, detail=f"{outcome.steps} steps")
        )
    if expect.max_latency_ms is not None:
        checks.append(
            Check(
                name="max_latency_ms",
                passed=outcome.latency_ms <= expect.max_latency_ms,
                detail=f"{outcome.latency_ms:.0f} ms",
            )
        )
    if expect.max_cost_usd is not None:
        checks.append(
            Check(
                name="max_cost_usd",
                passed=outcome.cost_usd <= expect.max_cost_usd,
                detail=f"${outcome.cost_usd:.6f}",
            )
        )
    if expect.judge is not None:
        checks.append(await _judge_check(case, outcome, judge))
    if expect.python is not None:
        checks.append(await _python_check(case, outcome, expect.python, python))
    return checks


def _schema_check(output: str, schema: dict[str, Any]) -> Check:
    try:
        document = json.loads(output)
    except ValueError:
        return Check(name="output_schema", passed=False, detail="the output is not JSON")
    validator = validator_for(schema, default=Draft202012Validator)(schema)
    errors = sorted(validator.iter_errors(document), key=lambda e: [str(p) for p in e.path])
    if errors:
        where = "/".join(str(p) for p in errors[0].path) or "(root)"
        return Check(name="output_schema", passed=False, detail=f"{where}: {errors[0].message}")
    return Check(name="output_schema", passed=True, detail="valid")


def _subset(wanted: Any, actual: Any) -> bool:
    if isinstance(wanted, dict):
        return isinstance(actual, dict) and all(
            k in actual and _subset(v, actual[k]) for k, v in wanted.items()
        )
    if isinstance(wanted, int | float) and isinstance(actual, int | float) and not isinstance(wanted, bool):
        return float(wanted) == float(actual)
    return bool(wanted == actual)


def _called_check(wanted: ToolExpectation, outcome: TrialOutcome) -> Check:
    matching = [c for c in outcome.tool_calls if c.name == wanted.name]
    passed = any(_subset(wanted.arguments, c.arguments) for c in matching)
    if passed:
        detail = wanted.name
    elif matching:
        detail = f"{wanted.name} called, but never with {json.dumps(wanted.arguments, sort_keys=True)}"
    else:
        detail = f"{wanted.name} never called; called {outcome.tools}"
    return Check(name="tools_called", passed=passed, detail=detail)


def _order_check(order: list[str], called: list[str]) -> Check:
    position = 0
    for name in called:
        if position < len(order) and name == order[position]:
            position += 1
    passed = position == len(order)
    return Check(name="tool_order", passed=passed, detail=f"wanted {order} in order; called {called}")


async def _judge_check(case: Case, outcome: TrialOutcome, judge: Judge | None) -> Check:
    assert case.expect.judge is not None
    if judge is None:
        return Check(name="judge", passed=False, detail="no judge model configured")
    verdict = await judge.score(
        rubric=case.expect.judge.rubric, transcript=transcript(case), reply=outcome.output
    )
    passed = verdict.score >= case.expect.judge.min_score
    detail = f"score {verdict.score:.2f} (min {case.expect.judge.min_score:.2f}): {verdict.reason}"
    return Check(name="judge", passed=passed, detail=detail, cost_usd=verdict.cost_usd)


async def _python_check(
    case: Case, outcome: TrialOutcome, reference: str, python: PythonScorers | None
) -> Check:
    if python is None:
        return Check(name="python", passed=False, detail="python scorers are not available here")
    try:
        function = python.get(reference)
        result = function(case, outcome)
        if inspect.isawaitable(result):
            result = await _awaited(result)
    except Exception as exc:  # a broken scorer fails its check, with the reason, not the whole eval
        return Check(name="python", passed=False, detail=f"{reference} raised {type(exc).__name__}: {exc}")
    if isinstance(result, tuple) and len(result) == 2:
        return Check(name="python", passed=bool(result[0]), detail=f"{reference}: {result[1]}")
    if isinstance(result, bool):
        return Check(name="python", passed=result, detail=reference)
    return Check(
        name="python", passed=False, detail=f"{reference} returned {type(result).__name__}, not bool"
    )


async def _awaited(value: Awaitable[Any]) -> Any:
    return await value
