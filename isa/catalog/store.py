"""SQL of the catalog: registry rows, the discovery index, imported servers, examples and selection history."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from isa.catalog.models import CatalogItem, ItemType
from isa.core.db import DictConnection, fetch_one, vector_literal
from isa.core.search import Bm25Stats

# Every write to the catalog holds this transaction lock: concurrent syncs and imports queue instead of racing
# for call names or deleting each other's rows.
WRITE_LOCK = "isa.catalog.write"


@dataclass(frozen=True)
class IndexRow:
    """One item as written: the item, its hashes and (when (re-)embedded) its vector."""

    item: CatalogItem
    content_hash: str
    embedded_hash: str
    name_text: str
    search_text: str
    vector: Sequence[float] | None  # None: keep the stored one


async def lock_writes(conn: DictConnection) -> None:
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (WRITE_LOCK,))


async def index_state(conn: DictConnection, server: str, model: str) -> dict[tuple[str, str], dict[str, Any]]:
    """(item_type, item name) -> stored hashes, call name and whether a vector of `model` is there."""
    cur = await conn.execute(
        "SELECT item_type, item_name, qualified_name, content_hash, embedded_hash,"
        " (embedding IS NOT NULL AND embedding_model = %s) AS has_vector"
        " FROM mcp_unified_search_embeddings WHERE server = %s",
        (model, server),
    )
    return {(r["item_type"], r["item_name"]): r for r in await cur.fetchall()}


async def taken_names(conn: DictConnection, item_type: ItemType) -> set[str]:
    cur = await conn.execute(
        "SELECT qualified_name FROM mcp_unified_search_embeddings WHERE item_type = %s AND qualified_name IS NOT NULL",
        (item_type,),
    )
    return {r["qualified_name"] for r in await cur.fetchall()}


def _registry_sql(item_type: ItemType) -> str:
    if item_type == "tool":
        return (
            "INSERT INTO mcp_tools (server, name, qualified_name, description, category, input_schema, keywords,"
            " security_level, requires_authorization, content_hash, metadata)"
            " VALUES (%(server)s, %(name)s, %(qualified_name)s, %(description)s, %(category)s, %(schema)s,"
            " %(keywords)s, %(security_level)s, %(security_level)s IN ('HIGH', 'CRITICAL'), %(content_hash)s,"
            " %(metadata)s)"
            " ON CONFLICT (server, name) DO UPDATE SET qualified_name = EXCLUDED.qualified_name,"
            " description = EXCLUDED.description, category = EXCLUDED.category, input_schema = EXCLUDED.input_schema,"
            " keywords = EXCLUDED.keywords, security_level = EXCLUDED.security_level,"
            " requires_authorization = EXCLUDED.requires_authorization, content_hash = EXCLUDED.content_hash,"
            " metadata = EXCLUDED.metadata, is_active = true"
            " WHERE mcp_tools.content_hash IS DISTINCT FROM EXCLUDED.content_hash"
        )
    if item_type == "prompt":
        return (
            "INSERT INTO mcp_prompts (server, name, qualified_name, description, category, arguments, keywords,"
            " content_hash, metadata)"
            " VALUES (%(server)s, %(name)s, %(qualified_name)s, %(description)s, %(category)s, %(arguments)s,"
            " %(keywords)s, %(content_hash)s, %(metadata)s)"
            " ON CONFLICT (server, name) DO UPDATE SET qualified_name = EXCLUDED.qualified_name,"
            " description = EXCLUDED.description, category = EXCLUDED.category, arguments = EXCLUDED.arguments,"
            " keywords = EXCLUDED.keywords, content_hash = EXCLUDED.content_hash, metadata = EXCLUDED.metadata,"
            " is_active = true WHERE mcp_prompts.content_hash IS DISTINCT FROM EXCLUDED.content_hash"
        )
    return (
        "INSERT INTO mcp_resources (server, uri, name, qualified_name, description, category, mime_type, is_template,"
        " keywords, content_hash, metadata)"
        " VALUES (%(server)s, %(name)s, %(title)s, %(qualified_name)s, %(description)s, %(category)s, %(mime_type)s,"
        " %(is_template)s, %(keywords)s, %(content_hash)s, %(metadata)s)"
        " ON CONFLICT (server, uri) DO UPDATE SET qualified_name = EXCLUDED.qualified_name, name = EXCLUDED.name,"
        " description = EXCLUDED.description, category = EXCLUDED.category, mime_type = EXCLUDED.mime_type,"
        " is_template = EXCLUDED.is_template, keywords = EXCLUDED.keywords, content_hash = EXCLUDED.content_hash,"
        " metadata = EXCLUDED.metadata, is_active = true"
        " WHERE mcp_resources.content_hash IS DISTINCT FROM EXCLUDED.content_hash"
    )


_INDEX_SQL = (
    "INSERT INTO mcp_unified_search_embeddings (item_type, item_name, server, qualified_name, category, description,"
    " keywords, metadata, input_schema, security_level, content_hash, embedded_hash, name_text, search_text,"
    " embedding, embedding_model)"
    " VALUES (%(item_type)s, %(name)s, %(server)s, %(qualified_name)s, %(category)s, %(description)s, %(keywords)s,"
    " %(metadata)s, %(index_schema)s, %(security_level)s, %(content_hash)s, %(embedded_hash)s, %(name_text)s,"
    " %(search_text)s, %(vector)s::vector, %(model)s)"
    " ON CONFLICT (item_type, server, item_name) DO UPDATE SET qualified_name = EXCLUDED.qualified_name,"
    " category = EXCLUDED.category, description = EXCLUDED.description, keywords = EXCLUDED.keywords,"
    " metadata = EXCLUDED.metadata, input_schema = EXCLUDED.input_schema, security_level = EXCLUDED.security_level,"
    " content_hash = EXCLUDED.content_hash, name_text = EXCLUDED.name_text, search_text = EXCLUDED.search_text,"
    " is_active = true,"
    " embedding = coalesce(EXCLUDED.embedding, mcp_unified_search_embeddings.embedding),"
    " embedding_model = CASE WHEN EXCLUDED.embedding IS NULL THEN mcp_unified_search_embeddings.embedding_model"
    " ELSE EXCLUDED.embedding_model END,"
    " embedded_hash = CASE WHEN EXCLUDED.embedding IS NULL THEN mcp_unified_search_embeddings.embedded_hash"
    " ELSE EXCLUDED.embedded_hash END"
    " WHERE mcp_unified_search_embeddings.content_hash IS DISTINCT FROM EXCLUDED.content_hash"
    " OR EXCLUDED.embedding IS NOT NULL"
)


def _params(row: IndexRow, model: str) -> dict[str, Any]:
    item = row.item
    schema = item.input_schema if isinstance(item.input_schema, dict) else None
    arguments = schema.get("arguments") if schema and isinstance(schema.get("arguments"), list) else []
    return {
        "item_type": item.item_type,
        "server": item.server,
        "name": item.name,
        "qualified_name": item.qualified_name,
        "description": item.description,
        "category": item.category or None,
        "keywords": list(item.keywords),
        "schema": Jsonb(schema if schema is not None else {"type": "object"}),
        "index_schema": Jsonb(schema) if schema is not None else None,
        "arguments": Jsonb(arguments),
        "title": str(item.metadata.get("title") or item.name),
        "mime_type": item.metadata.get("mime_type"),
        "is_template": "{" in item.name,
        "security_level": item.security_level,
        "metadata": Jsonb(item.metadata),
        "content_hash": row.content_hash,
        "embedded_hash": row.embedded_hash,
        "name_text": row.name_text,
        "search_text": row.search_text,
        "vector": vector_literal(row.vector) if row.vector is not None else None,
        "model": model,
    }


async def upsert(conn: DictConnection, rows: Sequence[IndexRow], model: str) -> None:
    """Write registry and index rows; rows whose content did not change are left untouched."""
    by_type: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_type.setdefault(row.item.item_type, []).append(_params(row, model))
    async with conn.cursor() as cur:
        for item_type, params in by_type.items():
            await cur.executemany(_registry_sql(item_type), params)  # type: ignore[arg-type]
            await cur.executemany(_INDEX_SQL, params)


_REGISTRY = {"tool": ("mcp_tools", "name"), "prompt": ("mcp_prompts", "name"), "resource": ("mcp_resources", "uri")}


async def delete_missing(conn: DictConnection, server: str, keep: dict[str, list[str]]) -> int:
    """Delete `server`'s items whose own name is not in `keep[item_type]`; returns how many index rows went."""
    removed = 0
    for item_type, (table, name_col) in _REGISTRY.items():
        names = keep.get(item_type, [])
        await conn.execute(
            f"DELETE FROM {table} WHERE server = %s AND NOT ({name_col} = ANY(%s))",
            (server, names),
        )
        cur = await conn.execute(
            "DELETE FROM mcp_unified_search_embeddings WHERE item_type = %s AND server = %s"
            " AND NOT (item_name = ANY(%s))",
            (item_type, server, names),
        )
        removed += cur.rowcount
    return removed


