"""Agent projects: read a folder into a content-hashed snapshot, and load an agent from a snapshot.

A snapshot holds every input that changes behaviour (config, prompt files, Python sources and the
tool schemas they declare). The agent that runs is always built from a snapshot, never from the
folder directly, so a release runs the code it was created from even after the folder changes.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import sys
import threading
import traceback
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from tether.agent.code_cache import materialize, sources_digest
from tether.agent.config import ConfigError, ProjectConfig, load_config
from tether.agent.tools import Tool, collect_tools

CONFIG_FILE = "tether.toml"
_SKIPPED_DIRS = {".tether", "data", "evals", "tests", "__pycache__", ".venv", "venv", "node_modules"}


class ProjectSnapshot(BaseModel):
    """Everything that changes an agent's behaviour, as plain data."""

    config: dict[str, Any]
    prompts: dict[str, str]
    sources: dict[str, str]
    tools: list[dict[str, Any]] = Field(default_factory=list)

    @property
    def content_hash(self) -> str:
        return _digest(self.model_dump(mode="json"))

    @property
    def code_hash(self) -> str:
        return sources_digest(self.sources)

    def parsed_config(self) -> ProjectConfig:
        return ProjectConfig.model_validate(self.config)


@dataclass(frozen=True)
class AgentDefinition:
    """A loaded, runnable agent: what the run loop needs from a snapshot."""

    config: ProjectConfig
    instructions: str
    tools: dict[str, Tool]
    package: str

    def resolve(self, reference: str) -> Any:
        """Find `module:attribute` inside the agent's own code (e.g. the scripted policy)."""
        module_name, _, attribute = reference.partition(":")
        if not module_name or not attribute:
            raise ConfigError(f"{reference!r} must be written 'module:attribute'")
        module = importlib.import_module(f"{self.package}.{module_name}")
        try:
            return getattr(module, attribute)
        except AttributeError:
            raise ConfigError(f"{module_name}.py has no {attribute!r}") from None


def _digest(data: Any) -> str:
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _read_sources(root: Path) -> dict[str, str]:
    sources: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIPPED_DIRS and not d.startswith("."))
        for filename in sorted(filenames):
            if filename.endswith(".py"):
                path = Path(dirpath) / filename
                sources[path.relative_to(root).as_posix()] = path.read_text(encoding="utf-8")
    return sources


def snapshot_project(root: Path) -> ProjectSnapshot:
    """Read an agent project folder into a snapshot (importing its code to learn the tool schemas)."""
    root = root.resolve()
    config = load_config(root / CONFIG_FILE)
    prompts: dict[str, str] = {}
    for relative in config.agent.instructions:
        path = (root / relative).resolve()
        if not path.is_file() or root not in path.parents:
            raise ConfigError(
                f"{root / CONFIG_FILE}: instructions file {relative!r} not found in the project"
            )
        prompts[relative] = path.read_text(encoding="utf-8")
    sources = _read_sources(root)
    if f"{config.agent.tools_module.replace('.', '/')}.py" not in sources:
        raise ConfigError(f"{root / CONFIG_FILE}: tools module {config.agent.tools_module!r} not found")
    snapshot = ProjectSnapshot(config=config.model_dump(mode="json"), prompts=prompts, sources=sources)
    load_agent(snapshot, origin=root)  # fails early on unknown enabled_tools or a broken tools module
    agent = load_agent(snapshot, all_tools=True, origin=root)
    snapshot.tools = [agent.tools[name].metadata() for name in sorted(agent.tools)]
    return snapshot


_load_lock = threading.Lock()


def _import_package(snapshot: ProjectSnapshot) -> str:
    package = f"tether_agent_{snapshot.code_hash[:16]}"
    if package not in sys.modules:
        module = types.ModuleType(package)
        module.__path__ = [str(materialize(snapshot.sources))]
        sys.modules[package] = module
    return package


def _where(exc: BaseException, code_dir: Path, origin: Path | None) -> str:
    """The project file and line an import error points at, named as the user knows it.

    The code runs from the code cache, so Python reports cache paths; they are mapped back to the
    project folder (`origin`), or to the path inside the project when the code comes from a stored
    release. Empty when no frame is in the project's code.
    """
    places: list[tuple[str, int | None]] = [
        (frame.filename, frame.lineno) for frame in traceback.extract_tb(exc.__traceback__)
    ]
    if isinstance(exc, SyntaxError) and exc.filename:
        places.append((exc.filename, exc.lineno))
    for filename, line in reversed(places):
        path = Path(filename)
        if code_dir in path.parents:
            relative = path.relative_to(code_dir)
            shown = origin / relative if origin is not None else relative
            return f"{shown}, line {line}" if line else str(shown)
    return ""


def _import_failure(exc: BaseException) -> str:
    if isinstance(exc, SyntaxError):
        return f"{type(exc).__name__}: {exc.msg}" + (f": {exc.text.strip()}" if exc.text else "")
    return f"{type(exc).__name__}: {exc}"


def load_agent(
    snapshot: ProjectSnapshot, *, all_tools: bool = False, origin: Path | None = None
) -> AgentDefinition:
    """Build the runnable agent a snapshot describes. Only enabled tools unless `all_tools`.

    `origin` is the project folder the snapshot was read from, used to name files in errors.
    """
    config = snapshot.parsed_config()
    with _load_lock:
        package = _import_package(snapshot)
        try:
            module = importlib.import_module(f"{package}.{config.agent.tools_module}")
        except ConfigError:
            raise
        except Exception as exc:
            where = _where(exc, Path(next(iter(sys.modules[package].__path__))).resolve(), origin)
            raise ConfigError(
                f"importing tools module {config.agent.tools_module!r} failed"
                + (f" at {where}" if where else "")
                + f": {_import_failure(exc)}"
            ) from exc
    tools = collect_tools(module)
    if not all_tools and config.agent.enabled_tools is not None:
        unknown = sorted(set(config.agent.enabled_tools) - tools.keys())
        if unknown:
            raise ConfigError(f"enabled_tools names tools that do not exist: {', '.join(unknown)}")
        tools = {name: tools[name] for name in config.agent.enabled_tools}
    instructions = "\n\n".join(snapshot.prompts[path].strip() for path in config.agent.instructions)
    return AgentDefinition(config=config, instructions=instructions, tools=tools, package=package)
