"""Agent projects: config loading, content-hashed snapshots, and releases through the CLI."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tether.agent.config import ConfigError, load_config
from tether.agent.project import snapshot_project

if TYPE_CHECKING:
    from conftest import Cli, ProjectFactory

TOOLS = '''\
"""Tools for the test agent."""

from tether import tool


@tool
def word_count(text: str) -> int:
    """Count the words in a text.

    Args:
        text: The text to measure.
    """
    return len(text.split())
'''

POLICY = """\
from tether.models.scripted import ScriptedTurn


def respond(turn: ScriptedTurn) -> str:
    return "done"
"""

HELP_START = "Hi! I'm the Acme support assistant."


# --------------------------------------------------------------------------- load_config


def write_toml(folder: Path, text: str) -> Path:
    path = folder / "tether.toml"
    path.write_text(textwrap.dedent(text))
    return path


VALID = """\
[agent]
name = "cfg-agent"
owner = "me@example.com"

[model]
primary = "openai:gpt-4o-mini"
"""


def test_load_config_reads_a_valid_file(tmp_path: Path) -> None:
    config = load_config(write_toml(tmp_path, VALID))
    assert config.agent.name == "cfg-agent"
    assert config.model.chain == ["openai:gpt-4o-mini"]
    assert config.agent.instructions == ["prompts/system.md"]


def test_load_config_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "tether.toml")


def test_load_config_bad_toml(tmp_path: Path) -> None:
    path = write_toml(tmp_path, '[agent]\nname = "unterminated\n')
    with pytest.raises(ConfigError, match="not valid TOML") as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_load_config_unknown_key(tmp_path: Path) -> None:
    path = write_toml(tmp_path, VALID.replace('owner = "me@example.com"', 'owner = "me"\ncolour = "blue"'))
    with pytest.raises(ConfigError, match=r"agent\.colour"):
        load_config(path)


def test_load_config_unknown_section(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="modle"):
        load_config(write_toml(tmp_path, VALID + '\n[modle]\nprimary = "x:y"\n'))


def test_load_config_model_without_provider(tmp_path: Path) -> None:
    path = write_toml(tmp_path, VALID.replace('"openai:gpt-4o-mini"', '"gpt-4o"'))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "'provider:model'" in message
    assert "gpt-4o" in message
    assert "model.primary" in message


def test_load_config_fallback_without_provider(tmp_path: Path) -> None:
    path = write_toml(tmp_path, VALID + 'fallbacks = ["claude-3-5-haiku-latest"]\n')
    with pytest.raises(ConfigError, match="provider:model"):
        load_config(path)


def test_load_config_missing_required_field(tmp_path: Path) -> None:
    path = write_toml(tmp_path, VALID.replace('owner = "me@example.com"\n', ""))
    with pytest.raises(ConfigError, match=r"agent\.owner"):
        load_config(path)


# --------------------------------------------------------------------------- snapshot_project


@pytest.fixture
def project(make_project: ProjectFactory) -> Path:
    return make_project(tools=TOOLS, policy=POLICY)


def test_snapshot_hash_is_stable(project: Path) -> None:
    first = snapshot_project(project)
    second = snapshot_project(project)
    assert first.content_hash == second.content_hash
    assert first.model_dump() == second.model_dump()
    assert len(first.content_hash) == 64


def test_snapshot_holds_prompts_sources_and_tools(project: Path) -> None:
    snapshot = snapshot_project(project)
    assert snapshot.prompts == {"prompts/system.md": "You are a test agent."}
    assert set(snapshot.sources) == {"tools.py", "policy.py"}
    assert [tool["name"] for tool in snapshot.tools] == ["word_count"]
    assert snapshot.tools[0]["description"] == "Count the words in a text."
    assert snapshot.parsed_config().agent.name == "test-agent"


def test_snapshot_hash_does_not_depend_on_the_folder(make_project: ProjectFactory) -> None:
    one = make_project(tools=TOOLS, policy=POLICY)
    two = make_project(tools=TOOLS, policy=POLICY)
    assert one != two
    assert snapshot_project(one).content_hash == snapshot_project(two).content_hash


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


CHANGES: dict[str, tuple[str, str, str]] = {
    "prompt": ("prompts/system.md", "You are a test agent.", "You are a careful test agent."),
    "tool docstring": ("tools.py", "Count the words in a text.", "Count the words of a text."),
    "tool argument description": ("tools.py", "text: The text to measure.", "text: What to measure."),
    "tool signature": (
        "tools.py",
        "def word_count(text: str)",
        "def word_count(text: str, minimum: int = 0)",
    ),
    "tools source comment": ("tools.py", '"""Tools for the test agent."""', '"""Tools."""\n# a comment'),
    "policy source": ("policy.py", 'return "done"', 'return "finished"'),
    "config": ("tether.toml", 'owner = "tests@example.com"', 'owner = "other@example.com"'),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_every_behavioural_input_changes_the_hash(project: Path, change: str) -> None:
    relative, old, new = CHANGES[change]
    before = snapshot_project(project).content_hash
    edit(project / relative, old, new)
    after = snapshot_project(project).content_hash
    assert after != before


def test_tool_choice_is_part_of_the_release(make_project: ProjectFactory) -> None:
    model = 'primary = "scripted:test-v1"'
    default = snapshot_project(make_project(tools=TOOLS, policy=POLICY, model=model))
    omitted = snapshot_project(
        make_project(tools=TOOLS, policy=POLICY, model=model + '\ntool_choice = "omit"')
    )
    assert (
        default.config["model"]["tool_choice"] == "auto" and omitted.config["model"]["tool_choice"] == "omit"
    )
    assert default.content_hash != omitted.content_hash


def test_config_limits_change_the_hash(make_project: ProjectFactory) -> None:
    low = make_project(tools=TOOLS, policy=POLICY, limits="max_steps = 3")
    high = make_project(tools=TOOLS, policy=POLICY, limits="max_steps = 4")
    assert snapshot_project(low).content_hash != snapshot_project(high).content_hash


def test_signature_change_shows_in_tool_schema(project: Path) -> None:
    edit(project / "tools.py", "def word_count(text: str)", "def word_count(text: str, minimum: int = 0)")
    (tool,) = snapshot_project(project).tools
    assert set(tool["parameters"]["properties"]) == {"text", "minimum"}


def test_new_helper_module_changes_the_hash_but_tests_folder_does_not(project: Path) -> None:
    before = snapshot_project(project).content_hash
    (project / "tests").mkdir()
    (project / "tests" / "test_agent.py").write_text("def test_x():\n    pass\n")
    assert snapshot_project(project).content_hash == before
    (project / "helpers.py").write_text("VALUE = 1\n")
    assert snapshot_project(project).content_hash != before


def test_unknown_enabled_tool_is_a_config_error(make_project: ProjectFactory) -> None:
    root = make_project(tools=TOOLS, policy=POLICY, agent='enabled_tools = ["word_count", "teleport"]')
    with pytest.raises(ConfigError, match="teleport"):
        snapshot_project(root)


def test_enabled_tools_subset_is_accepted(make_project: ProjectFactory) -> None:
    root = make_project(tools=TOOLS, policy=POLICY, agent='enabled_tools = ["word_count"]')
    assert [t["name"] for t in snapshot_project(root).tools] == ["word_count"]


def test_missing_prompt_file_is_a_config_error(project: Path) -> None:
    (project / "prompts" / "system.md").unlink()
    with pytest.raises(ConfigError, match=r"prompts/system\.md"):
        snapshot_project(project)


def test_prompt_outside_the_project_is_a_config_error(make_project: ProjectFactory) -> None:
    root = make_project(tools=TOOLS, policy=POLICY, agent='instructions = ["../secret.md"]')
    (root.parent / "secret.md").write_text("outside")
    with pytest.raises(ConfigError, match=r"secret\.md"):
        snapshot_project(root)


def test_missing_tools_module_is_a_config_error(project: Path) -> None:
    (project / "tools.py").unlink()
    with pytest.raises(ConfigError, match="tools"):
        snapshot_project(project)


def test_broken_tools_module_is_a_config_error(project: Path) -> None:
    (project / "tools.py").write_text("import not_a_real_module_xyz\n")
    with pytest.raises(ConfigError, match="not_a_real_module_xyz"):
        snapshot_project(project)


# --------------------------------------------------------------------------- releases via the CLI

NEW_PROMPT_LINE = "Always sign off as Acme Bot."


def create(cli: Cli, project: Path) -> dict[str, Any]:
    data: dict[str, Any] = cli.json("release", "create", "--project", project)
    return data


def test_release_create_is_idempotent(cli: Cli, example_project: Path) -> None:
    first = create(cli, example_project)
    second = create(cli, example_project)
    assert first["created"] is True
    assert second["created"] is False
    assert second["content_hash"] == first["content_hash"]
    assert second["version"] == first["version"]
    assert first["version"].startswith("support-agent-")


def test_changed_prompt_makes_a_new_release_with_a_diff(cli: Cli, example_project: Path) -> None:
    old = create(cli, example_project)
    prompt = example_project / "prompts" / "system.md"
    prompt.write_text(prompt.read_text() + f"\n{NEW_PROMPT_LINE}\n")
    new = create(cli, example_project)
    assert new["created"] is True
    assert new["content_hash"] != old["content_hash"]
    assert new["version"] != old["version"]

    shown = cli("release", "show", new["version"], "--project", example_project, "--diff", old["version"])
    assert f"+{NEW_PROMPT_LINE}" in shown.stdout
    assert f"--- {old['version']}/prompts/system.md" in shown.stdout
    assert f"+++ {new['version']}/prompts/system.md" in shown.stdout
    # nothing else changed
    assert "tools.py" not in shown.stdout

    as_json = cli.json(
        "release", "show", new["version"], "--project", example_project, "--diff", old["version"]
    )
    assert f"+{NEW_PROMPT_LINE}" in as_json["diff"]
    assert as_json["content_hash"] == new["content_hash"]
    assert as_json["snapshot"]["prompts"]["prompts/system.md"].rstrip().endswith(NEW_PROMPT_LINE)


def test_release_with_explicit_version_name(cli: Cli, example_project: Path) -> None:
    made = cli.json("release", "create", "--project", example_project, "--version", "v1.0")
    assert made == {"version": "v1.0", "content_hash": made["content_hash"], "created": True}
    shown = cli.json("release", "show", "v1.0", "--project", example_project)
    assert shown["version"] == "v1.0"
    assert shown["kind"] == "release"


def test_release_list(cli: Cli, example_project: Path) -> None:
    assert cli.json("release", "list", "--project", example_project) == []
    old = create(cli, example_project)
    edit(example_project / "prompts" / "system.md", "Be warm,", "Be very warm,")
    new = create(cli, example_project)
    listed = cli.json("release", "list", "--project", example_project)
    assert {r["version"] for r in listed} == {old["version"], new["version"]}
    assert {r["content_hash"] for r in listed} == {old["content_hash"], new["content_hash"]}
    assert all(r["kind"] == "release" and r["agent_name"] == "support-agent" for r in listed)
    assert all("snapshot" not in r for r in listed)
    assert "version" in cli("release", "list", "--project", example_project).stdout  # the table view


def test_release_show_unknown_is_a_clean_error(cli: Cli, example_project: Path) -> None:
    result = cli("release", "show", "no-such-release", "--project", example_project, expect=2)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "error" in lines[0]
    assert "no-such-release" in lines[0]
    assert "Traceback" not in result.output


def test_release_show_diff_against_unknown_is_a_clean_error(cli: Cli, example_project: Path) -> None:
    made = create(cli, example_project)
    result = cli(
        "release", "show", made["version"], "--project", example_project, "--diff", "ghost", expect=2
    )
    assert "ghost" in result.stderr
    assert "Traceback" not in result.output


def test_run_with_unknown_release_is_a_clean_error(cli: Cli, example_project: Path) -> None:
    result = cli(
        "run", "--project", example_project, "--user", "u1", "--release", "ghost", "hello there", expect=2
    )
    assert "ghost" in result.stderr
    assert "Traceback" not in result.output


def run_json(cli: Cli, project: Path, task: str, *extra: str) -> dict[str, Any]:
    data: dict[str, Any] = cli.json("run", "--project", project, "--user", "u1", *extra, task)
    return data


def test_a_release_runs_its_own_snapshot_of_the_code(cli: Cli, example_project: Path) -> None:
    old = create(cli, example_project)
    (example_project / "policy.py").write_text(
        "def respond(turn):\n    return 'NEW POLICY ANSWER'\n", encoding="utf-8"
    )
    prompt = example_project / "prompts" / "system.md"
    prompt.write_text(prompt.read_text() + f"\n{NEW_PROMPT_LINE}\n")

    pinned = run_json(cli, example_project, "hello there", "--release", old["version"])
    assert pinned["status"] == "succeeded"
    assert pinned["release_version"] == old["version"]
    assert pinned["output"].startswith(HELP_START)

    current = run_json(cli, example_project, "hello there")
    assert current["status"] == "succeeded"
    assert current["output"] == "NEW POLICY ANSWER"
    assert current["release_version"] != old["version"]
    assert current["release_id"] != pinned["release_id"]

    # and the old release still runs the old code after the new code was loaded in this process
    again = run_json(cli, example_project, "hello there", "--release", old["version"])
    assert again["output"].startswith(HELP_START)


def test_a_release_runs_its_own_snapshot_of_the_prompt(cli: Cli, example_project: Path) -> None:
    # a policy that reports the system prompt's first line, so the prompt in use is visible
    (example_project / "policy.py").write_text(
        textwrap.dedent(
            """\
            def respond(turn):
                system = next(m.content for m in turn.messages if m.role == "system")
                return "PROMPT: " + system.strip().splitlines()[0]
            """
        ),
        encoding="utf-8",
    )
    prompt = example_project / "prompts" / "system.md"
    prompt.write_text("Old instructions line.\n")
    old = create(cli, example_project)
    prompt.write_text("New instructions line.\n")

    pinned = run_json(cli, example_project, "hello", "--release", old["version"])
    assert pinned["release_version"] == old["version"]
    assert pinned["output"] == "PROMPT: Old instructions line."

    current = run_json(cli, example_project, "hello")
    assert current["output"] == "PROMPT: New instructions line."
    assert current["release_version"] != old["version"]


def test_a_run_without_release_reuses_a_matching_named_release(cli: Cli, example_project: Path) -> None:
    made = create(cli, example_project)
    ran = run_json(cli, example_project, "hello there")
    assert ran["release_version"] == made["version"]


def test_working_copy_runs_are_recorded_as_adhoc_releases(cli: Cli, example_project: Path) -> None:
    first = run_json(cli, example_project, "hello there")
    second = run_json(cli, example_project, "hello again")
    assert first["release_version"] == second["release_version"]
    assert cli.json("release", "list", "--project", example_project) == []
    adhoc = cli.json("release", "list", "--project", example_project, "--adhoc")
    assert [r["version"] for r in adhoc] == [first["release_version"]]
    assert adhoc[0]["kind"] == "adhoc"


# --------------------------------------------------------------------------- tether init


def test_init_creates_a_project_that_runs(cli: Cli, tmp_path: Path) -> None:
    target = tmp_path / "my-agent"
    created = cli("init", target)
    assert (target / "tether.toml").is_file()
    assert created.stdout.startswith("created")
    assert (target / "tools.py").is_file() and (target / "prompts" / "system.md").is_file()
    ran = cli.json("run", "--project", target, "--user", "me", "count these words please")
    assert ran["status"] == "succeeded"
    assert "4 words" in ran["output"]
    assert ran["tools_called"] == ["word_count"]
    assert ran["user_id"] == "me"
    assert load_config(target / "tether.toml").agent.name == "my-agent"


def test_init_twice_refuses_to_overwrite(cli: Cli, tmp_path: Path) -> None:
    target = tmp_path / "agent"
    cli("init", target)
    (target / "prompts" / "system.md").write_text("my edited prompt\n")
    result = cli("init", target, expect=2)
    assert "not overwriting anything" in result.stderr
    assert "Traceback" not in result.output
    assert (target / "prompts" / "system.md").read_text() == "my edited prompt\n"


@pytest.mark.parametrize("folder", ["_scratch", "café", "my agent (copy)"])
def test_init_names_the_agent_validly_whatever_the_folder(cli: Cli, tmp_path: Path, folder: str) -> None:
    """The agent name `tether init` derives from the folder must pass tether.toml's own name rule,
    or the new project cannot run at all."""
    target = tmp_path / folder
    cli("init", target)
    load_config(target / "tether.toml")  # raises ConfigError on an invalid agent.name
    ran = cli.json("run", "--project", target, "--user", "me", "one two three")
    assert ran["status"] == "succeeded"
    assert "3 words" in ran["output"]


def test_release_version_name_cannot_be_reused(cli: Cli, example_project: Path) -> None:
    cli("release", "create", "--project", example_project, "--version", "v1")
    edit(example_project / "prompts" / "system.md", "Be warm,", "Be very warm,")
    result = cli("release", "create", "--project", example_project, "--version", "v1", expect=2)
    assert "v1" in result.stderr
    assert "Traceback" not in result.output
    listed = cli.json("release", "list", "--project", example_project)
    assert [r["version"] for r in listed] == ["v1"]


def test_release_show_diff_without_a_name_compares_with_the_previous_release(
    cli: Cli, example_project: Path
) -> None:
    cli("release", "create", "--project", example_project, "--version", "r1")
    prompt = example_project / "prompts" / "system.md"
    prompt.write_text(prompt.read_text() + "\nAlways greet the customer by name.\n")
    made = cli("release", "create", "--project", example_project, "--version", "r2")
    assert "tether release show r2 --diff" in made.output  # it says what to do next
    shown = cli("release", "show", "r2", "--project", example_project, "--diff")
    assert "changes since r1" in shown.output and "greet the customer by name" in shown.output
    named = cli.json("release", "show", "r2", "r1", "--project", example_project, "--diff")
    assert "greet the customer by name" in named["diff"]
    first = cli("release", "show", "r1", "--project", example_project, "--diff", expect=2)
    assert "r1 is the first release" in first.output
