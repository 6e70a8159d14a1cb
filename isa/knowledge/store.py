"""SQL of knowledge (RAG): `user_knowledge` rows of one user; BM25 statistics kept by migration 0019's triggers."""

from __future__ import annotations

from typing import Any

from psycopg import sql
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
    return stats_of(row)


def stats_of(row: dict[str, Any] | None) -> Bm25Stats:
    """Bm25Stats from a user_knowledge_bm25_stats row (entries, total_len), or of a user without one."""
    entries = int(row["entries"]) if row and row["entries"] is not None else 0
    mean = float(row["total_len"]) / entries if row and entries else 1.0
    return Bm25Stats(rows=max(entries, 1), len_a=max(mean, 1.0), len_b=0.0, len_c=0.0)


async def search_state(conn: DictConnection, user_id: str, text: str, config: str) -> dict[str, Any]:
    """In one primary-key lookup: the user's BM25 statistics (entries, total_len; NULL without chunks), migration
    0043's `generation` and `reload_generation`, and the query's distinct lexemes (`terms`, sorted) as the SQL
    lexical arm takes them (isa.core.search: to_tsvector(config, text))."""
    row = await fetch_one(
        conn,
        sql.SQL(
            "SELECT s.entries, s.total_len, s.generation, s.reload_generation,"
            " ARRAY(SELECT DISTINCT u.lexeme FROM unnest(to_tsvector({cfg}, %(text)s)) u ORDER BY 1) AS terms"
            " FROM (SELECT) o LEFT JOIN user_knowledge_bm25_stats s ON s.user_id = %(user_id)s"
        ).format(cfg=sql.Literal(config)),
        {"user_id": user_id, "text": text},
    )
    assert row is not None
    return row


# The dense arm's rows of a user and model: `mine` (embedding of the model, sign bits set). The local index
# (isa/knowledge/local_index.py) holds their ids and sign bits; packed big-endian into one bytea per column.
_MINE = "t.embedding_model = %(model)s AND t.embedding_bits IS NOT NULL"


async def dense_rows(conn: DictConnection, user_id: str, model: str) -> dict[str, Any]:
    """Every row of the user's in `model`: n, ids (uuid_send), bits (varbit_send), and `newest`, the epoch of the
    user's latest created_at (any model; NULL without rows)."""
    row = await fetch_one(
        conn,
        "SELECT count(*) AS n, string_agg(uuid_send(t.id), ''::bytea) AS ids,"
        " string_agg(varbit_send(t.embedding_bits), ''::bytea) AS bits,"
        " (SELECT date_part('epoch', max(c.created_at)) FROM user_knowledge c WHERE c.user_id = %(user_id)s)"
        f" AS newest FROM user_knowledge t WHERE t.user_id = %(user_id)s AND {_MINE}",
        {"user_id": user_id, "model": model},
    )
    assert row is not None
    return row


async def dense_rows_since(conn: DictConnection, user_id: str, model: str, since: float) -> dict[str, Any]:
    """The user's rows created at or after `since` (epoch; any model, through the (user_id, created_at) index):
    n (all of them), others (those not in `model`), and ids, bits of the model's ones, newest as dense_rows."""
    row = await fetch_one(
        conn,
        "SELECT count(*) AS n, count(*) FILTER (WHERE NOT coalesce(" + _MINE + ", false)) AS others,"
        " string_agg(uuid_send(t.id), ''::bytea) FILTER (WHERE " + _MINE + ") AS ids,"
        " string_agg(varbit_send(t.embedding_bits), ''::bytea) FILTER (WHERE " + _MINE + ") AS bits,"
        " date_part('epoch', max(t.created_at)) AS newest"
        " FROM user_knowledge t WHERE t.user_id = %(user_id)s AND t.created_at >= to_timestamp(%(since)s)",
        {"user_id": user_id, "model": model, "since": since},
    )
    assert row is not None
    return row
