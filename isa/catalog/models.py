"""The catalog's data types: what the MCP endpoint syncs in, what discovery and search hand back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

ItemType = Literal["tool", "prompt", "resource"]
ITEM_TYPES: tuple[ItemType, ...] = ("tool", "prompt", "resource")
SECURITY_LEVELS = ("LOW", "MEDIUM", "HIGH", "CRITICAL")
OWN_SERVER = "isa"


@dataclass(frozen=True)
class CatalogItem:
    item_type: ItemType
    server: str  # "isa" for our own; the imported server's name otherwise
    name: str  # the item's own name (tool/prompt name, or resource URI / URI template)
    qualified_name: str  # the name to call over MCP: <= 64 chars, [A-Za-z0-9_.-]; unique per item_type
    description: str
    category: str = ""
    keywords: tuple[str, ...] = ()
    input_schema: dict[str, Any] | None = None  # tools (JSON schema); prompts: {"arguments": [...]}
    security_level: str = "LOW"  # LOW | MEDIUM | HIGH | CRITICAL
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SyncReport:
    """What one sync changed: rows written, rows (re-)embedded, rows removed, rows left as they were."""

    upserted: int
    embedded: int
    removed: int
    unchanged: int


@dataclass(frozen=True)
class SearchFilters:
    types: tuple[ItemType, ...] = ITEM_TYPES
    categories: tuple[str, ...] = ()
    servers: tuple[str, ...] = ()
    security_levels: tuple[str, ...] = ()
    min_score: float | None = None
    min_similarity: float | None = None  # None: the configured relevance floor; 0: none
    max_results: int = 10
    mode: Literal["hybrid", "lexical", "dense"] = "hybrid"
