"""Exfiltration: links, images and URLs in an answer that point outside the allow-list.

A model turned by injected text can leak data by rendering a markdown image whose URL carries the
data (the browser fetches it without a click), or by handing the user a link. Found here: markdown
images and links, reference-style link definitions, HTML `src`/`href`, autolinks, bare URLs with any
scheme, `www.` hosts, and the common obfuscations: `hxxp`, `h**p`, `[.]`, `(.)`, `[dot]`, ` dot `,
spaces around dots, and host names followed by a path. E-mail addresses are personal data, not
links (see `pii.py`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

_DOT = r"(?:\s*(?:\.|\[\.\]|\(\.\)|\{\.\}|\[dot\]|\(dot\)|\{dot\})\s*|\s+dot\s+)"
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST = rf"{_LABEL}(?:{_DOT}{_LABEL})+"
_SCHEME = r"(?:h(?:tt|xx|\*\*|XX|TT)ps?|ftp|wss?|file|data|javascript)\s*(?::|\[:\]|\(:\))\s*//"
_MARKDOWN = re.compile(r"\]\(\s*<?(?P<md>[^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")  # ![alt](url), [text](url)
_REFERENCE = re.compile(r"^\s*\[[^\]\n]+\]:\s*<?(?P<ref>\S+?)>?\s*$", re.MULTILINE)  # [ref]: url
_ATTRIBUTE = re.compile(
    r"(?:src|href|action|srcset|background)\s*=\s*[\"']?(?P<attr>[^\"'\s>]+)", re.IGNORECASE
)
_SCHEME_BEFORE = re.compile(r"(?:h(?:tt|xx|\*\*)ps?|ftp|wss?|file)\s*(?::|\[:\]|\(:\))\s*$", re.IGNORECASE)
_AFTER_SLASHES = re.compile(r"(?:\[\.\]|\[dot\]|\[:\]|[^\s<>\"')\]])+")
_INLINE_SCHEME = re.compile(r"(?:data|javascript):[^\s<>\"')\]]+", re.IGNORECASE)
_WWW = re.compile(rf"www{_DOT}{_HOST}(?:/[^\s<>\"')\]]*)?", re.IGNORECASE)
_HOST_BEFORE_SLASH = re.compile(rf"(?<![@\w.]){_HOST}$", re.IGNORECASE)
_PATH = re.compile(r"/[^\s<>\"')\]]*")
_OBFUSCATED = re.compile(
    rf"(?<![@\w.]){_LABEL}(?:\s*(?:\[\.\]|\(\.\)|\{{\.\}}|\[dot\]|\(dot\)|\{{dot\}})\s*|\s+dot\s+){_LABEL}"
    rf"(?:{_DOT}{_LABEL})*",
    re.IGNORECASE,
)
_OBFUSCATION_MARKS = ("[.]", "(.)", "{.}", "[dot]", "(dot)", "{dot}", " dot ")
_TLDS = frozenset(
    [
        "com",
        "net",
        "org",
        "io",
        "co",
        "ai",
        "app",
        "dev",
        "info",
        "biz",
        "me",
        "xyz",
        "site",
        "online",
        "top",
        "ru",
        "cn",
        "de",
        "uk",
        "fr",
        "us",
        "ly",
        "gg",
        "to",
        "cc",
        "tk",
        "ml",
        "ga",
        "cf",
        "gq",
        "pw",
        "ws",
        "link",
        "click",
        "live",
        "shop",
        "store",
        "cloud",
        "page",
        "sh",
        "so",
        "tv",
        "eu",
        "nl",
        "es",
        "it",
        "pl",
        "br",
        "in",
        "jp",
        "kr",
        "au",
        "ca",
        "ch",
    ]
)
REMOVED = "[link removed by Tether]"


@dataclass(frozen=True)
class Link:
    start: int
    end: int
    host: str
    text: str


def host_of(raw: str) -> str:
    """The lower-case host a (possibly obfuscated) URL or host text points at ('' if none)."""
    text = re.sub(
        r"\s*(?:\[\.\]|\(\.\)|\{\.\}|\[dot\]|\(dot\)|\{dot\})\s*|\s+dot\s+|\s*\.\s*", ".", raw.strip()
    )
    text = re.sub(r"^h(?:xx|\*\*|tt)p", "http", text, flags=re.IGNORECASE)
    text = re.sub(r"\[:\]|\(:\)", ":", text)
    if text.lower().startswith(("data:", "javascript:")):
        return text.split(":", 1)[0].lower()
    if "//" not in text.split("/", 1)[0] and not re.match(r"^[a-z][a-z0-9+.-]*://", text, re.IGNORECASE):
        text = "//" + text
    try:
        host = urlsplit(text).hostname or ""
    except ValueError:
        return ""
    return host.strip(".").lower()


def _candidates(text: str) -> list[tuple[int, int, str, str]]:
    """(start, end, kind, raw URL) of everything link-like; each kind only looked for when a cheap
    substring test says it can be there, so plain text costs a few substring searches."""
    found: list[tuple[int, int, str, str]] = []
    lowered = text.lower()
    if "](" in text:
        for m in _MARKDOWN.finditer(text):
            opening = text.rfind("[", 0, m.start())
            start = opening - 1 if opening > 0 and text[opening - 1] == "!" else max(opening, m.start())
            found.append((start, m.end(), "md", m.group("md")))
    if "]:" in text:
        found += [(m.start(), m.end(), "ref", m.group("ref")) for m in _REFERENCE.finditer(text)]
    if "src" in lowered or "href" in lowered or "action" in lowered or "background" in lowered:
        found += [(m.start(), m.end(), "attr", m.group("attr")) for m in _ATTRIBUTE.finditer(text)]
    for slashes in re.finditer("//", text):
        scheme = _SCHEME_BEFORE.search(text, max(0, slashes.start() - 14), slashes.start())
        rest = _AFTER_SLASHES.match(text, slashes.end())
        if scheme is not None and rest is not None:
            found.append((scheme.start(), rest.end(), "url", text[scheme.start() : rest.end()]))
    if "data:" in lowered or "javascript:" in lowered:
        found += [(m.start(), m.end(), "url", m.group(0)) for m in _INLINE_SCHEME.finditer(text)]
    if "www" in lowered:
        found += [(m.start(), m.end(), "www", m.group(0)) for m in _WWW.finditer(text)]
    for slash in re.finditer("/", text):
        at = slash.start()
        if at == 0 or text[at - 1] in "/:" or not text[at - 1].isalnum():
            continue  # a host ends in a letter or digit right before the slash
        window = text[max(0, at - 120) : at]
        if "." not in window and "dot" not in window.lower():
            continue  # every host has a dot between labels (written or spelled out)
        host = _HOST_BEFORE_SLASH.search(text, max(0, at - 120), at)
        if host is not None:
            path = _PATH.match(text, slash.start())
            end = path.end() if path is not None else slash.end()
            found.append((host.start(), end, "path", text[host.start() : end]))
    if any(mark in lowered for mark in _OBFUSCATION_MARKS):
        found += [(m.start(), m.end(), "obf", m.group(0)) for m in _OBFUSCATED.finditer(text)]
    found.sort(key=lambda item: (item[0], -item[1]))
    kept: list[tuple[int, int, str, str]] = []
    for item in found:
        if not kept or item[0] >= kept[-1][1]:
            kept.append(item)
    return kept


def find_links(text: str) -> list[Link]:
    """Every link-like thing in `text`, with the host it points at."""
    links: list[Link] = []
    for start, end, kind, raw in _candidates(text):
        if raw.startswith(("#", "/", "mailto:")) and not raw.startswith("//"):
            continue  # in-page anchors and relative paths go nowhere new; mailto is PII's business
        host = host_of(raw)
        if kind in ("path", "obf") and host.rsplit(".", 1)[-1] not in _TLDS:
            continue  # "e.g. 1.5/2" or "file.txt/..." is not a host
        if host:
            links.append(Link(start, end, host, text[start:end]))
    return links


def allowed(host: str, allowed_hosts: Iterable[str]) -> bool:
    return any(host == h or host.endswith("." + h) for h in (a.lower().strip(".") for a in allowed_hosts))


def outside_links(text: str, allowed_hosts: Iterable[str]) -> list[Link]:
    hosts = list(allowed_hosts)
    return [link for link in find_links(text) if not allowed(link.host, hosts)]


def redact_links(text: str, links: list[Link]) -> str:
    for link in sorted(links, key=lambda item: item.start, reverse=True):
        text = text[: link.start] + REMOVED + text[link.end :]
    return text
