"""Hidden text in untrusted data: what a model can read that a keyword filter would not see.

An attacker can write the instruction so that the plain text holds no trigger word, yet a capable
model still reads it: encoded (base64, hex digits without separators, URL-encoding, rot13 when the text says so), spelled with
look-alike letters from other scripts (Cyrillic "а", Greek "ο"), split by zero-width characters,
written in invisible Unicode tag characters, or hidden from the human reader in an HTML/markdown
comment or a `display:none` element. `fold` undoes the letter-level tricks in place; `revealed`
returns the decoded runs, each with its span in the original text, for the instruction detector to
judge like any other text.

Cost stays bounded: only plausible runs are decoded (long enough, right alphabet, at most
`MAX_RUNS` of them, each cut to `MAX_RUN_CHARS`), and a decoded run counts only if it reads as
text (printable, with spaces). Text without any candidate costs one regular-expression pass.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import unquote

MAX_RUNS = 8
MAX_RUN_CHARS = 4_000

_ZERO_WIDTH = re.compile("[\u00ad\u034f\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
_TAGS = re.compile("[\U000e0000-\U000e007f]+")
# Letters of other scripts that look like Latin ones (the common confusables; NFKC leaves them).
_CONFUSABLES = str.maketrans(
    {
        **dict.fromkeys("аА", "a"),
        **dict.fromkeys("вВ", "b"),
        **dict.fromkeys("сС", "c"),
        **dict.fromkeys("еЕёЁ", "e"),
        **dict.fromkeys("һҺ", "h"),
        **dict.fromkeys("іІїЇ", "i"),
        **dict.fromkeys("јЈ", "j"),
        **dict.fromkeys("кК", "k"),
        **dict.fromkeys("мМ", "m"),
        **dict.fromkeys("нН", "h"),
        **dict.fromkeys("оО", "o"),
        **dict.fromkeys("рР", "p"),
        **dict.fromkeys("ѕЅ", "s"),
        **dict.fromkeys("тТ", "t"),
        **dict.fromkeys("уУ", "y"),
        **dict.fromkeys("хХ", "x"),
        **dict.fromkeys("ԁ", "d"),
        **dict.fromkeys("ԛ", "q"),
        **dict.fromkeys("ԝ", "w"),
        **dict.fromkeys("αΑ", "a"),
        **dict.fromkeys("βΒ", "b"),
        **dict.fromkeys("εΕ", "e"),
        **dict.fromkeys("ηΗ", "h"),
        **dict.fromkeys("ιΙ", "i"),
        **dict.fromkeys("κΚ", "k"),
        **dict.fromkeys("μΜ", "m"),
        **dict.fromkeys("νΝ", "n"),
        **dict.fromkeys("οΟ", "o"),
        **dict.fromkeys("ρΡ", "p"),
        **dict.fromkeys("τΤ", "t"),
        **dict.fromkeys("υΥ", "u"),
        **dict.fromkeys("χΧ", "x"),
        **dict.fromkeys("ζΖ", "z"),
        **dict.fromkeys("ı", "i"),
        **dict.fromkeys("ɡ", "g"),
        **dict.fromkeys("ℓ", "l"),
    }
)
_ENCODED = re.compile(r"[A-Za-z0-9+/_-]{24,}={0,2}")
_ENCODED_CLASS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/_-"
_ENCODED_MARKS = bytes(ord("a") if c in _ENCODED_CLASS else ord(" ") for c in range(256))
"""Bytes of `_ENCODED`'s class as `a`, the rest as a space: its minimum run is then a substring test."""
_ENCODED_RUN = b"a" * 24


def _may_hold_encoded(text: str) -> bool:
    """False when `_ENCODED` cannot match (no 24 characters of its class in a row): for ASCII text a
    byte translation and a substring search, both in C, instead of the regex trying every position."""
    if not text.isascii():
        return True
    return _ENCODED_RUN in text.encode("ascii").translate(_ENCODED_MARKS)


_HEX_DIGITS = re.compile(r"[0-9A-Fa-f]+")
_PERCENT = re.compile(r"(?:%[0-9A-Fa-f]{2}|[A-Za-z0-9._~+-])*(?:%[0-9A-Fa-f]{2}[A-Za-z0-9._~+-]*){4,}")
_SENTENCE = re.compile(r"[^.!?\n\"]+[.!?]*")
_ROT13_NAMED = re.compile(r"\brot[\s-]?13\b|\bcaesar\b", re.IGNORECASE)
_COMMENT = re.compile(r"<!--(.{1,2000}?)-->|^\s*\[//\]:\s*#\s*\((.{1,2000}?)\)\s*$", re.DOTALL | re.MULTILINE)
_INVISIBLE_STYLE = re.compile(
    r"<(\w+)[^>]{0,200}style\s*=\s*[\"'][^\"']{0,200}"
    r"(?:display\s*:\s*none|visibility\s*:\s*hidden|font-size\s*:\s*0|opacity\s*:\s*0(?![.\d]))"
    r"[^>]{0,200}>(.{1,2000}?)</\1\s*>",
    re.IGNORECASE | re.DOTALL,
)


