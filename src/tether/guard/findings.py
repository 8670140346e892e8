"""What the personal-data detectors report: a kind and a span of the scanned text."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Finding:
    """One value found; only detectors that matched create one (candidates stay plain ints)."""

    kind: str
    start: int
    end: int
    value: str


def bounded(text: str, start: int, end: int) -> bool:
    """The span is a whole token: no letter or digit glued to either side."""
    return (start == 0 or not text[start - 1].isalnum()) and (end == len(text) or not text[end].isalnum())


_SPLIT = str.maketrans({chr(c): " " for c in range(128) if not chr(c).isalnum()})


def words_of(lowered: str) -> list[str]:
    """The words of lowercased text, ASCII punctuation splitting them (str methods only, in C)."""
    return lowered.translate(_SPLIT).split()


def vocabulary(lowered: str, words: list[str] | None = None) -> set[str]:
    """The distinct words of lowercased text. Keyword detectors test this set once instead of
    searching the text for each of their keywords."""
    return set(words_of(lowered) if words is None else words)
