"""`tether eval add-from-run`: a stored run becomes a case in a suite file, and that case runs green."""

from __future__ import annotations

import json
from typing import Any

import pytest
from evals_helpers import POLICY, TOOLS, write_suite

from tether.evals.capture import parse_expectations
from tether.evals.cases import load_suite


def test_a_run_with_thread_history_round_trips_into_a_passing_case(cli: Any, make_project: Any) -> None:
    project = make_project(tools=TOOLS, policy=POLICY)
    write_suite(
        project,
        "existing.yaml",
        "# hand-written cases\ncases:\n  - id: echo  # keep me\n    input: hi\n"
        "    expect: {output_exact: 'echo: hi'}\n",
    )
    cli("run", "--project", project, "--user", "u3", "--thread", "t1", "first thing")
    run = cli.json("run", "--project", project, "--user", "u3", "--thread", "t1", "what did I say")
    assert run["output"] == "You said: first thing"

    added = cli.json("eval", "add-from-run", run["run_id"], "--project", project, "--suite", "existing")
    case = added["case"]
    assert case["input"] == "what did I say" and case["user"] == "u3"
    assert case["history"] == [
        {"role": "user", "content": "first thing"},
        {"role": "assistant", "content": "echo: first thing"},
    ]
    assert case["expect"] == {"status": ["succeeded"]}
    text = (project / "evals" / "existing.yaml").read_text()
    assert "# hand-written cases" in text and "# keep me" in text  # comments survive the append

    result = cli.json("eval", "run", "--project", project, "--suite", "existing")
    assert [(c["case_id"], c["passes"]) for c in result["cases"]] == [("echo", 1), (case["id"], 1)]


def test_default_expectations_record_tools_and_a_parked_call(cli: Any, make_project: Any) -> None:
    project = make_project(tools=TOOLS, policy=POLICY)
    remembered = cli.json("run", "--project", project, "--user", "u1", "remember eggs")
    parked = cli.json("run", "--project", project, "--user", "u1", "wipe please")
    assert parked["status"] == "waiting_for_approval"
    cli(
        "eval",
        "add-from-run",
        remembered["run_id"],
        "--project",
        project,
        "--suite",
        "captured",
        "--id",
        "eggs",
    )
    cli(
        "eval",
        "add-from-run",
        parked["run_id"],
        "--project",
        project,
        "--suite",
        "captured",
        "--id",
        "wipe",
        "--p0",
        "--category",
        "safety",
    )
    suite = load_suite(project / "evals" / "captured.yaml")
    eggs, wipe = suite.cases
    assert [(t.name, t.arguments) for t in eggs.expect.tools_called] == [("remember", {"text": "eggs"})]
    assert wipe.expect.status == ["waiting_for_approval"] and wipe.p0 and wipe.category == "safety"
    assert [t.name for t in wipe.expect.tools_called] == ["wipe"]
    result = cli.json("eval", "run", "--project", project, "--suite", "captured")
    assert all(c["passes"] == 1 for c in result["cases"])
    # The eval cancelled its own parked run; capturing that run still records "asked for approval".
    wipe_run = next(c for c in result["cases"] if c["case_id"] == "wipe")["run_ids"][0]
    again = cli.json(
        "eval", "add-from-run", wipe_run, "--project", project, "--suite", "captured", "--id", "w2"
    )
    assert again["case"]["expect"]["status"] == ["waiting_for_approval"]


def test_explicit_expectations_and_a_jsonl_suite(cli: Any, make_project: Any) -> None:
    project = make_project(tools=TOOLS, policy=POLICY)
    (project / "evals").mkdir()
    (project / "evals" / "regress.jsonl").write_text(
        json.dumps({"id": "a", "input": "x", "expect": {"max_steps": 9}})
    )
    run = cli.json("run", "--project", project, "--user", "u1", "remember tea")
    cli(
        "eval",
        "add-from-run",
        run["run_id"],
        "--project",
        project,
        "--suite",
        "regress",
        "--id",
        "tea",
        "--expect",
        "status=succeeded",
        "--expect",
        'tools_called=remember{"text": "tea"}',
        "--expect",
        "tools_not_called=wipe",
        "--expect",
        "output_contains=Done",
        "--expect",
        "max_steps=3",
    )
    lines = (project / "evals" / "regress.jsonl").read_text().splitlines()
    assert len(lines) == 2
    assert json.loads(lines[1])["expect"] == {
        "status": ["succeeded"],
        "output_contains": ["Done"],
        "tools_called": [{"name": "remember", "arguments": {"text": "tea"}}],
        "tools_not_called": ["wipe"],
        "max_steps": 3,
    }
    duplicate = cli(
        "eval",
        "add-from-run",
        run["run_id"],
        "--project",
        project,
        "--suite",
        "regress",
        "--id",
        "tea",
        expect=2,
    )
    assert "already has a case 'tea'" in duplicate.output
    assert (
        "no run"
        in cli("eval", "add-from-run", "run_nope", "--project", project, "--suite", "x", expect=2).output
    )


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (["nonsense"], "write KEY=VALUE"),
        (["max_steps=many"], "needs a number"),
        (["tools_called=x{oops"], "JSON object"),
        (["judge_min_score=0.9"], "needs --expect judge=<rubric>"),
    ],
)
def test_bad_expect_options_are_explained(items: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_expectations(items)


def test_expect_parsing_builds_judge_and_lists() -> None:
    assert parse_expectations(["judge=Says sorry", "judge_min_score=0.5", "status=escalated,succeeded"]) == {
        "judge": {"rubric": "Says sorry", "min_score": 0.5},
        "status": ["escalated", "succeeded"],
    }
