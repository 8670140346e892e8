"""Plain-text helpers shared by the tools and the scripted policy: crude term extraction."""

from __future__ import annotations

import re

_WORD = re.compile(r"[a-z0-9]+")
_STOPWORD_TEXT = (
    "a an and are as at be by can do does for from have how i if in is it its me my of on or our "
    "please the this to what when where which who why will with you your"
)
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())


def terms(text: str) -> list[str]:
    """Lower-case content words, with a crude plural/verb-ending strip so 'returns' finds 'return'."""
    return [_stem(word) for word in _WORD.findall(text.lower()) if word not in _STOPWORDS]


def _stem(word: str) -> str:
    if word.endswith(("sses", "xes", "ches", "shes")) and len(word) > 4:
        return word[:-2]  # addresses -> address, boxes -> box
    for suffix in ("ing", "ies", "s", "ed"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix) and not word.endswith(("ss", "us")):
            word = word[: -len(suffix)] + ("y" if suffix == "ies" else "")
            if suffix in ("ing", "ed") and word[-1] == word[-2]:
                word = word[:-1]  # shipped/shipping -> ship
            return word
    return word
