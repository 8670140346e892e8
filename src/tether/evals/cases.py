"""Eval suites on disk: YAML or JSONL files in a project's `evals/` folder, read into checked cases.

A malformed suite fails with the file, the line and the reason, because the person who has to fix
it is looking at that file in an editor.
"""

from __future__ import annotations

import json
import re
from enum import StrEnum
from pathlib import Path
from typing import Any

from jsonschema import SchemaError
from jsonschema.validators import validator_for
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from tether.store.records import RunStatus

EVALS_DIR = "evals"
SUITE_SUFFIXES = (".yaml", ".yml", ".jsonl")
DEFAULT_USER = "eval-user"


class Category(StrEnum):
    FUNCTIONAL = "functional"
    TOOL_USAGE = "tool_usage"
    SAFETY = "safety"
    LATENCY = "latency"
    COST = "cost"
    REGRESSION = "regression"


class SuiteError(ValueError):
    """A suite file is malformed; the message names the file, the line and the reason."""

    def __init__(self, path: Path, line: int | None, reason: str) -> None:
        self.path = path
        self.line = line
        self.reason = reason
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {reason}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Turn(_Strict):
    role: str = Field(pattern="^(user|assistant)$")
    content: str


class ToolExpectation(_Strict):
    name: str = Field(min_length=1)
    arguments: dict[str, Any] = Field(default_factory=dict)
    """A subset match: every key given must be in the call's arguments with an equal value."""


class JudgeExpectation(_Strict):
    rubric: str = Field(min_length=1)
    min_score: float = Field(default=0.7, ge=0, le=1)


