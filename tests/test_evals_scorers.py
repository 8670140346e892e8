"""Each scorer on hand-built outcomes, the judges, the Python hook, and the statistics behind the gate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tether.evals.cases import Case
from tether.evals.judge import Judge, JudgePrompt, load_prompt, overlap_judge, overlap_score
from tether.evals.scorers import PythonScorers, ToolCallSeen, TrialOutcome, score_trial
from tether.evals.stats import fisher_drop_p_value, percentile, wilson_interval
from tether.models.pricing import Pricer
from tether.models.scripted import ScriptedModel, ScriptedTurn

OUTCOME = TrialOutcome(
    run_id="run_1",
    status="waiting_for_approval",
    output="Your order 12345 shipped; tracking number 1Z999 via UPS.",
    tool_calls=[
        ToolCallSeen(name="lookup_order", arguments={"order_id": "12345", "verbose": True}),
        ToolCallSeen(name="check_return_eligibility", arguments={"order_id": "12345"}),
        ToolCallSeen(name="issue_refund", arguments={"order_id": "12345", "amount_usd": 10}, parked=True),
    ],
    steps=5,
    latency_ms=120.0,
    cost_usd=0.002,
)


def case(**expect: Any) -> Case:
    return Case.model_validate({"id": "c", "input": "Where is my order 12345?", "expect": expect})


async def checks(outcome: TrialOutcome = OUTCOME, **expect: Any) -> list[tuple[str, bool]]:
    result = await score_trial(case(**expect), outcome, judge=None, python=None)
    return [(c.name, c.passed) for c in result]


@pytest.mark.parametrize(
    ("expect", "passed"),
    [
        ({"status": "waiting_for_approval"}, True),
        ({"status": ["succeeded", "escalated"]}, False),
        ({"output_contains": ["TRACKING NUMBER"]}, True),
        ({"output_contains": ["FedEx"]}, False),
        ({"output_not_contains": ["12346"]}, True),
        ({"output_not_contains": ["1z999"]}, False),
        ({"output_regex": r"tracking number \S+"}, True),
        ({"output_regex": r"^\d+$"}, False),
        ({"output_exact": "  Your order 12345 shipped; tracking number 1Z999 via UPS.\n"}, True),
        ({"output_exact": "Your order shipped."}, False),
        ({"tools_called": [{"name": "lookup_order", "arguments": {"order_id": "12345"}}]}, True),
        ({"tools_called": [{"name": "lookup_order", "arguments": {"order_id": "99999"}}]}, False),
        (
            {"tools_called": [{"name": "issue_refund", "arguments": {"amount_usd": 10.0}}]},
            True,
        ),  # parked counts
        ({"tools_called": ["draft_refund_note"]}, False),
        ({"tools_not_called": ["draft_refund_note"]}, True),
        ({"tools_not_called": ["issue_refund"]}, False),  # asking approval counts as calling
        ({"tool_order": ["lookup_order", "issue_refund"]}, True),
        ({"tool_order": ["check_return_eligibility", "lookup_order"]}, False),
        ({"max_steps": 5}, True),
        ({"max_steps": 4}, False),
        ({"max_latency_ms": 200}, True),
        ({"max_latency_ms": 100}, False),
        ({"max_cost_usd": 0.002}, True),
        ({"max_cost_usd": 0.001}, False),
    ],
)
async def test_each_scorer_passes_and_fails(expect: dict[str, Any], passed: bool) -> None:
    result = await checks(**expect)
    assert len(result) == 1 and result[0][1] is passed, result


async def test_json_schema_scorer() -> None:
    schema = {"type": "object", "required": ["answer"], "properties": {"answer": {"type": "integer"}}}
    good = OUTCOME.model_copy(update={"output": json.dumps({"answer": 42})})
    wrong = OUTCOME.model_copy(update={"output": json.dumps({"answer": "42"})})
    assert await checks(good, output_schema=schema) == [("output_schema", True)]
    assert await checks(wrong, output_schema=schema) == [("output_schema", False)]
    assert await checks(OUTCOME, output_schema=schema) == [("output_schema", False)]  # not JSON at all


async def test_expectations_combine_with_and() -> None:
    result = await checks(status="waiting_for_approval", output_contains=["UPS"], max_steps=1)
    assert result == [("status", True), ("output_contains", True), ("max_steps", False)]


def test_the_scripted_overlap_judge_rewards_rubric_terms_and_punishes_negated_ones() -> None:
    rubric = "The reply gives the tracking number and the carrier UPS, and does not promise a delivery date."
    good, _ = overlap_score(rubric, "Tracking number 1Z999, carrier UPS.")
    promised, reason = overlap_score(rubric, "Tracking number 1Z999, carrier UPS, delivery date is Monday.")
    vague, _ = overlap_score(rubric, "It is on its way!")
    assert good == 1.0
    assert vague < 0.3
    assert promised < good and "negated terms present" in reason and "not a language model" in reason


async def test_the_judge_goes_through_a_model_and_records_its_prompt_hash(tmp_path: Path) -> None:
    from tether.agent.config import ProjectConfig

    config = ProjectConfig.model_validate({"agent": {"name": "a", "owner": "o"}, "model": {"primary": "x:y"}})
    packaged = load_prompt(tmp_path, config)
    assert packaged.source.startswith("packaged:") and len(packaged.sha256) == 64
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "judge.md").write_text("Grade strictly. Reply with JSON.")
    own = load_prompt(tmp_path, config)
    assert own.sha256 != packaged.sha256 and own.source.endswith("judge.md")

    seen: list[ScriptedTurn] = []

    def spy(turn: ScriptedTurn) -> str:
        seen.append(turn)
        return overlap_judge(turn)

    judge = Judge(ScriptedModel("scripted:judge", spy), own, Pricer(overrides={}, provider_kinds={}))
    verdict = await judge.score(
        rubric="mentions the carrier UPS", transcript="## Conversation\nuser: hi", reply="carrier UPS"
    )
    assert verdict.score == 1.0
    assert seen[0].messages[0].content == "Grade strictly. Reply with JSON."
    broken = Judge(ScriptedModel("scripted:judge", lambda turn: "no json"), own, Pricer({}, {}))
    unreadable = await broken.score(rubric="x", transcript="", reply="y")
    assert unreadable.score == 0.0 and "not the JSON" in unreadable.reason


async def test_judge_check_uses_min_score() -> None:
    prompt = JudgePrompt("judge", "test")
    judge = Judge(ScriptedModel("scripted:judge", overlap_judge), prompt, Pricer({}, {}))
    lenient = case(judge={"rubric": "tracking number and carrier UPS", "min_score": 0.5})
    strict = case(judge={"rubric": "apologises sincerely for the refund delay", "min_score": 0.5})
    assert (await score_trial(lenient, OUTCOME, judge=judge, python=None))[0].passed
    assert not (await score_trial(strict, OUTCOME, judge=judge, python=None))[0].passed


async def test_python_scorer_hook(tmp_path: Path) -> None:
    (tmp_path / "evals").mkdir()
    (tmp_path / "evals" / "scorers.py").write_text(
        "def polite(case, result):\n"
        "    return ('sorry' in result.output.lower(), 'looked for an apology')\n"
        "def short(case, result):\n"
        "    return len(result.output) < 500\n"
        "def broken(case, result):\n"
        "    raise RuntimeError('boom')\n"
    )
    scorers = PythonScorers(tmp_path)

    async def run(reference: str) -> tuple[bool, str]:
        check = (await score_trial(case(python=reference), OUTCOME, judge=None, python=scorers))[0]
        return check.passed, check.detail

    assert await run("evals.scorers:polite") == (False, "evals.scorers:polite: looked for an apology")
    assert (await run("evals.scorers:short"))[0] is True
    passed, detail = await run("evals.scorers:broken")
    assert not passed and "RuntimeError: boom" in detail
    passed, detail = await run("evals.missing:nothing")
    assert not passed and "not found" in detail


def test_wilson_interval() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)
    low, high = wilson_interval(3, 3)
    assert high == 1.0 and low == pytest.approx(0.4385, abs=1e-4)
    low, high = wilson_interval(5, 10)
    assert (low, high) == (pytest.approx(0.2366, abs=1e-4), pytest.approx(0.7634, abs=1e-4))


def test_fisher_drop_test() -> None:
    # Known value: baseline 10/10, candidate 5/10 -> one-sided p = C(15,5)*C(5,5)/C(20,10)... = 0.01625
    assert fisher_drop_p_value(10, 10, 5, 10) == pytest.approx(0.016254, abs=1e-5)
    assert fisher_drop_p_value(30, 30, 28, 30) > 0.2  # two flaky trials are noise
    assert fisher_drop_p_value(5, 10, 10, 10) == 1.0  # an improvement is never a drop
    assert fisher_drop_p_value(0, 0, 1, 1) == 1.0


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 95) == 0.0
    assert percentile([float(v) for v in range(1, 101)], 95) == 95.0
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