_JSON_ESCAPE = re.compile(r"\\u(d[89ab][0-9a-f]{2})\\u(d[c-f][0-9a-f]{2})|\\u([0-9a-f]{4})", re.IGNORECASE)


def _unescape(match: re.Match[str]) -> str:
    if match.group(3) is not None:
        return chr(int(match.group(3), 16))
    high, low = int(match.group(1), 16), int(match.group(2), 16)
    return chr(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))


@dataclass(frozen=True)
class Revealed:
    """Text a model can read in `text[start:end]` that is not plainly written there."""

    start: int
    end: int
    text: str
    how: str
    """base64, hex, url-encoded, rot13, tag characters, comment, invisible element."""


def fold(text: str) -> str:
    """Letter-level tricks undone: NFKC, zero-width and tag characters dropped, look-alikes mapped.

    Used on data for matching only, never shown to anyone. ASCII text is returned as it is.
    """
    if "\\u" in text:  # JSON rendered with ASCII escapes: a model reads the characters they stand for
        text = _JSON_ESCAPE.sub(_unescape, text)
    if text.isascii():
        return text
    folded = unicodedata.normalize("NFKC", text)
    folded = _TAGS.sub("", _ZERO_WIDTH.sub("", folded))
    return folded.translate(_CONFUSABLES)


def fold_escapes(text: str) -> str:
    """JSON `\\uXXXX` escapes decoded (offsets move; used only where they need not hold)."""
    return _JSON_ESCAPE.sub(_unescape, text) if "\\u" in text else text


def _readable(decoded: str) -> bool:
    """Whether decoded bytes read as words (not random binary that happened to decode)."""
    if len(decoded) < 8 or " " not in decoded:
        return False
    printable = sum(1 for c in decoded if c.isprintable() or c in "\n\t")
    letters = sum(1 for c in decoded if c.isalpha())
    return printable >= 0.95 * len(decoded) and letters >= 0.5 * len(decoded)


def _base64(run: str) -> str | None:
    run = run[:MAX_RUN_CHARS]
    body = run.rstrip("=")
    padded = body[: len(body) - len(body) % 4] if len(body) % 4 == 1 else body
    padded += "=" * (-len(padded) % 4)
    try:
        raw = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
        return raw.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def _hex(run: str) -> str | None:
    digits = run[:MAX_RUN_CHARS]
    try:
        return bytes.fromhex(digits[: len(digits) - len(digits) % 2]).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None


def revealed(text: str, *, encoded: bool = True) -> list[Revealed]:
    """The decoded runs and hidden passages of `text` that read as text (at most `MAX_RUNS`).

    `encoded=False` skips the base64 and hex decoders (the caller knows no word is long enough)."""
    found: list[Revealed] = []

    def add(start: int, end: int, decoded: str | None, how: str) -> None:
        if decoded is not None and len(found) < MAX_RUNS and _readable(decoded):
            found.append(Revealed(start, end, decoded, how))

    if not text.isascii() or "\\udb40" in text:
        plain = fold_escapes(text)
        for tags in _TAGS.finditer(plain):
            hidden = "".join(chr(ord(c) - 0xE0000) for c in tags.group(0))
            where = tags.span() if plain is text else (0, len(text))  # escapes moved the offsets
            add(*where, hidden, "tag characters")
    if encoded and _may_hold_encoded(
        text
    ):  # one pass finds both: a long run of hex digits is hex, any other long run base64
        for run in _ENCODED.finditer(text):
            token = run.group(0)
            if len(token) >= 32 and _HEX_DIGITS.fullmatch(token):
                add(run.start(), run.end(), _hex(token), "hex")
            elif any(c.isdigit() or c in "+/=" for c in token) or token != token.lower():
                add(run.start(), run.end(), _base64(token), "base64")
    if text.count("%") >= 4:
        for run in _PERCENT.finditer(text):
            add(
                run.start(), run.end(), unquote(run.group(0)[:MAX_RUN_CHARS]).replace("+", " "), "url-encoded"
            )
    if ("rot" in text or "ROT" in text or "Rot" in text or "aesar" in text) and _ROT13_NAMED.search(text):
        decoded = codecs.decode(text[:MAX_RUN_CHARS], "rot13")  # letters map one to one: offsets hold
        for sentence in _SENTENCE.finditer(decoded):
            add(sentence.start(), sentence.end(), sentence.group(0), "rot13")
    if "<!--" in text or "[//]:" in text:
        for comment in _COMMENT.finditer(text):
            inner = comment.group(1) if comment.group(1) is not None else comment.group(2)
            add(comment.start(), comment.end(), inner.strip(), "comment")
    if "style" in text and "<" in text:
        for element in _INVISIBLE_STYLE.finditer(text):
            add(element.start(), element.end(), element.group(2).strip(), "invisible element")
    return found
