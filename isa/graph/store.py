"""All SQL of the knowledge graph. Every statement is scoped by `user_id = <caller>`; the composite foreign keys
of migration 0032 make a cross-user link impossible even if a statement forgot."""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from isa.core.db import DictConnection, fetch_all, fetch_one, vector_literal

DIM = 384  # the local MiniLM; entity vectors of other models are simply not linked
# With a resource_id, only entities that document mentions can seed a query.
_IN_DOCUMENT = (
    "(%(doc)s::uuid IS NULL OR EXISTS (SELECT 1 FROM graph_mentions m WHERE m.user_id = e.user_id"
    " AND m.entity_id = e.id AND m.document_id = %(doc)s::uuid))"
)


async def insert_document(
    conn: DictConnection,
    user_id: str,
    *,
    file_id: str | None,
    source_name: str | None,
    metadata: dict[str, Any],
    status: str,
    chunk_count: int,
    chunks_failed: int,
    model: str,
    errors: list[str],
) -> str:
    row = await fetch_one(
        conn,
        "INSERT INTO graph_documents (user_id, file_id, source_name, source_metadata, status, chunk_count,"
        " chunks_failed, model, errors) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id::text",
        (user_id, file_id, source_name, Jsonb(metadata), status, chunk_count, chunks_failed, model, Jsonb(errors)),
    )
    assert row is not None
    return str(row["id"])


async def insert_chunk(conn: DictConnection, user_id: str, document_id: str, index: int, content: str) -> str:
    row = await fetch_one(
        conn,
        "INSERT INTO graph_chunks (user_id, document_id, chunk_index, content) VALUES (%s, %s, %s, %s)"
        " RETURNING id::text",
        (user_id, document_id, index, content),
    )
    assert row is not None
    return str(row["id"])


async def entity_by_key(conn: DictConnection, user_id: str, key: str, entity_type: str) -> str | None:
    row = await fetch_one(
        conn,
        "SELECT id::text FROM graph_entities WHERE user_id = %s AND name_key = %s AND entity_type = %s",
        (user_id, key, entity_type),
    )
    return str(row["id"]) if row else None


async def nearest_entity(
    conn: DictConnection, user_id: str, entity_type: str, vector: list[float], model: str
) -> tuple[str, float] | None:
    """The caller's most similar entity of this type by name embedding (exact scan of their entities)."""
    row = await fetch_one(
        conn,
        f"SELECT id::text, 1 - (embedding::vector({DIM}) <=> %(v)s::vector({DIM})) AS sim FROM graph_entities"
        " WHERE user_id = %(u)s AND entity_type = %(t)s AND embedding_model = %(m)s"
        f" ORDER BY embedding::vector({DIM}) <=> %(v)s::vector({DIM}) LIMIT 1",
        {"u": user_id, "t": entity_type, "m": model, "v": vector_literal(vector)},
    )
    return (str(row["id"]), float(row["sim"])) if row else None


async def upsert_entity(
    conn: DictConnection,
    user_id: str,
    *,
    name: str,
    key: str,
    entity_type: str,
    description: str,
    vector: list[float],
    model: str,
) -> tuple[str, bool]:
    """(id, created): a concurrent insert of the same key and type lands on the same row."""
    row = await fetch_one(
        conn,
        "INSERT INTO graph_entities (user_id, name, name_key, entity_type, description, embedding, embedding_model)"
        f" VALUES (%s, %s, %s, %s, %s, %s::vector({DIM}), %s)"
        " ON CONFLICT (user_id, name_key, entity_type) DO UPDATE SET description = CASE"
        " WHEN graph_entities.description = '' THEN EXCLUDED.description ELSE graph_entities.description END"
        " RETURNING id::text, (xmax = 0) AS created",
        (user_id, name, key, entity_type, description, vector_literal(vector), model),
    )
    assert row is not None
    return str(row["id"]), bool(row["created"])


