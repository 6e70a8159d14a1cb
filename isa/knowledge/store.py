"""SQL of knowledge (RAG): `user_knowledge` rows of one user; BM25 statistics kept by migration 0019's triggers."""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from isa.core.db import DictConnection, fetch_one, vector_literal
from isa.core.search import Bm25Stats


async def insert_chunk(
    conn: DictConnection,
    user_id: str,
    *,
    document_id: str | None,
    source: str | None,
    index: int,
    count: int | None,
    content: str,
    digest: str,
    metadata: dict[str, Any],
    vector: list[float],
    model: str,
) -> str:
    row = await fetch_one(
        conn,
        "INSERT INTO user_knowledge (user_id, document_id, source_document, chunk_index, chunk_count,"
        " content, content_hash, metadata, embedding, embedding_model)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s::vector(384), %s) RETURNING id::text",
        (user_id, document_id, source, index, count, content, digest, Jsonb(metadata), vector_literal(vector), model),
    )
    assert row is not None
    return str(row["id"])


async def item_by_hash(conn: DictConnection, user_id: str, digest: str) -> str | None:
    """A single (non-document) item with this content hash."""
    found = await fetch_one(
        conn,
        "SELECT id::text FROM user_knowledge WHERE user_id = %s AND content_hash = %s AND document_id IS NULL LIMIT 1",
        (user_id, digest),
    )
    return None if found is None else str(found["id"])


async def list_items(conn: DictConnection, user_id: str, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
    cur = await conn.execute(
        "SELECT id::text, document_id::text, source_document, chunk_index, chunk_count,"
        " left(content, 160) AS preview, metadata, created_at FROM user_knowledge WHERE user_id = %s"
        " ORDER BY created_at DESC, id LIMIT %s OFFSET %s",
        (user_id, limit, offset),
    )
    rows = list(await cur.fetchall())
    cur = await conn.execute("SELECT count(*) AS n FROM user_knowledge WHERE user_id = %s", (user_id,))
    total = await cur.fetchone()
    return rows, int(total["n"]) if total else 0


async def get_item(conn: DictConnection, user_id: str, item_id: str | None) -> dict[str, Any] | None:
    return await fetch_one(
        conn,
        "SELECT id::text, document_id::text, source_document, chunk_index, chunk_count, content, metadata,"
        " created_at FROM user_knowledge WHERE id = %s AND user_id = %s",
        (item_id, user_id),
    )


async def delete_item(conn: DictConnection, user_id: str, item_id: str | None, whole_document: bool) -> int:
    """Delete one item, or every chunk of its document; the number of rows deleted."""
    cur = await conn.execute(
        "DELETE FROM user_knowledge WHERE user_id = %(u)s AND (id = %(id)s OR (%(whole)s AND document_id ="
        " (SELECT document_id FROM user_knowledge WHERE id = %(id)s AND user_id = %(u)s)))",
        {"u": user_id, "id": item_id, "whole": whole_document},
    )
    return cur.rowcount


async def counts(conn: DictConnection, user_id: str) -> dict[str, Any] | None:
    return await fetch_one(
        conn,
        "SELECT count(*) AS items, count(DISTINCT document_id) AS documents FROM user_knowledge WHERE user_id = %s",
        (user_id,),
    )


async def bm25_stats(conn: DictConnection, user_id: str) -> Bm25Stats:
    """The user's BM25 N and mean chunk length (field A), kept by the 0019 triggers."""
    row = await fetch_one(
        conn, "SELECT entries, total_len FROM user_knowledge_bm25_stats WHERE user_id = %s", (user_id,)
    )
    entries = int(row["entries"]) if row else 0
    mean = float(row["total_len"]) / entries if row and entries else 1.0
    return Bm25Stats(rows=max(entries, 1), len_a=max(mean, 1.0), len_b=0.0, len_c=0.0)
