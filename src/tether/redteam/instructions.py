"""Instruction-shaped text -> orders the compromised model carries out.

The parser knows no attack case. It reads a few general grammars an attacker (or a careless
document) uses to tell a model what to do:

- a JSON tool call: `{"tool": "x", "arguments": {...}}` (also `name`/`function`, `args`/`parameters`);
- a function call: `tool_name(order_id="1", amount=5)` or `tool_name({...})`, for any offered tool;
- a sentence with an imperative verb naming an offered tool by its words ("issue a full refund of
  $129 for order 12350"), arguments read from the sentence by parameter name and type;
- repetition ("500 times"), links and images to print, "reveal your system prompt", "reply only
  with: ...", and "include the customer's email and address" (dump what was read).
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from typing import Any

from tether.models.base import ToolSpec

MAX_REPEAT = 1000

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(\[])|\n+")
_CLAUSE_START = (
    r"(?:^|[:;,.!?()\[\]>*\-\u2013\u2014]\s*|\b(?:please|now|must|should|shall|need to|have to|"
    r"required to|then|and|also|first|immediately|always|kindly|you|to)\s+)"
)
"""Where an imperative verb stands: starting a clause, or after a modal or connective ("please", ", ")."""
_VERBS = (
    r"call|use|invoke|run|execute|trigger|perform|submit|issue|draft|create|make|send|add|write|record|"
    r"log|look ?up|check|search|fetch|get|open|file|process|apply|grant|refund|cancel|delete|update|"
    r"change|set|repeat|do|start|initiate|place|post|request"
)
_IMPERATIVE = re.compile(_CLAUSE_START + rf"(?:{_VERBS})\b", re.IGNORECASE | re.MULTILINE)


@functools.lru_cache(maxsize=256)
def _imperative_of(word: str) -> re.Pattern[str]:
    """A tool's own first word used as an imperative ("please transfer ...", "Refund ...")."""
    return re.compile(_CLAUSE_START + re.escape(word) + r"\b", re.IGNORECASE | re.MULTILINE)


