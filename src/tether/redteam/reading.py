"""How the compromised model reads text: undo the cheap disguises a real model reads straight through.

A real model reads JSON with escaped quotes, text whose spaces were replaced by a marker character
(datamarking), base64 blobs, and words with invisible or look-alike characters in them. If the
compromised model could not, a guard would look effective only because the stand-in model is
blind; so it reads through all of them, the way a capable model would.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import json
import re
import unicodedata
from collections import Counter
from typing import Any
from urllib.parse import unquote

_MARK_EXEMPT = set("\"',:;{}[]().-_/\\!?@#$%&*+=<>|`~\n\r\t ")
_BASE64 = re.compile(r"[A-Za-z0-9+/]{24,}={0,2}")
_MAX_BLOBS = 20
_HEX = re.compile(r"(?:[0-9A-Fa-f]{2}[\s:]?){16,}")
_PERCENT = re.compile(r"\S*(?:%[0-9A-Fa-f]{2}\S*){4,}")
_ROT13 = re.compile(r"\brot[\s-]?13\b", re.IGNORECASE)
_TAG = re.compile("[\U000e0020-\U000e007e]")


def strings_of(value: Any) -> list[str]:
    """Every string inside a JSON value, depth first (keys included: an attacker may use one)."""
    found: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            found.append(item)
        elif isinstance(item, dict):
            for key, inner in item.items():
                found.append(str(key))
                stack.append(inner)
        elif isinstance(item, list):
            stack.extend(reversed(item))
    return found


def unmark(text: str) -> str:
    """Replace a datamarking character (one unusual character standing in for spaces) by spaces."""
    spaces = text.count(" ")
    counts = Counter(ch for ch in text if not ch.isalnum() and ch not in _MARK_EXEMPT)
    for mark, count in counts.most_common(3):
        if count >= 5 and count >= spaces:
            text = text.replace(mark, " ")
    return text


def decoded_blobs(text: str) -> list[str]:
    """Printable UTF-8 text hidden in base64 runs of the text."""
    found: list[str] = []
    for match in _BASE64.finditer(text):
        if len(found) >= _MAX_BLOBS:
            break
        blob = match.group(0)
        try:
            raw = base64.b64decode(blob + "=" * (-len(blob) % 4), validate=True)
            decoded = raw.decode("utf-8")
        except (binascii.Error, ValueError):
            continue
        if decoded and sum(ch.isprintable() or ch.isspace() for ch in decoded) >= 0.95 * len(decoded):
            found.append(decoded)
    return found


_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"), None)
_CONFUSABLES = str.maketrans(
    "\u0430\u0435\u043e\u0440\u0441\u0443\u0445\u0456\u0458\u0455\u0410\u0412\u0415\u041a\u041c\u041d"
    "\u041e\u0420\u0421\u0422\u0425\u0406\u03bf\u03b1\u0391\u039f",
    "aeopcyxijsABEKMHOPCTXIoaAO",
)
"""Cyrillic and Greek letters that look Latin: a reader sees "ign\u043ere" (Cyrillic o) as "ignore"."""


def plain(text: str) -> str:
    """Compatibility forms folded (NFKC), invisible characters dropped, look-alike letters mapped,
    invisible Unicode tag characters read as the ASCII letters they encode."""
    text = unicodedata.normalize("NFKC", text).translate(_ZERO_WIDTH).translate(_CONFUSABLES)
    if not text.isascii():
        text = _TAG.sub(lambda m: chr(ord(m.group(0)) - 0xE0000), text)
    return text


def _encoded(text: str) -> list[str]:
    """Hex runs, URL-encoded runs and (when the text names it) rot13, decoded: a model reads them."""
    found: list[str] = []
    for match in _HEX.finditer(text):
        try:
            found.append(bytes.fromhex(re.sub(r"[\s:]", "", match.group(0))).decode("utf-8"))
        except ValueError:
            continue
    if "%" in text:
        found += [unquote(m.group(0)) for m in _PERCENT.finditer(text)]
    if _ROT13.search(text):
        found.append(codecs.decode(text, "rot13"))
    return [f for f in found[:_MAX_BLOBS] if f and sum(c.isprintable() for c in f) >= 0.95 * len(f)]


def readable(text: str) -> str:
    """The text as a capable model would understand it: JSON strings unescaped, marks and base64 undone."""
    try:
        parts = strings_of(json.loads(text))  # the values as written, without JSON's escaping
    except ValueError:
        parts = [text]
    parts = [unmark(plain(part)) for part in parts]
    for part in list(parts):
        parts.extend(unmark(blob) for blob in decoded_blobs(part))
        parts.extend(plain(blob) for blob in _encoded(part))
    return "\n".join(parts)