class Expectations(_Strict):
    """Every expectation given must hold (AND)."""

    status: list[RunStatus] | None = None
    output_contains: list[str] = Field(default_factory=list)
    output_not_contains: list[str] = Field(default_factory=list)
    output_regex: str | None = None
    output_exact: str | None = None
    output_schema: dict[str, Any] | None = None
    tools_called: list[ToolExpectation] = Field(default_factory=list)
    tools_not_called: list[str] = Field(default_factory=list)
    tool_order: list[str] = Field(default_factory=list)
    max_steps: int | None = Field(default=None, ge=0)
    max_latency_ms: float | None = Field(default=None, gt=0)
    max_cost_usd: float | None = Field(default=None, ge=0)
    judge: JudgeExpectation | None = None
    python: str | None = Field(default=None, pattern=r"^[\w.]+:\w+$")

    @field_validator("status", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator(
        "output_contains", "output_not_contains", "tools_not_called", "tool_order", mode="before"
    )
    @classmethod
    def _string_or_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("tools_called", mode="before")
    @classmethod
    def _names_or_objects(cls, value: Any) -> Any:
        items = [value] if isinstance(value, str | dict) else value
        if not isinstance(items, list):
            return value
        return [{"name": item} if isinstance(item, str) else item for item in items]

    @field_validator("output_regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return value

    @field_validator("output_schema")
    @classmethod
    def _valid_schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            try:
                validator_for(value).check_schema(value)
            except SchemaError as exc:
                raise ValueError(f"not a valid JSON schema: {exc.message}") from None
        return value

    def is_empty(self) -> bool:
        return self == Expectations()


class Case(_Strict):
    id: str = Field(min_length=1, max_length=200, pattern=r"^[\w.:-]+$")
    input: str = Field(min_length=1)
    user: str = Field(default=DEFAULT_USER, min_length=1)
    history: list[Turn] = Field(default_factory=list)
    category: Category = Category.FUNCTIONAL
    p0: bool = False
    tags: list[str] = Field(default_factory=list)
    description: str | None = None
    expect: Expectations

    @field_validator("input")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the input is blank")
        return value

    @field_validator("expect")
    @classmethod
    def _expects_something(cls, value: Expectations) -> Expectations:
        if value.is_empty():
            raise ValueError("lists no expectation; a case must check something")
        return value

    @field_validator("history")
    @classmethod
    def _alternates(cls, value: list[Turn]) -> list[Turn]:
        previous = "assistant"
        for turn in value:
            if turn.role == "assistant" and previous == "assistant":
                raise ValueError("an assistant turn must follow a user turn")
            previous = turn.role
        return value

    @property
    def turns(self) -> int:
        """User turns in the conversation, this one included (1 for a single-turn case)."""
        return 1 + sum(1 for turn in self.history if turn.role == "user")


class Suite(BaseModel):
    name: str
    path: Path
    cases: list[Case]


# --------------------------------------------------------------------------- loading


def suite_files(project: Path) -> dict[str, Path]:
    """The project's suites by name (file stem); two files with one stem are an error."""
    folder = project / EVALS_DIR
    found: dict[str, Path] = {}
    if not folder.is_dir():
        return found
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix in SUITE_SUFFIXES:
            if path.stem in found:
                raise SuiteError(
                    path, None, f"suite {path.stem!r} is also defined in {found[path.stem].name}"
                )
            found[path.stem] = path
    return found


def load_suites(project: Path, names: list[str] | None = None) -> list[Suite]:
    """Load the named suites (all of them when `names` is empty) from the project's `evals/`."""
    files = suite_files(project)
    if not files:
        raise SuiteError(project / EVALS_DIR, None, "no suites here (add <suite>.yaml or <suite>.jsonl)")
    if names:
        unknown = [name for name in names if name not in files]
        if unknown:
            raise SuiteError(
                project / EVALS_DIR,
                None,
                f"no suite named {', '.join(unknown)}; suites: {', '.join(files)}",
            )
        files = {name: files[name] for name in names}
    return [load_suite(path) for path in files.values()]


def load_suite(path: Path) -> Suite:
    if not path.is_file():
        raise SuiteError(path, None, "file not found")
    text = path.read_text(encoding="utf-8")
    located = _read_jsonl(path, text) if path.suffix == ".jsonl" else _read_yaml(path, text)
    cases: list[Case] = []
    seen: dict[str, int | None] = {}
    for raw, line, locate in located:
        try:
            case = Case.model_validate(raw)
        except ValidationError as exc:
            error = exc.errors()[0]
            loc = [part for part in error["loc"] if not isinstance(part, str) or part != "__root__"]
            field = ".".join(str(part) for part in loc)
            message = str(error["msg"]).removeprefix("Value error, ")
            reason = f"{field}: {message}" if field else message
            raise SuiteError(path, locate(loc) or line, f"case {_case_name(raw)}: {reason}") from None
        if case.id in seen:
            raise SuiteError(path, line, f"duplicate case id {case.id!r} (first on line {seen[case.id]})")
        seen[case.id] = line
        cases.append(case)
    if not cases:
        raise SuiteError(path, 1, "the suite has no cases")
    return Suite(name=path.stem, path=path, cases=cases)


def _case_name(raw: Any) -> str:
    if isinstance(raw, dict) and isinstance(raw.get("id"), str):
        return repr(raw["id"])
    return "(no id)"


class _Locator:
    """Finds the line of a path (e.g. `expect.tools_called.0.name`) inside a YAML node."""

    def __init__(self, node: Any, line: int) -> None:
        self.node = node
        self.line = line

    def __call__(self, loc: list[str | int]) -> int:
        node, line = self.node, self.line
        for part in loc:
            if isinstance(node, CommentedMap) and part in node:
                line = node.lc.key(part)[0] + 1
                node = node[part]
            elif isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
                line = node.lc.item(part)[0] + 1
                node = node[part]
            else:
                break
        return line


_Located = list[tuple[Any, int, Any]]


def _read_yaml(path: Path, text: str) -> _Located:
    try:
        document = YAML(typ="rt", pure=True).load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise SuiteError(path, line, f"not valid YAML: {exc.problem or exc.context}") from None
    if not isinstance(document, CommentedMap) or "cases" not in document:
        raise SuiteError(path, 1, "a YAML suite is a mapping with a `cases:` list")
    unknown = [key for key in document if key not in ("cases", "description")]
    if unknown:
        raise SuiteError(path, document.lc.key(unknown[0])[0] + 1, f"unknown key {unknown[0]!r}")
    cases = document["cases"]
    cases_line = document.lc.key("cases")[0] + 1
    if not isinstance(cases, CommentedSeq):
        raise SuiteError(path, cases_line, "`cases:` must be a list of cases")
    located: _Located = []
    for index, raw in enumerate(cases):
        line = cases.lc.item(index)[0] + 1
        if not isinstance(raw, CommentedMap):
            raise SuiteError(path, line, f"case #{index + 1} is not a mapping")
        located.append((_plain(raw), line, _Locator(raw, line)))
    return located


def _read_jsonl(path: Path, text: str) -> _Located:
    located: _Located = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SuiteError(path, number, f"not valid JSON: {exc.msg} (column {exc.colno})") from None
        if not isinstance(raw, dict):
            raise SuiteError(path, number, "each line must be one JSON object (a case)")
        located.append((raw, number, lambda loc, at=number: at))
    return located


def _plain(node: Any) -> Any:
    """ruamel's round-trip containers as plain dicts and lists (pydantic wants the plain kinds)."""
    if isinstance(node, dict):
        return {str(key): _plain(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_plain(value) for value in node]
    return node