async def upsert_server(conn: DictConnection, name: str, description: str, url: str | None, category: str) -> None:
    await conn.execute(
        "INSERT INTO mcp_servers (name, description, url, category) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT (name) DO UPDATE SET description = EXCLUDED.description, url = EXCLUDED.url,"
        " category = EXCLUDED.category",
        (name, description, url, category or None),
    )


async def set_tool_count(conn: DictConnection, name: str) -> int:
    cur = await conn.execute(
        "UPDATE mcp_servers s SET tool_count = (SELECT count(*) FROM mcp_tools t WHERE t.server = s.name)"
        " WHERE s.name = %s RETURNING tool_count",
        (name,),
    )
    row = await cur.fetchone()
    return int(row["tool_count"]) if row else 0


async def remove_server(conn: DictConnection, name: str) -> int | None:
    """Delete an imported server and everything of it; None when there is no such server."""
    cur = await conn.execute("DELETE FROM mcp_servers WHERE name = %s RETURNING id", (name,))
    if await cur.fetchone() is None:
        return None
    for table in ("mcp_tools", "mcp_prompts", "mcp_resources"):
        await conn.execute(f"DELETE FROM {table} WHERE server = %s", (name,))
    cur = await conn.execute("DELETE FROM mcp_unified_search_embeddings WHERE server = %s", (name,))
    return cur.rowcount