async def add_alias(conn: DictConnection, user_id: str, entity_id: str, alias: str) -> None:
    await conn.execute(
        "UPDATE graph_entities SET aliases = array_append(aliases, %s)"
        " WHERE user_id = %s AND id = %s AND name <> %s AND NOT (%s = ANY (aliases))",
        (alias, user_id, entity_id, alias, alias),
    )


async def add_mention(conn: DictConnection, user_id: str, entity_id: str, chunk_id: str, document_id: str) -> None:
    await conn.execute(
        "INSERT INTO graph_mentions (user_id, entity_id, chunk_id, document_id) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT DO NOTHING",
        (user_id, entity_id, chunk_id, document_id),
    )


async def add_relation(
    conn: DictConnection,
    user_id: str,
    source_id: str,
    target_id: str,
    relation_type: str,
    description: str,
    chunk_id: str,
    document_id: str,
) -> bool:
    cur = await conn.execute(
        "INSERT INTO graph_relations (user_id, source_id, target_id, relation_type, description, chunk_id,"
        " document_id) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
        (user_id, source_id, target_id, relation_type, description, chunk_id, document_id),
    )
    return cur.rowcount > 0


async def add_attribute(
    conn: DictConnection, user_id: str, entity_id: str, key: str, value: str, chunk_id: str, document_id: str
) -> bool:
    cur = await conn.execute(
        "INSERT INTO graph_attributes (user_id, entity_id, key, value, chunk_id, document_id)"
        " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
        (user_id, entity_id, key, value, chunk_id, document_id),
    )
    return cur.rowcount > 0


async def list_documents(conn: DictConnection, user_id: str) -> list[dict[str, Any]]:
    return await fetch_all(
        conn,
        "SELECT d.id::text AS resource_id, d.file_id, d.source_name, d.source_metadata, d.status, d.chunk_count,"
        " d.chunks_failed, d.model, d.created_at,"
        " (SELECT count(DISTINCT m.entity_id) FROM graph_mentions m WHERE m.user_id = d.user_id"
        "   AND m.document_id = d.id) AS entities,"
        " (SELECT count(*) FROM graph_relations r WHERE r.user_id = d.user_id AND r.document_id = d.id) AS relations,"
        " (SELECT count(*) FROM graph_attributes a WHERE a.user_id = d.user_id AND a.document_id = d.id)"
        "   AS attributes"
        " FROM graph_documents d WHERE d.user_id = %s ORDER BY d.created_at DESC, d.id",
        (user_id,),
    )


async def totals(conn: DictConnection, user_id: str) -> dict[str, int]:
    row = await fetch_one(
        conn,
        "SELECT (SELECT count(*) FROM graph_documents WHERE user_id = %(u)s) AS documents,"
        " (SELECT count(*) FROM graph_entities WHERE user_id = %(u)s) AS entities,"
        " (SELECT count(*) FROM graph_relations WHERE user_id = %(u)s) AS relations,"
        " (SELECT count(*) FROM graph_attributes WHERE user_id = %(u)s) AS attributes",
        {"u": user_id},
    )
    return {k: int(v) for k, v in (row or {}).items()}


async def delete_document(conn: DictConnection, user_id: str, document_id: str) -> bool:
    """The document with its chunks and every fact citing them; then entities no longer mentioned anywhere."""
    cur = await conn.execute("DELETE FROM graph_documents WHERE user_id = %s AND id = %s", (user_id, document_id))
    if cur.rowcount == 0:
        return False
    await conn.execute(
        "DELETE FROM graph_entities e WHERE e.user_id = %s"
        " AND NOT EXISTS (SELECT 1 FROM graph_mentions m WHERE m.entity_id = e.id)",
        (user_id,),
    )
    return True


async def link(
    conn: DictConnection,
    user_id: str,
    vector: list[float],
    model: str,
    top_k: int,
    min_similarity: float,
    document_id: str | None = None,
) -> list[dict[str, Any]]:
    """Entities whose name embedding is closest to the question (exact per-user scan, like knowledge search)."""
    rows = await fetch_all(
        conn,
        f"SELECT id::text, name, entity_type, 1 - (embedding::vector({DIM}) <=> %(v)s::vector({DIM})) AS score"
        f" FROM graph_entities e WHERE user_id = %(u)s AND embedding_model = %(m)s AND {_IN_DOCUMENT}"
        f" ORDER BY embedding::vector({DIM}) <=> %(v)s::vector({DIM}) LIMIT %(k)s",
        {"u": user_id, "m": model, "k": top_k, "v": vector_literal(vector), "doc": document_id},
    )
    return [r for r in rows if float(r["score"]) >= min_similarity]


