"""Neutralise chat-template control tokens in text the model will read as data.

A tool result that contains `<|im_start|>system` or `[INST]` can make some models (and servers that
render a chat template from text) believe a new turn began. The patterns below cover the families
of control syntax, not a list of three strings: special tokens in `<|...|>` / `<｜...｜>` form, angle
tags with underscores or role names (`<start_of_turn>`, `</s>`, `<tool_call>`), all-caps bracket
tags (`[INST]`, `[/SYS]`, `[TOOL_CALLS]`), `<<SYS>>`, and turn headers at a line start
(`### Instruction:`, `Human:`, `Assistant:`, `system:`). Neutralising swaps the brackets for
look-alike characters, so a human reader still sees what was there but no tokenizer does.
"""

from __future__ import annotations

import re

_ROLE_WORDS = (
    "s|bos|eos|pad|unk|mask|sep|cls|think|system|user|assistant|tool|tools|human|ai|bot|model|"
    "function|functions|ipython|developer|im|turn|message|channel|start|end|instruction|response"
)
_ANGLE = re.compile(
    r"<\s*(?:[|｜][^<>\n]{0,60}?[|｜]\s*>"  # <|im_start|>, <|eot_id|>, <｜begin▁of▁sentence｜>
    r"|/?\s*(?:[A-Za-z]+_[A-Za-z_]+|" + _ROLE_WORDS + r")\s*>"  # <start_of_turn>, </s>, <tool_call>
    r"|<\s*/?\s*[A-Z]{2,10}\s*>>)",  # <<SYS>>, <</SYS>>
    re.IGNORECASE,
)
_BRACKET = re.compile(r"\[\s*/?\s*[A-Z][A-Z_]{1,30}\s*\]")  # [INST], [/INST], [TOOL_CALLS]
_HEADER = re.compile(
    r"^[ \t]*(?:#{2,}[ \t]*(?:instruction|response|system|input|assistant|user)s?\b[ \t]*:?"
    r"|(?:human|assistant|system|user|developer)[ \t]*:)",
    re.IGNORECASE | re.MULTILINE,
)
_HEADS = frozenset({"human", "assistant", "system", "user", "developer", "instruction", "response", "input"})
_SWAP = str.maketrans({"<": "‹", ">": "›", "|": "¦", "｜": "¦", "[": "⟦", "]": "⟧", "#": "＃", ":": "˸"})


def _defang(match: re.Match[str]) -> str:
    return match.group(0).translate(_SWAP)


def neutralise(text: str) -> str:
    """`text` with every control-token look-alike defanged (unchanged when there is none)."""
    if "<" in text:
        text = _ANGLE.sub(_defang, text)
    if "[" in text:
        text = _BRACKET.sub(_defang, text)
    if ":" in text or "#" in text:
        text = _HEADER.sub(_defang, text)
    return text


def has_control_tokens(text: str, words: frozenset[str] | set[str] | None = None) -> bool:
    """Whether `text` holds control syntax; `words` (its lower-cased words) lets a caller skip work."""
    if "<" in text and _ANGLE.search(text):
        return True
    if "[" in text and _BRACKET.search(text):
        return True
    if words is not None and _HEADS.isdisjoint(words):
        return False
    return (":" in text or "#" in text) and _HEADER.search(text) is not None


def control_token_spans(text: str) -> list[tuple[int, int]]:
    """Where the control syntax is (for cutting out the sentences that carry it)."""
    spans: list[tuple[int, int]] = []
    for rx, needed in ((_ANGLE, "<"), (_BRACKET, "["), (_HEADER, ":")):
        if needed in text or (rx is _HEADER and "#" in text):
            spans += [m.span() for m in rx.finditer(text)]
    return spans