async def list_servers(conn: DictConnection) -> list[dict[str, Any]]:
    cur = await conn.execute(
        "SELECT e.server AS name, coalesce(s.description, '') AS description, s.url,"
        " count(*) FILTER (WHERE e.item_type = 'tool') AS tools,"
        " count(*) FILTER (WHERE e.item_type = 'prompt') AS prompts,"
        " count(*) FILTER (WHERE e.item_type = 'resource') AS resources"
        " FROM mcp_unified_search_embeddings e LEFT JOIN mcp_servers s ON s.name = e.server"
        " GROUP BY e.server, s.description, s.url ORDER BY e.server"
    )
    rows = await cur.fetchall()
    listed = {r["name"] for r in rows}
    cur = await conn.execute("SELECT name, description, url FROM mcp_servers ORDER BY name")
    for s in await cur.fetchall():
        if s["name"] not in listed:
            rows.append({**s, "tools": 0, "prompts": 0, "resources": 0})
    return rows


async def server_url(conn: DictConnection, name: str) -> str | None:
    cur = await conn.execute("SELECT url FROM mcp_servers WHERE name = %s", (name,))
    row = await cur.fetchone()
    return row["url"] if row else None


ITEM_COLUMNS = (
    "item_type",
    "server",
    "item_name",
    "qualified_name",
    "description",
    "category",
    "keywords",
    "input_schema",
    "security_level",
    "metadata",
)


def item_of(row: dict[str, Any]) -> CatalogItem:
    return CatalogItem(
        item_type=row["item_type"],
        server=row["server"],
        name=row["item_name"],
        qualified_name=row["qualified_name"],
        description=row["description"],
        category=row["category"] or "",
        keywords=tuple(row["keywords"] or ()),
        input_schema=row["input_schema"],
        security_level=row["security_level"],
        metadata=row["metadata"] or {},
    )


async def get_item(conn: DictConnection, item_type: str, qualified_name: str) -> CatalogItem | None:
    return await _one_item(conn, "qualified_name = %s AND is_active", (item_type, qualified_name))


async def upstream_item(conn: DictConnection, item_type: str, name: str) -> CatalogItem | None:
    """Another server's active item by its own name (a resource's URI), for proxying reads to it."""
    where = "item_name = %s AND server <> 'isa' AND is_active ORDER BY server LIMIT 1"
    return await _one_item(conn, where, (item_type, name))


async def _one_item(conn: DictConnection, where: str, params: tuple[str, str]) -> CatalogItem | None:
    """The item of `item_type = %s AND <where>` (both parameters given), or None."""
    row = await fetch_one(
        conn,
        "SELECT item_type, server, item_name, qualified_name, description, category, keywords, input_schema,"
        " security_level, metadata FROM mcp_unified_search_embeddings WHERE item_type = %s AND " + where,
        params,
    )
    return item_of(row) if row else None


async def bm25_stats(conn: DictConnection) -> dict[str, Bm25Stats]:
    """Row count and mean field lengths per item type (BM25's N and avgdl)."""
    cur = await conn.execute(
        "SELECT item_type, count(*) AS n, avg(len_a) AS a, avg(len_b) AS b, avg(len_c) AS c FROM ("
        " SELECT DISTINCT ON (entry_id) item_type, len_a, len_b, len_c FROM mcp_search_postings) x"
        " GROUP BY item_type"
    )
    return {
        r["item_type"]: Bm25Stats(int(r["n"]), float(r["a"] or 1), float(r["b"] or 1), float(r["c"] or 1))
        for r in await cur.fetchall()
    }


