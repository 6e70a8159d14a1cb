"""Optional reranking by the model node (a listwise prompt) for knowledge search and tool discovery.

Any failure keeps the order the caller already had: a reranker can only reorder, never lose a result.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from isa.auth.principal import Principal
from isa.core.logging import get_logger
from isa.llm.client import ModelClient, ModelUnavailable

log = get_logger(__name__)

PASSAGE_CHARS = 600  # per item in the prompt: bounds the prompt (and the caller's cost) for long chunks
SYSTEM = (
    "You rank passages by how well they answer a question. Reply with JSON only: "
    '{"ranking": [passage numbers, most relevant first]}. Include every passage number exactly once.'
)


def _content(hit: dict[str, Any]) -> str:
    return str(hit["content"])


def prompt(
    query: str, hits: list[dict[str, Any]], text: Callable[[dict[str, Any]], str] = _content
) -> list[dict[str, Any]]:
    """The chat messages asking for a ranking of `hits` (numbered from 1)."""
    passages = "\n\n".join(f"[{i}] {' '.join(text(h).split())[:PASSAGE_CHARS]}" for i, h in enumerate(hits, 1))
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": f"Request: {query}\n\nItems:\n{passages}"},
    ]


def answer_tokens(items: int) -> int:
    """`max_tokens` of a ranking of `items`: each number with its separator is at most a few tokens, so a model
    that writes on (an explanation, a repetition) is cut off early; the caller pays for the call. A cut answer
    is not valid JSON and keeps the hybrid order."""
    return 32 + 6 * items


def json_answer(text: str, what: str) -> Any:
    """A model's JSON answer, optionally in a code fence; ValueError naming `what` was expected otherwise."""
    body = text.strip().removeprefix("```json").removeprefix("```").removesuffix("```").strip()
    try:
        return json.loads(body)
    except ValueError:
        raise ValueError(f"the model did not answer with {what}") from None


def parse_ranking(text: str, n: int) -> list[int]:
    """0-based indexes in the model's order; unknown or repeated numbers are dropped, missing ones appended.

    Only a JSON answer counts ({"ranking": [...]} or a bare list, optionally in a code fence): free text that
    merely mentions numbers is a failure, not a ranking.
    """
    data = json_answer(text, "a JSON ranking")
    numbers = data.get("ranking") if isinstance(data, dict) else data
    if not isinstance(numbers, list):
        raise ValueError("the model's JSON has no ranking list")
    order: list[int] = []
    for value in numbers:
        if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).strip().isdigit():
            continue
        i = int(value) - 1
        if 0 <= i < n and i not in order:
            order.append(i)
    if not order:
        raise ValueError("the model's ranking has no usable item numbers")
    return order + [i for i in range(n) if i not in order]


async def rerank(
    client: ModelClient,
    model: str,
    principal: Principal,
    query: str,
    hits: list[dict[str, Any]],
    text: Callable[[dict[str, Any]], str] = _content,
) -> tuple[list[dict[str, Any]], str]:
    """(hits in the model's order, "reranked"), or (hits unchanged, "hybrid (rerank failed: why)")."""
    if len(hits) < 2:
        return hits, "hybrid"
    try:
        answer = await client.complete(
            principal, prompt(query, hits, text), model=model, temperature=0, max_tokens=answer_tokens(len(hits))
        )
        order = parse_ranking(answer, len(hits))
    except (ModelUnavailable, ValueError) as exc:
        log.warning("rerank_failed", error=type(exc).__name__)
        return hits, f"hybrid (rerank failed: {exc})"
    return [{**hits[i], "hybrid_rank": i + 1} for i in order], "reranked"
