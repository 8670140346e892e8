"""Feature flags: evaluation and targeting, the audited store, and what a run does with its flags
(recorded once at submission; tools, prompts and the tool list honour them), through the CLI."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from conftest import Cli, ProjectFactory
from flags_helpers import flags_project, run, set_flag
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tether.agent.flags import render_instructions, tool_switched_off
from tether.rollout.flags import evaluate, explain
from tether.runtime.submission import RunSubject
from tether.store.flag_records import FlagRule, FlagSpec
from tether.store.flags import FlagNotFoundError
from tether.store.records import RunOrigin
from tether.store.repository import Store


def subject(user: str = "u1", tenant: str = "default", **metadata: object) -> RunSubject:
    return RunSubject(tenant_id=tenant, user_id=user, origin=RunOrigin.API, metadata=metadata)


# ------------------------------------------------------------------------------ evaluation


def test_off_rules_and_default_decide_in_that_order() -> None:
    spec = FlagSpec(
        enabled=True,
        default=False,
        rules=(
            FlagRule(value=True, tenants=("acme",)),
            FlagRule(value=True, users=("vip",)),
            FlagRule(value=True, attributes={"plan": ("pro", "team")}),
        ),
    )
    assert evaluate(spec, "f", subject(tenant="acme")) is True
    assert evaluate(spec, "f", subject(user="vip")) is True
    assert evaluate(spec, "f", subject(plan="team")) is True
    assert explain(spec, "f", subject(plan="free")) == (False, "no rule matched: default")
    assert explain(spec, "f", subject(user="vip"))[1] == "rule 2: user in vip -> true"
    off = spec.model_copy(update={"enabled": False})
    assert explain(off, "f", subject(tenant="acme")) == (False, "the flag is off")


def test_origin_is_a_targeting_attribute() -> None:
    spec = FlagSpec(enabled=True, rules=(FlagRule(value=True, attributes={"origin": ("eval",)}),))
    assert evaluate(spec, "f", RunSubject("default", "u", RunOrigin.EVAL)) is True
    assert evaluate(spec, "f", RunSubject("default", "u", RunOrigin.API)) is False


def test_a_percentage_rule_serves_about_that_share() -> None:
    spec = FlagSpec(enabled=True, rules=(FlagRule(value=True, percentage=20),))
    served = sum(evaluate(spec, "share", subject(user=f"user-{i}")) is True for i in range(4000))
    assert 0.17 < served / 4000 < 0.23


@settings(max_examples=50, deadline=None)
@given(
    user=st.text(min_size=1, max_size=20),
    tenant=st.text(min_size=1, max_size=10),
    low=st.floats(min_value=0, max_value=100),
    high=st.floats(min_value=0, max_value=100),
)
def test_percentages_are_sticky_a_user_in_at_5_percent_stays_in_at_more(
    user: str, tenant: str, low: float, high: float
) -> None:
    low, high = min(low, high), max(low, high)
    rule = {"value": True}
    at_low = FlagSpec(enabled=True, rules=(FlagRule(**rule, percentage=low),))
    at_high = FlagSpec(enabled=True, rules=(FlagRule(**rule, percentage=high),))
    who = subject(user=user, tenant=tenant)
    if evaluate(at_low, "sticky", who) is True:
        assert evaluate(at_high, "sticky", who) is True


def test_two_flags_at_the_same_percentage_pick_different_users() -> None:
    spec = FlagSpec(enabled=True, rules=(FlagRule(value=True, percentage=10),))
    a = {i for i in range(3000) if evaluate(spec, "flag-a", subject(user=f"u{i}")) is True}
    b = {i for i in range(3000) if evaluate(spec, "flag-b", subject(user=f"u{i}")) is True}
    assert a and b and len(a & b) < len(a) / 2


def test_bad_definitions_are_refused_with_a_reason() -> None:
    with pytest.raises(ValidationError, match="not one of the variations"):
        FlagSpec(kind="string", variations=("a", "b"), default="c", off="a")
    with pytest.raises(ValidationError, match="must all be bools"):
        FlagSpec(kind="bool", variations=(True, "yes"))
    with pytest.raises(ValidationError, match="less than or equal to 100"):
        FlagRule(value=True, percentage=101)


def test_prompts_render_flags_only_when_they_use_them() -> None:
    template = "Hi.{% if flags.cheerful %} Smile!{% endif %} Tone: {{ flags['tone'] }}."
    assert render_instructions(template, {"cheerful": True, "tone": "warm"}) == "Hi. Smile! Tone: warm."
    assert render_instructions(template, {}) == "Hi. Tone: False."
    literal = 'Answer as JSON like {{"a": 1}} or {% raw %}'
    assert render_instructions(literal, {"x": True}) == literal
    with pytest.raises(ValueError, match="cannot be rendered"):
        render_instructions("{% if flags.x %}unclosed", {})


def test_only_a_false_tool_flag_switches_a_tool_off() -> None:
    assert tool_switched_off({"tool.refund": False}, "refund")
    assert not tool_switched_off({"tool.refund": True}, "refund")
    assert not tool_switched_off({}, "refund")
    assert not tool_switched_off(None, "refund")


# ------------------------------------------------------------------------------ store


async def test_every_change_is_audited_with_its_live_revision(store: Store) -> None:
    flags = store.flags
    created = await flags.put("beta", FlagSpec(), actor="ann", reason="new")
    assert created.version == 1
    changed = await flags.put("beta", FlagSpec(enabled=True), actor="bob", reason="launch", action="switch")
    assert changed.version == 2 and changed.spec.enabled
    with pytest.raises(ValueError, match="changed meanwhile"):
        await flags.put("beta", FlagSpec(), actor="cy", reason="stale", expected_version=1)
    with pytest.raises(ValueError, match="needs a reason"):
        await flags.put("beta", FlagSpec(), actor="cy", reason=" ")
    with pytest.raises(ValueError, match="must be 1-100 characters"):
        await flags.put("Bad Name", FlagSpec(), actor="cy", reason="x")
    await flags.delete("beta", actor="dee", reason="done")
    with pytest.raises(FlagNotFoundError):
        await flags.get("beta")
    history = await flags.history(subject="beta")
    assert [(h.action, h.actor, h.reason) for h in history] == [
        ("delete", "dee", "done"),
        ("switch", "bob", "launch"),
        ("create", "ann", "new"),
    ]
    revisions = [h.revision for h in history]
    assert revisions == sorted(revisions, reverse=True) and len(set(revisions)) == 3
    assert (await store.live_revisions.current())["flags"] == revisions[0]
    assert history[1].before == FlagSpec().model_dump(mode="json")
    assert history[0].after is None


# ------------------------------------------------------------------------------ runs, through the CLI


def test_a_run_records_its_flags_and_its_prompt_and_tools_honour_them(
    cli: Cli, make_project: ProjectFactory
) -> None:
    project = flags_project(make_project)
    assert run(cli, project, "prompt")["flags"] == {}
    assert "Be cheerful" not in run(cli, project, "prompt")["output"]

    set_flag(cli, project, "new-tone", "--on", "--default", "true")
    set_flag(cli, project, "greeting-style", "--kind", "string", "--variations", "plain,warm", "--on")
    cli(
        "flags",
        "target",
        "greeting-style",
        "--value",
        "warm",
        "--user",
        "vip",
        "--reason",
        "t",
        "--project",
        project,
    )

    plain = run(cli, project, "prompt")
    assert plain["flags"] == {"new-tone": True, "greeting-style": "plain"}
    # The guard's own instructions (marking, canary) follow the rendered prompt.
    assert plain["output"].startswith("SYSTEM:You are a test agent. Be cheerful. Style: plain.\n")
    assert run(cli, project, "greet", user="vip")["output"] == "GREET:warm:ann"  # ToolContext.flags
    assert run(cli, project, "greet")["output"] == "GREET:plain:ann"

    shown = cli("runs", "show", plain["run_id"], "--project", project).stdout
    assert 'greeting-style="plain"' in shown and "new-tone=true" in shown


def test_a_flag_switches_a_tool_off_for_a_segment(cli: Cli, make_project: ProjectFactory) -> None:
    project = flags_project(make_project)
    set_flag(cli, project, "tool.refund", "--on", "--default", "true")
    cli(
        "flags",
        "target",
        "tool.refund",
        "--value",
        "false",
        "--user",
        "blocked",
        "--reason",
        "t",
        "--project",
        project,
    )

    assert run(cli, project, "tools")["output"] == "TOOLS:escalate_to_human,greet,refund"
    assert run(cli, project, "tools", user="blocked")["output"] == "TOOLS:escalate_to_human,greet"
    # A model that calls the tool anyway is told it is off; the tool never runs.
    refused = run(cli, project, "refund", user="blocked")
    assert refused["output"] == "REFUND:error: refund is switched off for this run by a feature flag"
    assert run(cli, project, "refund")["output"] == "REFUND:refunded 7"


def test_flags_are_decided_once_at_submission(cli: Cli, make_project: ProjectFactory) -> None:
    project = flags_project(make_project)
    set_flag(cli, project, "new-tone", "--on", "--default", "true")
    queued = cli.json("run", "--project", project, "--user", "u1", "--queue", "prompt")
    assert queued["flags"] == {"new-tone": True}
    set_flag(cli, project, "new-tone", "--off")  # changed after submission, before execution
    done = asyncio.run(_drive(queued["run_id"]))
    assert done["flags"] == {"new-tone": True}
    assert "Be cheerful" in (done["output"] or "")
    assert run(cli, project, "prompt")["flags"] == {"new-tone": False}


def test_the_cli_shows_lists_explains_and_refuses_bad_input(cli: Cli, make_project: ProjectFactory) -> None:
    project = flags_project(make_project)
    set_flag(cli, project, "checkout", "--description", "new checkout")
    cli(
        "flags",
        "target",
        "checkout",
        "--value",
        "true",
        "--percent",
        "50",
        "--attr",
        "plan=pro",
        "--reason",
        "t",
        "--project",
        project,
    )
    cli("flags", "set", "checkout", "--on", "--reason", "go", "--by", "ann", "--project", project)
    listed = cli.json("flags", "list", "--project", project)
    assert [(f["name"], f["spec"]["enabled"], f["version"]) for f in listed] == [("checkout", True, 3)]
    shown = cli.json("flags", "show", "checkout", "--user", "u9", "--attr", "plan=free", "--project", project)
    assert shown["evaluation"] == {
        "user": "u9",
        "tenant": "default",
        "value": False,
        "why": "no rule matched: default",
    }
    assert [h["action"] for h in shown["history"]] == ["switch", "target", "create"]
    assert shown["history"][0]["actor"] == "ann" and shown["history"][0]["reason"] == "go"
    text = cli("flags", "show", "checkout", "--project", project).stdout
    assert "rule 1: plan in pro (50%) -> true" in text

    bad = cli(
        "flags", "target", "checkout", "--value", "maybe", "--reason", "t", "--project", project, expect=2
    )
    assert "not a bool flag value" in bad.stderr
    missing = cli("flags", "show", "nope", "--project", project, expect=2)
    assert "no flag 'nope'" in missing.stderr
    no_reason = cli("flags", "set", "checkout", "--off", "--project", project, expect=2)
    assert "--reason" in no_reason.stderr
    cli("flags", "target", "checkout", "--remove", "1", "--reason", "t", "--project", project)
    assert cli.json("flags", "show", "checkout", "--project", project)["spec"]["rules"] == []
    cli("flags", "delete", "checkout", "--reason", "done", "--project", project)
    assert cli.json("flags", "list", "--project", project) == []


async def _drive(run_id: str) -> dict[str, object]:
    from tether.runtime.service import Runtime
    from tether.settings import Settings

    store = await Store.open(os.environ["TETHER_DATABASE_URL"])
    try:
        runtime = Runtime(store, Settings(), data_dir=Path(os.environ["TETHER_DATA_DIR"]))
        done = await runtime.execute(run_id)
        return done.model_dump(mode="json")
    finally:
        await store.close()