# The tables a catalog write changes that the ranking statement reads (`vacuum_analyze`).
RANKED_TABLES = ("mcp_unified_search_embeddings", "mcp_search_postings", "mcp_query_examples")


async def vacuum_analyze(conn: DictConnection) -> list[str]:
    """VACUUM (ANALYZE) the ranked tables on an autocommit connection: fresh planner statistics, and pages marked
    all-visible so the postings' covering index answers index-only. Returns the server's warnings: a role that does
    not own a table is told so and the table is skipped, never an error."""
    warnings: list[str] = []

    def notice(diag: psycopg.errors.Diagnostic) -> None:
        if diag.severity_nonlocalized == "WARNING":
            warnings.append(diag.message_primary or "")

    conn.add_notice_handler(notice)
    for table in RANKED_TABLES:
        await conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.Identifier(table)))
    return warnings


async def entry_ids(conn: DictConnection, server: str) -> dict[str, Any]:
    """Own tool name -> index row id, for attaching examples."""
    cur = await conn.execute(
        "SELECT item_name, id FROM mcp_unified_search_embeddings WHERE server = %s AND item_type = 'tool'", (server,)
    )
    return {r["item_name"]: r["id"] for r in await cur.fetchall()}


async def example_vectors(conn: DictConnection, hashes: list[str], model: str) -> dict[str, str]:
    """Stored vectors (as text) of example queries already embedded with `model`, by query hash."""
    if not hashes:
        return {}
    cur = await conn.execute(
        "SELECT DISTINCT ON (query_hash) query_hash, embedding::text AS v FROM mcp_query_examples"
        " WHERE query_hash = ANY(%s) AND embedding_model = %s",
        (hashes, model),
    )
    return {r["query_hash"]: r["v"] for r in await cur.fetchall()}


async def replace_examples(
    conn: DictConnection, entry_ids_: list[Any], rows: list[tuple[Any, str, str, str]], model: str, source: str
) -> None:
    """Make `source` examples of these index rows exactly `rows` of (entry_id, query, query_hash, vector text).

    Examples that stay are not touched, so re-importing the same file rewrites nothing in the HNSW index.
    """
    await conn.execute(
        "DELETE FROM mcp_query_examples x WHERE x.entry_id = ANY(%s) AND x.source = %s AND NOT EXISTS"
        " (SELECT 1 FROM unnest(%s::uuid[], %s::text[]) AS k(e, h) WHERE k.e = x.entry_id AND k.h = x.query_hash)",
        (entry_ids_, source, [r[0] for r in rows], [r[2] for r in rows]),
    )
    await add_examples(conn, rows, model, source)


async def capabilities(conn: DictConnection, limit: int, access: sql.Composable) -> dict[str, Any]:
    """Counts per type and the call names (at most `limit` per type) of the rows `access` lets through."""
    cur = await conn.execute(
        sql.SQL(
            "SELECT item_type, count(*) AS n, (array_agg(qualified_name ORDER BY server = 'isa' DESC, qualified_name))"
            "[1:%s] AS names FROM mcp_unified_search_embeddings e WHERE is_active AND ({}) GROUP BY item_type"
        ).format(access),
        (limit,),
    )
    found = {r["item_type"]: r for r in await cur.fetchall()}
    out: dict[str, Any] = {}
    for item_type in ("tool", "prompt", "resource"):
        r = found.get(item_type)
        count = int(r["n"]) if r else 0
        names = list(r["names"] or []) if r else []
        out[item_type + "s"] = {"count": count, "available": names, "truncated": count > len(names)}
    return out