async def named_in(
    conn: DictConnection, user_id: str, question_key: str, limit: int, document_id: str | None = None
) -> list[dict[str, Any]]:
    """Entities whose whole name (key) appears in the question's key, longest names first."""
    return await fetch_all(
        conn,
        "SELECT id::text, name, entity_type, 1.0::float AS score FROM graph_entities e WHERE user_id = %(u)s"
        f" AND strpos(' ' || %(q)s || ' ', ' ' || name_key || ' ') > 0 AND {_IN_DOCUMENT}"
        " ORDER BY length(name_key) DESC LIMIT %(k)s",
        {"u": user_id, "q": question_key, "k": limit, "doc": document_id},
    )


async def walk(
    conn: DictConnection,
    user_id: str,
    seeds: list[str],
    hops: int,
    max_nodes: int,
    document_id: str | None,
    fanout: int = 200,
) -> list[dict[str, Any]]:
    """Entities within `hops` edges (either direction) of the seeds, nearest first, at most `max_nodes`.

    Each direction is its own index lookup, and each entity expands along at most `fanout` edges per direction,
    so a hub with thousands of edges can't make one hop read thousands of rows (the p95 of docs/benchmarks.md).
    """
    return await fetch_all(
        conn,
        "WITH RECURSIVE walk (entity_id, depth) AS ("
        "  SELECT e.id, 0 FROM graph_entities e WHERE e.user_id = %(u)s AND e.id = ANY (%(seeds)s::uuid[])"
        " UNION"
        "  SELECT n.id, w.depth + 1 FROM walk w CROSS JOIN LATERAL ("
        "    (SELECT r.target_id AS id FROM graph_relations r WHERE r.user_id = %(u)s AND r.source_id = w.entity_id"
        "       AND (%(doc)s::uuid IS NULL OR r.document_id = %(doc)s::uuid) LIMIT %(f)s)"
        "    UNION ALL"
        "    (SELECT r.source_id FROM graph_relations r WHERE r.user_id = %(u)s AND r.target_id = w.entity_id"
        "       AND (%(doc)s::uuid IS NULL OR r.document_id = %(doc)s::uuid) LIMIT %(f)s)"
        "  ) n WHERE w.depth < %(k)s"
        ") SELECT entity_id::text AS id, min(depth) AS depth FROM walk GROUP BY entity_id"
        " ORDER BY min(depth), entity_id LIMIT %(n)s",
        {"u": user_id, "seeds": seeds, "k": hops, "n": max_nodes, "doc": document_id, "f": fanout},
    )


async def entities(conn: DictConnection, user_id: str, ids: list[str]) -> list[dict[str, Any]]:
    return await fetch_all(
        conn,
        "SELECT id::text, name, entity_type, description, aliases FROM graph_entities"
        " WHERE user_id = %s AND id = ANY (%s::uuid[])",
        (user_id, ids),
    )


