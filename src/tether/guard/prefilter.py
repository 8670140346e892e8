"""Regular expressions that jump to where their leading word can start before matching.

The detectors' patterns begin with `\\b(word|word|...)`: Python's engine cannot derive a first-
character set from a pattern that opens with `\\b`, so it tries the whole pattern at every position
of the text. The same pattern without that `\\b` opens with the alternation, whose first characters
the engine does scan for in C. A match of the full pattern is a match of the shorter one at the
same place, so the shorter one's first match is where the full pattern needs to start looking:
same matches, far fewer attempts. (`\\b` still sees the character before `pos`, so searching from
there is the same as searching the whole text.)
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator

_LEADING_BOUNDARY = r"\b("


class Prefiltered:
    """A compiled pattern with `search` and `finditer` that skip ahead with its boundary-less form."""

    __slots__ = ("_hint", "pattern")

    def __init__(self, pattern: str, flags: int = 0) -> None:
        self.pattern = re.compile(pattern, flags)
        self._hint = (
            re.compile(pattern[len(r"\b") :], flags) if pattern.startswith(_LEADING_BOUNDARY) else None
        )

    def search(self, text: str, pos: int = 0, endpos: int = sys.maxsize) -> re.Match[str] | None:
        if self._hint is not None:
            hint = self._hint.search(text, pos, endpos)
            if hint is None:
                return None
            pos = hint.start()
        return self.pattern.search(text, pos, endpos)

    def finditer(self, text: str) -> Iterator[re.Match[str]]:
        """Non-overlapping matches left to right, like `re.Pattern.finditer` (the patterns here
        never match the empty string; one that did would move on by a character)."""
        pos = 0
        while (found := self.search(text, pos)) is not None:
            yield found
            pos = found.end() if found.end() > found.start() else found.end() + 1