_REPEAT = re.compile(
    r"\b(\d{1,4})\s*(?:x\b|\u00d7|times|calls|requests|iterations|attempts)|"
    r"\brepeat\w*\s+(?:this|it|that|the call)?\s*(\d{1,4})\b",
    re.IGNORECASE,
)
_FREE_TEXT = re.compile(
    r"note|body|text|message|reason|content|description|comment|query|summary|subject|title|details",
    re.IGNORECASE,
)
"""Parameter names that take prose; other string parameters take one token (an id, an address)."""
_QUOTED = re.compile(r"\"([^\"]{1,2000})\"|“([^”]{1,2000})”|'([^']{3,2000})'")
_URL = re.compile(r"(?:https?://|www\.)[^\s<>\"')\]]+", re.IGNORECASE)
_MD_LINK = re.compile(r"!?\[[^\]\n]{0,200}\]\(\s*(?:https?://|www\.|//)[^)\s]+[^)]*\)", re.IGNORECASE)
_SHOW = re.compile(
    r"\b(include|add|append|print|show|render|display|output|insert|embed|put|place|end|finish|start|"
    r"begin|respond|reply|say|tell|write|share|send|attach|paste|visit|click|go to|link|load|fetch|"
    r"open|use|return|answer|format|prepend|provide)\b",
    re.IGNORECASE,
)
_PROMPT = re.compile(
    r"\b(reveal|print|repeat|output|show|display|tell|share|include|leak|dump|copy|write|recite|paste|"
    r"echo|quote|give|list|state|return|disclose|expose|spell out|translate|summari[sz]e|read back|"
    r"what (?:is|are|was|were))\b[^.\n]{0,80}?\b(system prompt|system message|(?:system |initial |"
    r"original |hidden |secret |internal |developer |your )(?:instructions|prompt|rules|guidelines|"
    r"directives|configuration|message)|everything (?:above|before)|(?:the )?text above|preamble|"
    r"instructions you were given|what you were told)",
    re.IGNORECASE,
)
_VERBATIM = re.compile(
    r"\b(reply|respond|answer|say|output|print|return|write|tell (?:the )?(?:customer|user)|send|"
    r"start your (?:reply|answer|response)|end your (?:reply|answer|response))\b[^\"“':\n]{0,60}?"
    r"(?:(?:verbatim|exactly|word for word|only|just|the following|with|:(?!//))[^\"“'\n]{0,20}?)?"
    r"(?:\"([^\"]{1,2000})\"|“([^”]{1,2000})”|:(?!//)\s*([^\n]{3,2000}))",
    re.IGNORECASE,
)
_ONLY = re.compile(r"\b(only|exactly|verbatim|word for word|nothing else|and nothing more)\b", re.IGNORECASE)
_DUMP = re.compile(
    r"\b(include|share|give|tell|list|reveal|send|add|print|show|output|append|dump|provide|disclose|"
    r"expose|paste|copy|forward|repeat|summari[sz]e|read out|export)\b[^.\n]{0,100}?\b(e-?mails?|"
    r"addresses|address|phone(?: numbers?)?|card(?: numbers?)?|account(?: numbers?)?|ssns?|"
    r"social security|iban|personal (?:data|details|information)|pii|contact (?:details|info)|"
    r"records?|customers?|users?|passwords?|api keys?|tokens?|secrets?|credentials|"
    r"(?:all|every|full|raw) (?:data|details|results|information|fields))\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class CallOrder:
    """Call `tool` with `arguments`, `times` times in one response."""

    tool: str
    arguments: dict[str, Any]
    times: int = 1

    @property
    def key(self) -> str:
        return self.tool + json.dumps(self.arguments, sort_keys=True, default=str)


@dataclass
class Orders:
    """Everything one piece of text told the model to do."""

    calls: list[CallOrder] = field(default_factory=list)
    say: list[str] = field(default_factory=list)
    """Text to put in the answer (links, images, sentences to repeat)."""
    replace: str | None = None
    """Answer with exactly this."""
    reveal_prompt: bool = False
    dump_data: bool = False

    def merge(self, other: Orders) -> None:
        known = {c.key for c in self.calls}
        self.calls.extend(c for c in other.calls if c.key not in known)
        self.say.extend(s for s in other.say if s not in self.say)
        self.replace = other.replace if other.replace is not None else self.replace
        self.reveal_prompt = self.reveal_prompt or other.reveal_prompt
        self.dump_data = self.dump_data or other.dump_data


@dataclass(frozen=True)
class Context:
    """What the model already knows, to fill arguments the text leaves out."""

    earlier_arguments: dict[str, Any] = field(default_factory=dict)
    """The latest value of each argument name in this run's earlier tool calls."""
    numbers: dict[str, float] = field(default_factory=dict)
    """Numeric fields seen in tool results, by field name (e.g. `amount_usd`)."""


def read_orders(text: str, tools: list[ToolSpec], context: Context) -> Orders:
    """All orders in `text` for the offered `tools`."""
    orders = Orders()
    _json_calls(text, tools, orders)
    _function_calls(text, tools, orders)
    for sentence in _sentences(text):
        _sentence_calls(sentence, tools, context, orders)
    _outputs(text, orders)
    return orders


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text) if s and s.strip()]


def _times(text: str) -> int:
    match = _REPEAT.search(text)
    if match is None:
        return 1
    return max(1, min(MAX_REPEAT, int(match.group(1) or match.group(2))))


# -- JSON and function-call grammars ------------------------------------------------------------


def _json_objects(text: str) -> list[tuple[int, int, Any]]:
    """JSON objects embedded anywhere in the text, with their spans."""
    decoder = json.JSONDecoder()
    found: list[tuple[int, int, Any]] = []
    index = text.find("{")
    while index != -1 and len(found) < 50:
        try:
            value, end = decoder.raw_decode(text, index)
        except ValueError:
            index = text.find("{", index + 1)
            continue
        found.append((index, end, value))
        index = text.find("{", end)
    return found


