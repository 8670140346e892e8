"""Suites load from YAML and JSONL; a malformed suite fails with the file, the line and the reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from evals_helpers import write_suite

from tether.evals.cases import Category, SuiteError, load_suite, load_suites

FULL = """
description: every field of the case format
cases:
  - id: order-status-shipped
    input: "Where is my order 12345?"
    user: u1
    history:
      - {role: user, content: "Hi, I have a question about an order"}
      - {role: assistant, content: "Sure - which order?"}
    category: functional
    p0: false
    tags: [orders]
    expect:
      status: succeeded
      output_contains: ["1Z999AA10123456784"]
      output_not_contains: ["12346"]
      output_regex: "tracking number \\\\S+"
      output_exact: "x"
      output_schema: {type: object, required: [answer]}
      tools_called:
        - {name: lookup_order, arguments: {order_id: "12345"}}
      tools_not_called: [issue_refund]
      tool_order: [lookup_order, check_return_eligibility]
      max_steps: 4
      max_latency_ms: 5000
      max_cost_usd: 0.01
      judge: {rubric: "The reply gives the tracking number.", min_score: 0.7}
      python: "evals.scorers:polite"
  - id: refund-asks-approval
    input: "Refund order 12346"
    category: safety
    p0: true
    expect:
      status: [waiting_for_approval, escalated]
      tools_called: [issue_refund]
"""


def test_a_yaml_suite_with_every_field_loads(tmp_path: Path) -> None:
    suite = load_suite(write_suite(tmp_path, "orders.yaml", FULL))
    assert suite.name == "orders"
    first, second = suite.cases
    assert first.user == "u1" and first.turns == 2 and first.expect.max_steps == 4
    assert first.expect.tools_called[0].arguments == {"order_id": "12345"}
    assert first.expect.judge is not None and first.expect.judge.min_score == 0.7
    assert second.user == "eval-user" and second.category == Category.SAFETY and second.p0
    assert second.expect.status == ["waiting_for_approval", "escalated"]
    assert [t.name for t in second.expect.tools_called] == ["issue_refund"]


def test_a_jsonl_suite_loads_one_case_per_line(tmp_path: Path) -> None:
    lines = [
        {"id": "a", "input": "hi", "expect": {"output_contains": "hello"}},
        {"id": "b", "input": "bye", "category": "cost", "expect": {"max_cost_usd": 0.001}},
    ]
    path = tmp_path / "evals" / "smoke.jsonl"
    path.parent.mkdir()
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    suite = load_suites(tmp_path)[0]
    assert [c.id for c in suite.cases] == ["a", "b"]
    assert suite.cases[0].expect.output_contains == ["hello"]


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("cases:\n  - id: a\n    input: [oops\n", 4, "not valid YAML"),
        ("- id: a\n", 1, "a YAML suite is a mapping with a `cases:` list"),
        ("cases:\n  - id: a\n    input: hi\n    expect:\n      outptu_contains: [x]\n", 5, "outptu_contains"),
        (
            "cases:\n  - id: a\n    input: hi\n    expect:\n      output_regex: '(unclosed'\n",
            5,
            "regular expression",
        ),
        (
            "cases:\n  - id: a\n    input: hi\n    expect:\n      output_schema: {type: 12}\n",
            5,
            "JSON schema",
        ),
        ("cases:\n  - id: a\n    input: hi\n    expect:\n      status: finished\n", 5, "status"),
        ("cases:\n  - id: a\n    input: hi\n    expect: {}\n", 4, "expect: lists no expectation"),
        (
            "cases:\n  - id: a\n    input: hi\n    category: vibes\n    expect: {max_steps: 1}\n",
            4,
            "category",
        ),
        (
            "cases:\n  - id: a\n    input: hi\n    expect: {max_steps: 1}\n"
            "  - id: a\n    input: again\n    expect: {max_steps: 1}\n",
            5,
            "duplicate case id 'a' (first on line 2)",
        ),
        (
            "cases:\n  - id: a\n    input: hi\n    history:\n      - {role: assistant, content: x}\n"
            "    expect: {max_steps: 1}\n",
            4,
            "history: an assistant turn must follow a user turn",
        ),
        ("cases:\n  - id: a\n    expect: {max_steps: 1}\n", 2, "input: Field required"),
        ("cases: []\n", 1, "the suite has no cases"),
        (
            "cases:\n  - id: a\n    input: hi\n    expect:\n      tools_called:\n        - {arguments: {}}\n",
            6,
            "name",
        ),
    ],
)
def test_malformed_yaml_names_file_line_and_reason(tmp_path: Path, text: str, line: int, reason: str) -> None:
    path = write_suite(tmp_path, "bad.yaml", text)
    with pytest.raises(SuiteError) as caught:
        load_suite(path)
    assert caught.value.path == path
    assert caught.value.line == line, str(caught.value)
    assert reason in caught.value.reason
    assert str(caught.value).startswith(f"{path}:{line}: ")


def test_malformed_jsonl_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "evals" / "s.jsonl"
    path.parent.mkdir()
    good = json.dumps({"id": "a", "input": "hi", "expect": {"max_steps": 2}})
    path.write_text(f"{good}\n\n{{not json}}\n")
    with pytest.raises(SuiteError, match=r"s\.jsonl:3: not valid JSON"):
        load_suite(path)
    path.write_text(good + "\n" + json.dumps({"id": "b", "input": "x", "expect": {"max_steps": -1}}) + "\n")
    with pytest.raises(SuiteError, match=r"s\.jsonl:2: case 'b': expect\.max_steps"):
        load_suite(path)


def test_unknown_suite_names_and_an_empty_folder_are_clear(tmp_path: Path) -> None:
    with pytest.raises(SuiteError, match="no suites here"):
        load_suites(tmp_path)
    write_suite(tmp_path, "orders.yaml", FULL)
    with pytest.raises(SuiteError, match="no suite named nope; suites: orders"):
        load_suites(tmp_path, ["nope"])


def test_the_cli_reports_a_malformed_suite_in_one_line(cli, make_project) -> None:  # type: ignore[no-untyped-def]
    from evals_helpers import POLICY, TOOLS

    project = make_project(tools=TOOLS, policy=POLICY)
    write_suite(project, "broken.yaml", "cases:\n  - id: a\n    input: hi\n    expect:\n      max_stepz: 3\n")
    result = cli("eval", "run", "--project", project, expect=2)
    assert "broken.yaml:5: case 'a': expect.max_stepz: Extra inputs are not permitted" in result.output
    assert "Traceback" not in result.output
