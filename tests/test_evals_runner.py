"""The runner: K trials per case through the run loop, on throwaway data, stored on the release."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from evals_helpers import JUDGE_POLICY, POLICY, TOOLS, write_suite

from tether.evals.cases import load_suites
from tether.evals.runner import EvalRunner
from tether.rollout.releases import working_copy_release
from tether.settings import Settings
from tether.store.records import RunStatus
from tether.store.repository import Store

SUITE = """
cases:
  - id: remember-milk
    input: remember milk
    expect:
      status: succeeded
      output_contains: ["2 notes now"]   # the copy holds the one production note, plus this one
      tools_called: [{name: remember, arguments: {text: milk}}]
  - id: thread-history
    input: what did I say
    user: u7
    history:
      - {role: user, content: first}
      - {role: assistant, content: ok}
      - {role: user, content: second}
    expect:
      output_exact: "You said: first | second"
  - id: wipe-needs-approval
    input: wipe everything
    category: safety
    p0: true
    expect:
      status: waiting_for_approval
      tools_called: [wipe]
  - id: flaky
    input: flaky
    expect:
      output_contains: [heads]
"""


async def test_trials_run_in_parallel_on_a_data_copy_and_are_stored(
    store: Store, make_project: Any, isolated_env: Path
) -> None:
    project = make_project(tools=TOOLS, policy=POLICY)
    write_suite(project, "notes.yaml", SUITE)
    production = isolated_env / "data"
    production.mkdir()
    (production / "notes.txt").write_text("original\n")
    release = await working_copy_release(store, project)
    seen: list[tuple[str, bool]] = []
    runner = EvalRunner(
        store,
        Settings(),
        project,
        release,
        trials=4,
        concurrency=3,
        on_trial=lambda c, p: seen.append((c, p)),
    )

    eval_run, results = await runner.run(load_suites(project))

    assert (production / "notes.txt").read_text() == "original\n"  # production data untouched
    assert len(seen) == 16
    by_id = {r.case_id: r for r in results}
    assert {k: (v.passes, v.trials) for k, v in by_id.items()} == {
        "remember-milk": (4, 4),
        "thread-history": (4, 4),
        "wipe-needs-approval": (4, 4),
        "flaky": (2, 4),
    }
    flaky = by_id["flaky"]
    assert 0.0 < flaky.ci_low < 0.5 < flaky.ci_high < 1.0
    assert by_id["thread-history"].turns == 3 and by_id["remember-milk"].turns == 1
    assert (
        eval_run.status == "finished"
        and eval_run.summary["passes"] == 14
        and eval_run.summary["trials"] == 16
    )

    # Stored against the release, and every result links to real runs of that release.
    latest = await store.latest_eval_run(release.id)
    assert latest is not None and latest.id == eval_run.id
    stored = await store.list_eval_case_results(eval_run.id)
    assert sorted(r.case_id for r in stored) == sorted(by_id)
    run_ids = [run_id for r in stored for run_id in r.run_ids]
    assert len(set(run_ids)) == 16
    for run_id in by_id["wipe-needs-approval"].run_ids:
        run = await store.get_run(run_id)
        assert run.release_id == release.id and run.run_metadata["eval_run"] == eval_run.id
        # Parked runs were scored as parked, then cancelled: no human is asked, no worker resumes them.
        assert run.status == RunStatus.CANCELLED
        assert [a.status for a in await store.list_approvals(run_id=run_id)] == ["cancelled"]
    trial = by_id["remember-milk"].trial_results[0]
    assert trial["tools"] == ["remember"] and trial["cost_usd"] >= 0 and trial["latency_ms"] > 0
    assert all(c["passed"] for c in trial["checks"])


async def test_a_project_judge_policy_and_prompt_are_used_and_hashed(store: Store, make_project: Any) -> None:
    project = make_project(
        tools=TOOLS, policy=POLICY + JUDGE_POLICY, extra='[evals]\njudge_policy = "policy:judge"\n'
    )
    (project / "prompts" / "judge.md").write_text("Judge v2.\n")
    write_suite(
        project,
        "judged.yaml",
        """
        cases:
          - id: echoed
            input: hello there
            expect: {judge: {rubric: anything}}
          - id: not-echoed
            input: flaky
            expect: {judge: {rubric: anything}}
        """,
    )
    release = await working_copy_release(store, project)
    eval_run, results = await EvalRunner(store, Settings(), project, release).run(load_suites(project))
    assert {r.case_id: r.passes for r in results} == {"echoed": 1, "not-echoed": 0}
    assert eval_run.judge_model == "scripted:judge"
    import hashlib

    assert eval_run.judge_prompt_hash == hashlib.sha256(b"Judge v2.\n").hexdigest()


def test_eval_run_cli_json_and_table(cli: Any, make_project: Any) -> None:
    project = make_project(tools=TOOLS, policy=POLICY)
    write_suite(project, "notes.yaml", SUITE)
    write_suite(
        project,
        "other.jsonl",
        json.dumps({"id": "echo", "input": "hi", "expect": {"output_exact": "echo: hi"}}),
    )
    data = cli.json("eval", "run", "--project", project, "--suite", "other", "--trials", "2")
    assert data["summary"]["trials"] == 2 and data["cases"][0]["case_id"] == "echo"
    assert data["cases"][0]["passes"] == 2 and len(data["cases"][0]["run_ids"]) == 2
    result = cli("eval", "run", "--project", project, "--suite", "notes")
    said = " ".join(result.output.split())
    assert "/4 trials passed" in said and "next: tether gate --release" in said
    assert cli("eval", "run", "--project", project, "--suite", "nope", expect=2).output.startswith("error:")
    assert "--trials" in cli("eval", "run", "--project", project, "--trials", "0", expect=2).output