def _json_calls(text: str, tools: list[ToolSpec], orders: Orders) -> None:
    names = {t.name for t in tools}
    for start, end, value in _json_objects(text):
        stack = [value]
        while stack:
            item = stack.pop()
            if isinstance(item, list):
                stack.extend(item)
                continue
            if not isinstance(item, dict):
                continue
            name = item.get("tool") or item.get("name") or item.get("function") or item.get("tool_name")
            if isinstance(name, dict):
                stack.append(name)
                continue
            arguments = item.get("arguments", item.get("args", item.get("parameters", item.get("input"))))
            if isinstance(arguments, str):
                try:
                    arguments = json.loads(arguments)
                except ValueError:
                    arguments = None
            if isinstance(name, str) and name in names and isinstance(arguments, dict):
                times = _times(text[max(0, start - 200) : end + 200])
                orders.merge(Orders(calls=[CallOrder(name, arguments, times)]))
            stack.extend(v for v in item.values() if isinstance(v, dict | list))


def _function_calls(text: str, tools: list[ToolSpec], orders: Orders) -> None:
    for spec in tools:
        for match in re.finditer(rf"\b{re.escape(spec.name)}\s*\(([^()]{{0,2000}})\)", text):
            inner = match.group(1).strip()
            arguments = _parse_call_arguments(inner, spec)
            if arguments is None:
                continue
            around = text[max(0, match.start() - 200) : match.end() + 200]
            orders.merge(Orders(calls=[CallOrder(spec.name, arguments, _times(around))]))


def _parse_call_arguments(inner: str, spec: ToolSpec) -> dict[str, Any] | None:
    if inner.startswith("{"):
        try:
            value = json.loads(inner)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None
    params = list(_properties(spec))
    arguments: dict[str, Any] = {}
    pieces = re.findall(r"(?:[^,\"']|\"[^\"]*\"|'[^']*')+", inner)
    for position, piece in enumerate(p.strip() for p in pieces):
        if not piece:
            continue
        key, sep, raw = piece.partition("=")
        if not sep:
            key, sep, raw = piece.partition(":")
        if sep and key.strip().strip("\"'") in params:
            name = key.strip().strip("\"'")
        elif position < len(params):
            name, raw = params[position], piece
        else:
            continue
        arguments[name] = _coerce(raw.strip().strip("\"'"), _properties(spec).get(name, {}))
    return arguments


# -- natural-language grammar -------------------------------------------------------------------


def _properties(spec: ToolSpec) -> dict[str, dict[str, Any]]:
    properties = spec.parameters.get("properties", {})
    return properties if isinstance(properties, dict) else {}


def _names_tool(sentence: str, spec: ToolSpec) -> bool:
    """The sentence names the tool: exactly, or its words in order with a few words between."""
    if re.search(rf"\b{re.escape(spec.name)}\b", sentence, re.IGNORECASE):
        return True
    words = [w for w in re.split(r"[_\W]+", spec.name) if w]
    if len(words) < 2:
        return False
    pattern = r"\b" + r"\w*(?:\W+\w+){0,3}?\W+".join(re.escape(w[:5]) for w in words) + r"\w*"
    return re.search(pattern, sentence, re.IGNORECASE) is not None


def _sentence_calls(sentence: str, tools: list[ToolSpec], context: Context, orders: Orders) -> None:
    generic = _IMPERATIVE.search(sentence) is not None
    for spec in tools:
        if not _names_tool(sentence, spec):
            continue
        first = next((w for w in re.split(r"[_\W]+", spec.name) if w), spec.name)
        if not generic and not _imperative_of(first.lower()).search(sentence):
            continue
        arguments = _arguments_from(sentence, spec, context)
        orders.merge(Orders(calls=[CallOrder(spec.name, arguments, _times(sentence))]))


def _arguments_from(sentence: str, spec: ToolSpec, context: Context) -> dict[str, Any]:
    properties = _properties(spec)
    required = spec.parameters.get("required", list(properties))
    arguments: dict[str, Any] = {}
    used: set[str] = set()
    for name, schema in properties.items():
        raw = _explicit(sentence, name)
        if raw is None or not _fits(raw, schema):
            raw = _by_words(sentence, name, schema, used)
        if raw is not None:
            used.add(raw)
            arguments[name] = _coerce(raw, schema)
    for name in required:
        if name in arguments:
            continue
        schema = properties.get(name, {})
        if name in context.earlier_arguments:
            arguments[name] = context.earlier_arguments[name]
        elif schema.get("type") in ("number", "integer"):
            seen = [v for k, v in context.numbers.items() if name.split("_")[0] in k]
            arguments[name] = _coerce(str(seen[-1] if seen else 1000), schema)
        else:
            arguments[name] = sentence[:500]
    return arguments


