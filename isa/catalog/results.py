"""How ranked rows become /discover and /search hits, and /search filters become SQL."""

from __future__ import annotations

from typing import Any

from psycopg import sql

from isa.catalog.models import SearchFilters


def discovery_hit(row: dict[str, Any]) -> dict[str, Any]:
    """A discovery hit as /discover returns it (the name to call, and the item's own name under its kind)."""
    out: dict[str, Any] = {"name": row["qualified_name"], "server": row["server"]}
    kind = row["item_type"]
    if kind == "tool":
        out["tool"] = row["item_name"]
    elif kind == "prompt":
        out["prompt"] = row["item_name"]
    else:
        out["uri"] = row["item_name"]
    out["score"] = round(float(row["score"]), 4)
    out["similarity"] = round(float(row["similarity"]), 4)  # what the relevance floor compares
    out["security_level"] = row["security_level"]
    out["description"] = row["description"]
    if kind == "tool":
        out["input_schema"] = row["input_schema"] or {"type": "object"}
    elif kind == "prompt":
        out["arguments"] = (row["input_schema"] or {}).get("arguments", [])
    return out


def search_hit(r: dict[str, Any]) -> dict[str, Any]:
    """A /search hit: the call name, the kind, the item's own name and its metadata."""
    return {
        "name": r["qualified_name"],
        "type": r["item_type"],
        "server": r["server"],
        "item": r["item_name"],
        "score": round(float(r["score"]), 4),
        "similarity": round(float(r["similarity"]), 4),
        "description": r["description"],
        "category": r["category"] or "",
        "keywords": list(r["keywords"] or ()),
        "security_level": r["security_level"],
        "input_schema": r["input_schema"],
        "metadata": r["metadata"] or {},
    }


def filter_sql(filters: SearchFilters) -> tuple[sql.Composable, dict[str, Any]]:
    """The WHERE part for /search filters and the values it binds (empty when no filter is set).

    Values travel as bound parameters, never in the SQL text: psycopg would otherwise read a `%` in them as a
    placeholder (a 500 today, an injection under client-side binding).
    """
    parts: list[sql.Composable] = []
    params: dict[str, Any] = {}
    for column, values in (
        ("category", filters.categories),
        ("server", filters.servers),
        ("security_level", filters.security_levels),
    ):
        if values:
            name = f"filter_{column}"
            params[name] = list(values)
            parts.append(sql.SQL("e.{} = ANY({}::text[])").format(sql.Identifier(column), sql.Placeholder(name)))
    if not parts:
        return sql.SQL("TRUE"), params
    return sql.SQL(" AND ").join(parts), params
