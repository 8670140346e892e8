"""From incidents to regression tests: turn a stored run into a case appended to a suite file.

The case gets the run's input, user and thread history. Its expectations are the `--expect KEY=VALUE`
options when given, otherwise a record of what happened (final status and the tools called, with
their arguments), which makes "this must keep happening" a one-command regression test.
"""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from tether.evals.cases import EVALS_DIR, Case, Category, SuiteError, load_suite, suite_files
from tether.evals.scorers import TrialOutcome
from tether.store.records import RunStatus
from tether.store.repository import Store

_LISTS = {"output_contains", "output_not_contains"}
_COMMA_LISTS = {"status", "tools_not_called", "tool_order"}
_NUMBERS = {"max_steps": int, "max_latency_ms": float, "max_cost_usd": float}
_STRINGS = {"output_regex", "output_exact", "python"}
EXPECT_KEYS = sorted(
    _LISTS | _COMMA_LISTS | set(_NUMBERS) | _STRINGS | {"tools_called", "judge", "judge_min_score"}
)


def parse_expectations(items: list[str]) -> dict[str, Any]:
    """`--expect` options (`key=value`, repeatable) as the `expect:` mapping of a case.

    Lists: `status=a,b`, `tools_not_called=a,b`, `tool_order=a,b`; `output_contains=...` and
    `output_not_contains=...` add one string each time. `tools_called=name` or
    `tools_called=name{"arg": "value"}`. `judge=rubric text`, `judge_min_score=0.8`.
    """
    expect: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in EXPECT_KEYS:
            raise ValueError(f"--expect {item!r}: write KEY=VALUE with KEY one of {', '.join(EXPECT_KEYS)}")
        if key in _LISTS:
            expect.setdefault(key, []).append(value)
        elif key in _COMMA_LISTS:
            expect.setdefault(key, []).extend(v.strip() for v in value.split(",") if v.strip())
        elif key in _NUMBERS:
            try:
                expect[key] = _NUMBERS[key](value)
            except ValueError:
                raise ValueError(f"--expect {item!r}: {key} needs a number") from None
        elif key == "tools_called":
            expect.setdefault(key, []).append(_tool_expectation(item, value))
        elif key == "judge":
            expect.setdefault("judge", {})["rubric"] = value
        elif key == "judge_min_score":
            try:
                expect.setdefault("judge", {})["min_score"] = float(value)
            except ValueError:
                raise ValueError(f"--expect {item!r}: judge_min_score needs a number") from None
        else:
            expect[key] = value
    if "judge" in expect and "rubric" not in expect["judge"]:
        raise ValueError("--expect judge_min_score=... needs --expect judge=<rubric>")
    return expect


def _tool_expectation(item: str, value: str) -> dict[str, Any]:
    name, brace, rest = value.partition("{")
    if not brace:
        return {"name": value.strip()}
    try:
        arguments = json.loads("{" + rest)
    except ValueError:
        raise ValueError(
            f"--expect {item!r}: the arguments after the tool name must be a JSON object"
        ) from None
    if not isinstance(arguments, dict):
        raise ValueError(f"--expect {item!r}: the arguments must be a JSON object")
    return {"name": name.strip(), "arguments": arguments}


async def case_from_run(
    store: Store,
    run_id: str,
    *,
    case_id: str | None = None,
    expect: dict[str, Any] | None = None,
    category: Category = Category.REGRESSION,
    p0: bool = False,
) -> Case:
    run = await store.get_run(run_id)
    if run.status in (RunStatus.QUEUED, RunStatus.RUNNING):
        raise ValueError(f"run {run_id} is still {run.status}; capture it once it has ended or parked")
    history: list[dict[str, str]] = []
    if run.thread_id is not None:
        for earlier in await store.thread_runs(run.thread_id, before=run.created_at):
            history.append({"role": "user", "content": earlier.input})
            if earlier.output:
                history.append({"role": "assistant", "content": earlier.output})
    if not expect:
        steps = await store.list_steps(run.id)
        approvals = await store.list_approvals(run_id=run.id)
        status = str(run.status)
        if run.status == RunStatus.CANCELLED and (run.error or "").startswith("cancelled while waiting"):
            # Parked, then cancelled (as evals and drills do): what happened was "asked for approval".
            status = RunStatus.WAITING_FOR_APPROVAL
            approvals = [
                a.model_copy(update={"status": "pending"}) if a.status == "cancelled" else a
                for a in approvals
            ]
        outcome = TrialOutcome.from_run(run, steps, approvals, latency_ms=0.0)
        expect = {"status": [status]}
        if outcome.tool_calls:
            expect["tools_called"] = [
                {"name": c.name, "arguments": c.arguments} if c.arguments else {"name": c.name}
                for c in outcome.tool_calls
            ]
    raw = {
        "id": case_id or f"run-{run.id.removeprefix('run_')[:12]}",
        "input": run.input,
        "user": run.user_id,
        "history": history,
        "category": str(category),
        "p0": p0,
        "tags": ["from-run"],
        "description": f"captured from run {run.id} on release {run.release_version}",
        "expect": expect,
    }
    try:
        return Case.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"])
        raise ValueError(f"the captured case is not valid: {where}: {error['msg']}") from None


def case_as_data(case: Case) -> dict[str, Any]:
    """The case as it is written to a suite: defaults left out, so the file stays readable."""
    data = case.model_dump(mode="json", exclude_defaults=True)
    data["expect"] = case.expect.model_dump(mode="json", exclude_defaults=True)
    order = ["id", "description", "input", "user", "history", "category", "p0", "tags", "expect"]
    return {key: data[key] for key in order if key in data}


def append_case(project: Path, suite: str, case: Case) -> Path:
    """Append to `evals/<suite>.yaml|.yml|.jsonl` (a new YAML suite when none exists); returns the file."""
    path = suite_files(project).get(suite)
    if path is None:
        if not suite.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"suite name {suite!r}: use letters, digits, '-' and '_'")
        path = project / EVALS_DIR / f"{suite}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("cases: []\n", encoding="utf-8")
        original = None
    else:
        original = path.read_text(encoding="utf-8")
        if any(existing.id == case.id for existing in load_suite(path).cases):
            raise ValueError(f"{path}: already has a case {case.id!r}; pass --id to name the new one")
    data = case_as_data(case)
    if path.suffix == ".jsonl":
        text = original or ""
        if text and not text.endswith("\n"):
            text += "\n"
        path.write_text(text + json.dumps(data, ensure_ascii=False) + "\n", encoding="utf-8")
    else:
        yaml = YAML(typ="rt", pure=True)
        yaml.indent(mapping=2, sequence=4, offset=2)
        yaml.width = 100
        document = yaml.load(path.read_text(encoding="utf-8"))
        cases = document["cases"]
        if not isinstance(cases, CommentedSeq):
            cases = document["cases"] = CommentedSeq()
        cases.append(_commented(data))
        buffer = StringIO()
        yaml.dump(document, buffer)
        path.write_text(buffer.getvalue(), encoding="utf-8")
    try:
        load_suite(path)
    except SuiteError:
        if original is None:
            path.unlink()
        else:
            path.write_text(original, encoding="utf-8")
        raise
    return path


def _commented(value: Any) -> Any:
    if isinstance(value, dict):
        mapping = CommentedMap()
        for key, item in value.items():
            mapping[key] = _commented(item)
        return mapping
    if isinstance(value, list):
        return CommentedSeq([_commented(item) for item in value])
    return value
