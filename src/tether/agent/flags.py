"""How an agent sees the feature flags its run was given: tool switches and prompt templates.

The flags themselves are decided by `tether.rollout.flags` when the run is submitted; this module
only reads the values stored on the run, so a run behaves the same on every resume.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

FlagValue = bool | str
TOOL_FLAG_PREFIX = "tool."
"""A bool flag named `tool.<name>`: when it evaluates to false for a run, that tool is not offered."""

_USES_FLAGS = re.compile(r"\{[{%][^}]*\bflags\b")
"""A prompt that mentions `flags` inside a template tag. Other prompts are used verbatim, so a prompt
that happens to contain `{{` (a JSON example, say) is never mangled."""
_ENV = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)


class _Flags(dict[str, FlagValue]):
    """Template access to flags: `flags.name` or `flags['tool.x']`; a flag the run lacks is false."""

    def __getattr__(self, name: str) -> FlagValue:
        return self.get(name, False)

    def __missing__(self, key: str) -> FlagValue:
        return False


def tool_switched_off(flags: Mapping[str, FlagValue] | None, tool: str) -> bool:
    """True when the run's flags turn this tool off for it (a missing flag leaves the tool on)."""
    return bool(flags) and flags.get(TOOL_FLAG_PREFIX + tool) is False  # type: ignore[union-attr]


def render_instructions(text: str, flags: Mapping[str, FlagValue] | None) -> str:
    """The system prompt for one run: a prompt using `{{ flags.x }}` or `{% if flags.x %}` is a
    Jinja2 template (sandboxed) rendered with the run's flags; any other prompt is returned as is."""
    if not _USES_FLAGS.search(text):
        return text
    try:
        return _ENV.from_string(text).render(flags=_Flags(flags or {}))
    except TemplateError as exc:
        raise ValueError(f"the prompt template cannot be rendered with the run's flags: {exc}") from exc