async def security_levels(conn: DictConnection, limit: int, access: sql.Composable) -> dict[str, Any]:
    """Tools by security level among the rows `access` lets through: a summary and the tools (at most `limit`)."""
    cur = await conn.execute(
        sql.SQL(
            "SELECT security_level, count(*) AS n FROM mcp_unified_search_embeddings e"
            " WHERE item_type = 'tool' AND is_active AND ({}) GROUP BY security_level"
        ).format(access)
    )
    summary = {level: 0 for level in ("LOW", "MEDIUM", "HIGH", "CRITICAL")}
    summary.update({r["security_level"]: int(r["n"]) for r in await cur.fetchall()})
    cur = await conn.execute(
        sql.SQL(
            "SELECT qualified_name AS name, server, security_level FROM mcp_unified_search_embeddings e"
            " WHERE item_type = 'tool' AND is_active AND ({})"
            " ORDER BY array_position(ARRAY['CRITICAL','HIGH','MEDIUM','LOW'], security_level), qualified_name"
            " LIMIT %s"
        ).format(access),
        (limit,),
    )
    tools = [{**r, "requires_authorization": r["security_level"] in ("HIGH", "CRITICAL")} for r in await cur.fetchall()]
    return {
        "levels": {"LOW": 1, "MEDIUM": 2, "HIGH": 3, "CRITICAL": 4},
        "requires_approval": ["HIGH", "CRITICAL"],
        "summary": summary,
        "tools": tools,
        "truncated": sum(summary.values()) > len(tools),
    }


async def tools_at_level(conn: DictConnection, level: str, limit: int) -> list[dict[str, Any]]:
    """Active tools of one security level, by name (the original's POST /security/search)."""
    cur = await conn.execute(
        "SELECT qualified_name AS name, server, description, security_level FROM mcp_unified_search_embeddings"
        " WHERE item_type = 'tool' AND is_active AND security_level = %s ORDER BY qualified_name LIMIT %s",
        (level, limit),
    )
    return [{**r, "requires_authorization": r["security_level"] in ("HIGH", "CRITICAL")} for r in await cur.fetchall()]


async def add_examples(conn: DictConnection, rows: list[tuple[Any, str, str, str]], model: str, source: str) -> int:
    """Add (entry_id, query, query_hash, vector text) examples; ones already there are left alone."""
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO mcp_query_examples (entry_id, item_type, query, query_hash, source, embedding,"
            " embedding_model) VALUES (%s, 'tool', %s, %s, %s, %s::vector, %s)"
            " ON CONFLICT (entry_id, query_hash, embedding_model) DO NOTHING",
            [(e, q, h, source, v, model) for e, q, h, v in rows],
        )
    return len(rows)


async def stale_rows(conn: DictConnection, model: str, limit: int) -> list[dict[str, Any]]:
    """Index rows whose vector is missing or of another model (the encoder setting changed), oldest id first."""
    cur = await conn.execute(
        "SELECT id, name_text, description, search_text FROM mcp_unified_search_embeddings"
        " WHERE embedding IS NULL OR embedding_model IS DISTINCT FROM %s ORDER BY id LIMIT %s",
        (model, limit),
    )
    return list(await cur.fetchall())


async def set_vectors(conn: DictConnection, rows: list[tuple[Any, str, str]], model: str) -> None:
    """Store (id, vector text, embedded hash) of re-embedded index rows."""
    async with conn.cursor() as cur:
        await cur.executemany(
            "UPDATE mcp_unified_search_embeddings SET embedding = %s::vector, embedding_model = %s,"
            " embedded_hash = %s WHERE id = %s",
            [(v, model, h, i) for i, v, h in rows],
        )


async def stale_examples(conn: DictConnection, model: str, limit: int) -> list[dict[str, Any]]:
    """Example queries that have no vector of `model` yet: (entry_id, query, query_hash, source)."""
    cur = await conn.execute(
        "SELECT DISTINCT ON (x.entry_id, x.query_hash) x.entry_id, x.query, x.query_hash, x.source"
        " FROM mcp_query_examples x WHERE NOT EXISTS (SELECT 1 FROM mcp_query_examples y"
        " WHERE y.entry_id = x.entry_id AND y.query_hash = x.query_hash AND y.embedding_model = %s)"
        " ORDER BY x.entry_id, x.query_hash LIMIT %s",
        (model, limit),
    )
    return list(await cur.fetchall())


async def generated_queries(conn: DictConnection, hashes: list[str], model: str) -> dict[str, list[str]]:
    """doc2query cache: text hash -> the requests `model` wrote for that tool text."""
    if not hashes:
        return {}
    cur = await conn.execute(
        "SELECT text_hash, queries FROM mcp_generated_queries WHERE text_hash = ANY(%s) AND model = %s",
        (hashes, model),
    )
    return {r["text_hash"]: list(r["queries"]) for r in await cur.fetchall()}


async def save_generated_queries(conn: DictConnection, rows: dict[str, list[str]], model: str) -> None:
    """Store (or replace) what `model` wrote per text hash."""
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO mcp_generated_queries (text_hash, model, queries) VALUES (%s, %s, %s)"
            " ON CONFLICT (text_hash, model) DO UPDATE SET queries = EXCLUDED.queries, created_at = now()",
            [(h, model, queries) for h, queries in rows.items() if queries],
        )
