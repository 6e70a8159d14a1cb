"""Discovery's relevance floor per encoder: shared by the catalog (which applies it) and the agent (which asks for
a floor just below it), without the agent importing the catalog package.

Each encoder's cosines sit at their own level (the fine-tuned model puts relevant tools and nonsense alike higher),
so each has its own floor, chosen on the dev splits with tests/bench/bench_floor.py (docs/benchmarks.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

Encoder = Literal["int8", "fp32", "tuned"]
DEFAULT_ENCODER: Encoder = "tuned"
ENCODER_FLOORS: dict[str, float] = {"int8": 0.2, "fp32": 0.2, "tuned": 0.24}


def discovery_floor(encoder: str, min_similarity: float | None) -> float:
    """`min_similarity` when set (it holds for every encoder), else the floor chosen for `encoder`."""
    return ENCODER_FLOORS.get(encoder, ENCODER_FLOORS[DEFAULT_ENCODER]) if min_similarity is None else min_similarity


def configured_floor(catalog: Mapping[str, Any]) -> float:
    """The floor a raw `[catalog]` settings section gives discovery (values may be strings from the environment)."""
    value = catalog.get("min_similarity")
    floor = None if value is None or value == "" else float(value)
    return discovery_floor(str(catalog.get("encoder") or DEFAULT_ENCODER), floor)
