"""Who may run what, and how relevant is relevant enough: the two conditions every discovery surface puts into
the ranking statement, so `k` results are `k` usable, on-topic items.

The scope rule mirrors the runner's (isa/mcp/runner.py): our own tools need the scope they declare (stored in the
row's metadata when the MCP endpoint syncs them); another server's tool needs `write` when it is HIGH or CRITICAL
and `read` otherwise, whatever its import file says; prompts and resources need `read`. Imported rows never
decide their own scope, so a `"scope": "read"` in an import file can't reveal a HIGH tool to a reader.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql

from isa.auth.principal import SCOPES, Principal
from isa.catalog.models import OWN_SERVER, CatalogItem

_HIGH_RISK = ("HIGH", "CRITICAL")

# The scope a row needs, as SQL over the index row `e`.
REQUIRED_SCOPE = sql.SQL(
    "CASE WHEN e.server = {own} THEN coalesce(e.metadata->>'scope', 'read')"
    " WHEN e.item_type = 'tool' AND e.security_level IN ({high}) THEN 'write' ELSE 'read' END"
).format(own=sql.Literal(OWN_SERVER), high=sql.SQL(", ").join(sql.Literal(level) for level in _HIGH_RISK))


def required_scope(item: CatalogItem) -> str:
    """The same rule in Python (for an item already read)."""
    if item.server == OWN_SERVER:
        return str(item.metadata.get("scope") or "read")
    return "write" if item.item_type == "tool" and item.security_level in _HIGH_RISK else "read"


def access_sql(principal: Principal | None) -> sql.Composable:
    """Rows this caller may use. The scope names come from our own constant list, never from input."""
    held = [scope for scope in SCOPES if principal is not None and scope in principal.scopes]
    if not held:
        return sql.SQL("FALSE")
    return sql.SQL("({}) IN ({})").format(REQUIRED_SCOPE, sql.SQL(", ").join(sql.Literal(s) for s in held))


@dataclass(frozen=True)
class Floor:
    """Minimum cosine similarity between the request and an item's embedded text (0 turns it off).

    HIGH and CRITICAL tools need `high_risk_margin` more: offering a destructive tool for a vague request costs
    more than missing it (the caller can ask again more precisely). Chosen on the dev splits (docs/discovery.md).
    """

    min_similarity: float
    high_risk_margin: float = 0.0
    example_margin: float = 0.0  # an item's nearest example query must be this much closer than the floor

    @property
    def off(self) -> bool:
        return self.min_similarity <= 0

    def condition(self, extra: float = 0.0) -> sql.Composable | None:
        """The per-row floor (+ `extra`) as SQL over `e` (None: no floor)."""
        if self.off:
            return None
        low = min(self.min_similarity + extra, 1.0)
        high = min(low + self.high_risk_margin, 1.0)
        return sql.SQL("CASE WHEN e.security_level IN ({levels}) THEN {high} ELSE {low} END").format(
            levels=sql.SQL(", ").join(sql.Literal(level) for level in _HIGH_RISK),
            high=sql.Literal(round(high, 4)),
            low=sql.Literal(round(low, 4)),
        )

    def example_condition(self) -> sql.Composable | None:
        return self.condition(self.example_margin)