async def _of_entities(
    conn: DictConnection,
    select: str,
    match: str,
    user_id: str,
    ids: list[str],
    document_id: str | None,
    tail: str = "",
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """`select` ("... FROM table alias") where `match` holds for the caller's entity `ids` (%(ids)s), limited to
    one document's rows unless `document_id` is None; `tail` orders and limits (%(n)s)."""
    alias = select.rsplit(" ", 1)[1]
    return await fetch_all(
        conn,
        f"{select} WHERE {alias}.user_id = %(u)s AND {match}"
        f" AND (%(doc)s::uuid IS NULL OR {alias}.document_id = %(doc)s::uuid){tail}",
        {"u": user_id, "ids": ids, "doc": document_id, "n": limit},
    )


async def relations_among(
    conn: DictConnection, user_id: str, ids: list[str], document_id: str | None, limit: int
) -> list[dict[str, Any]]:
    return await _of_entities(
        conn,
        "SELECT r.id::text, r.source_id::text, r.target_id::text, r.relation_type, r.description,"
        " r.chunk_id::text, r.document_id::text FROM graph_relations r",
        "r.source_id = ANY (%(ids)s::uuid[]) AND r.target_id = ANY (%(ids)s::uuid[])",
        user_id,
        ids,
        document_id,
        " ORDER BY r.created_at, r.id LIMIT %(n)s",
        limit,
    )


async def attributes_of(
    conn: DictConnection, user_id: str, ids: list[str], document_id: str | None, limit: int
) -> list[dict[str, Any]]:
    select = "SELECT a.entity_id::text, a.key, a.value, a.chunk_id::text, a.document_id::text FROM graph_attributes a"
    match = "a.entity_id = ANY (%(ids)s::uuid[])"
    return await _of_entities(
        conn, select, match, user_id, ids, document_id, " ORDER BY a.key, a.id LIMIT %(n)s", limit
    )


async def mentions_of(
    conn: DictConnection, user_id: str, ids: list[str], document_id: str | None
) -> list[dict[str, Any]]:
    select = "SELECT m.entity_id::text, m.chunk_id::text FROM graph_mentions m"
    return await _of_entities(conn, select, "m.entity_id = ANY (%(ids)s::uuid[])", user_id, ids, document_id)


async def chunks(conn: DictConnection, user_id: str, ids: list[str]) -> list[dict[str, Any]]:
    return await fetch_all(
        conn,
        "SELECT c.id::text, c.document_id::text, c.chunk_index, c.content, d.source_name FROM graph_chunks c"
        " JOIN graph_documents d ON d.user_id = c.user_id AND d.id = c.document_id"
        " WHERE c.user_id = %s AND c.id = ANY (%s::uuid[])",
        (user_id, ids),
    )


async def document_exists(conn: DictConnection, user_id: str, document_id: str) -> bool:
    return (
        await fetch_one(conn, "SELECT 1 FROM graph_documents WHERE user_id = %s AND id = %s", (user_id, document_id))
        is not None
    )


async def entity_catalog(conn: DictConnection, user_id: str, per_type: int) -> list[dict[str, Any]]:
    """Entity types with counts and their most connected entities (symbolic://entities/catalog)."""
    return await fetch_all(
        conn,
        "WITH degree AS (SELECT e.id, e.name, e.entity_type, (SELECT count(*) FROM graph_relations r"
        "   WHERE r.user_id = e.user_id AND (r.source_id = e.id OR r.target_id = e.id)) AS degree"
        "   FROM graph_entities e WHERE e.user_id = %s),"
        " ranked AS (SELECT *, row_number() OVER (PARTITION BY entity_type ORDER BY degree DESC, name) AS rank,"
        "   count(*) OVER (PARTITION BY entity_type) AS n FROM degree)"
        " SELECT entity_type, n AS count, json_agg(json_build_object('id', id::text, 'name', name, 'degree', degree)"
        "   ORDER BY rank) AS top FROM ranked WHERE rank <= %s GROUP BY entity_type, n ORDER BY n DESC, entity_type",
        (user_id, per_type),
    )


async def relation_mapping(conn: DictConnection, user_id: str) -> list[dict[str, Any]]:
    """Relation types by (source type, target type) with counts (symbolic://relationships/mapping)."""
    return await fetch_all(
        conn,
        "SELECT r.relation_type, s.entity_type AS source_type, t.entity_type AS target_type, count(*) AS count"
        " FROM graph_relations r JOIN graph_entities s ON s.user_id = r.user_id AND s.id = r.source_id"
        " JOIN graph_entities t ON t.user_id = r.user_id AND t.id = r.target_id WHERE r.user_id = %s"
        " GROUP BY 1, 2, 3 ORDER BY count(*) DESC, 1, 2, 3 LIMIT 200",
        (user_id,),
    )