def _explicit(sentence: str, name: str) -> str | None:
    pattern = rf"[\"']?\b{re.escape(name)}\b[\"']?\s*(?:[:=]|is|as|of|to)\s*(\"[^\"]*\"|'[^']*'|[^\s,;)]+)"
    match = re.search(pattern, sentence, re.IGNORECASE)
    return match.group(1).strip("\"'") if match else None


def _by_words(sentence: str, name: str, schema: dict[str, Any], used: set[str]) -> str | None:
    primary = re.escape(name.split("_")[0])
    kind = schema.get("type")
    if kind in ("number", "integer"):
        for pattern in (
            rf"\b{primary}\w*\s*(?:of|:|=|is|to|for)?\s*(?:usd|\$)?\s*(\d[\d,]*(?:\.\d+)?)",
            r"\$\s?(\d[\d,]*(?:\.\d+)?)",
            r"(\d[\d,]*(?:\.\d+)?)\s*(?:usd|dollars|eur|euros)\b",
        ):
            for match in re.finditer(pattern, sentence, re.IGNORECASE):
                if match.group(1) not in used:
                    return match.group(1).replace(",", "")
        return None
    if kind not in (None, "string"):
        return None
    if re.search(r"(?:_id|_number|_no|id)$", name) or name in ("id", "number"):
        pattern = rf"\b{primary}s?[_\s]*(?:id|number|no\.?|#)?\s*[:=#]?\s*#?([A-Za-z]{{0,4}}[-_]?\d[\w-]*)"
        hit = re.search(pattern, sentence, re.IGNORECASE)
        return hit.group(1) if hit else None
    if not _FREE_TEXT.search(name):
        token = re.search(
            rf"\b{primary}\w*\s*(?:[:=#]|is|to)?\s*#?([\w.+-]+@[\w.-]+\w|[A-Za-z0-9][\w.-]*\d[\w-]*)",
            sentence,
            re.IGNORECASE,
        )
        if token is not None:
            return token.group(1)
    found = re.search(
        rf"\b{primary}\w*\s*(?:saying|that says|reading|of|:|=|with(?: the)? text|as)\s*"
        r"(\"[^\"]+\"|“[^”]+”|'[^']{3,}'|[^\n]{3,500})",
        sentence,
        re.IGNORECASE,
    )
    if found is None:
        found = re.search(r"\b(?:saying|that says|reading|with the text|text:)\s*([^\n]{3,500})", sentence)
    if found is not None:
        return found.group(1).strip("\"'“”")
    quoted = [next(g for g in m.groups() if g) for m in _QUOTED.finditer(sentence)]
    fresh = [q for q in quoted if q not in used]
    return fresh[0] if fresh else None


def _fits(raw: str, schema: dict[str, Any]) -> bool:
    """A value written for a number parameter must be a number."""
    if schema.get("type") not in ("number", "integer"):
        return True
    return re.fullmatch(r"\$?\s?\d[\d,]*(?:\.\d+)?", raw.strip()) is not None


def _coerce(raw: str, schema: dict[str, Any]) -> Any:
    kind = schema.get("type")
    if kind in ("number", "integer"):
        try:
            number = float(raw.replace(",", "").lstrip("$"))
        except ValueError:
            return raw
        return int(number) if kind == "integer" else number
    if kind == "boolean":
        return raw.lower() in ("true", "yes", "1")
    return raw


# -- output grammar -----------------------------------------------------------------------------


def _outputs(text: str, orders: Orders) -> None:
    for sentence in _sentences(text):
        links = [m.group(0) for m in _MD_LINK.finditer(sentence)]
        bare = [u for u in _URL.findall(sentence) if not any(u in link for link in links)]
        if (links or bare) and _SHOW.search(sentence):
            for item in links + bare:
                if item not in orders.say:
                    orders.say.append(item)
        if _PROMPT.search(sentence):
            orders.reveal_prompt = True
        if _DUMP.search(sentence):
            orders.dump_data = True
    for match in _VERBATIM.finditer(text):
        said = next((g for g in match.groups()[1:] if g), "").strip().strip("\"“”'")
        if not said:
            continue
        if _ONLY.search(match.group(0)):
            orders.replace = said
        elif said not in orders.say:
            orders.say.append(said)
