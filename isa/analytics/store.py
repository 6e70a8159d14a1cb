"""All SQL of the analytics domain: analytics_tables (the user's table catalogue) and its db_meta_embedding rows.

Every statement filters on user_id: a dataset belongs to its owner in SQL, not by convention in Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from isa.core.db import DictConnection, fetch_all, fetch_one, vector_literal

_COLUMNS = (
    "id::text AS id, database_name, table_name, source_kind, source_ref, source_type, storage_key, size_bytes,"
    " row_count, columns, description, created_at, updated_at"
)


@dataclass(frozen=True)
class TableRow:
    id: str
    database_name: str
    table_name: str
    source_kind: str
    source_ref: str
    source_type: str
    storage_key: str
    size_bytes: int
    row_count: int
    columns: list[dict[str, Any]]
    description: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class MetaEntity:
    """One db_meta_embedding row to write: a table or a column of the user's table."""

    entity_type: str  # "table" or "column"
    entity_name: str
    entity_full_name: str
    content: str
    search_text: str
    metadata: dict[str, Any]
    embedding: Sequence[float]


async def count_tables(conn: DictConnection, user_id: str) -> int:
    row = await fetch_one(conn, "SELECT count(*) AS n FROM analytics_tables WHERE user_id = %s", (user_id,))
    return int(row["n"]) if row else 0


async def lock_user(conn: DictConnection, user_id: str) -> bool:
    """Serialise one user's catalogue changes (row lock on users); False when the user does not exist."""
    return await fetch_one(conn, "SELECT 1 FROM users WHERE user_id = %s FOR UPDATE", (user_id,)) is not None


async def get_table(conn: DictConnection, user_id: str, database_name: str, table_name: str) -> TableRow | None:
    row = await fetch_one(
        conn,
        f"SELECT {_COLUMNS} FROM analytics_tables WHERE user_id = %s AND database_name = %s AND table_name = %s",
        (user_id, database_name, table_name),
    )
    return TableRow(**row) if row else None


async def list_tables(conn: DictConnection, user_id: str, database_name: str | None = None) -> list[TableRow]:
    rows = await fetch_all(
        conn,
        f"SELECT {_COLUMNS} FROM analytics_tables WHERE user_id = %s"
        " AND (%s::text IS NULL OR database_name = %s) ORDER BY database_name, table_name",
        (user_id, database_name, database_name),
    )
    return [TableRow(**r) for r in rows]


async def upsert_table(
    conn: DictConnection,
    user_id: str,
    *,
    database_name: str,
    table_name: str,
    source_kind: str,
    source_ref: str,
    source_type: str,
    storage_key: str,
    size_bytes: int,
    row_count: int,
    columns: list[dict[str, Any]],
    description: str,
) -> TableRow:
    row = await fetch_one(
        conn,
        "INSERT INTO analytics_tables (user_id, database_name, table_name, source_kind, source_ref, source_type,"
        " storage_key, size_bytes, row_count, columns, description)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (user_id, database_name, table_name) DO UPDATE SET source_kind = EXCLUDED.source_kind,"
        " source_ref = EXCLUDED.source_ref, source_type = EXCLUDED.source_type, storage_key = EXCLUDED.storage_key,"
        " size_bytes = EXCLUDED.size_bytes, row_count = EXCLUDED.row_count, columns = EXCLUDED.columns,"
        f" description = EXCLUDED.description RETURNING {_COLUMNS}",
        (
            user_id,
            database_name,
            table_name,
            source_kind,
            source_ref,
            source_type,
            storage_key,
            size_bytes,
            row_count,
            Jsonb(columns),
            description,
        ),
    )
    assert row is not None
    return TableRow(**row)


async def delete_tables(conn: DictConnection, user_id: str, database_name: str, table_name: str | None) -> list[str]:
    """Remove one table (or a whole database) and its metadata; the storage keys whose objects must go."""
    gone = await fetch_all(
        conn,
        "DELETE FROM analytics_tables WHERE user_id = %s AND database_name = %s"
        " AND (%s::text IS NULL OR table_name = %s) RETURNING storage_key, table_name",
        (user_id, database_name, table_name, table_name),
    )
    for row in gone:
        await delete_meta(conn, user_id, database_name, str(row["table_name"]))
    return [str(r["storage_key"]) for r in gone]


async def delete_meta(conn: DictConnection, user_id: str, database_name: str, table_name: str) -> None:
    await conn.execute(
        "DELETE FROM db_meta_embedding WHERE user_id = %s AND database_source = %s"
        " AND (entity_full_name = %s OR entity_full_name LIKE %s)",
        (user_id, database_name, table_name, table_name.replace("_", r"\_") + ".%"),
    )


async def insert_meta(
    conn: DictConnection, user_id: str, database_name: str, model: str, entities: Sequence[MetaEntity]
) -> None:
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO db_meta_embedding (user_id, database_source, entity_type, entity_name, entity_full_name,"
            " content, search_text, metadata, confidence_score, source_step, embedding, embedding_model)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 1.0, 1, %s::vector, %s)",
            [
                (
                    user_id,
                    database_name,
                    e.entity_type,
                    e.entity_name,
                    e.entity_full_name,
                    e.content,
                    e.search_text,
                    Jsonb(e.metadata),
                    vector_literal(e.embedding),
                    model,
                )
                for e in entities
            ],
        )


async def search_meta(
    conn: DictConnection,
    user_id: str,
    *,
    query: str,
    vector: Sequence[float],
    model: str,
    dimensions: int,
    database_name: str | None,
    limit: int,
    lexical_weight: float,
) -> list[dict[str, Any]]:
    """The user's tables and columns ranked by (1 - w) * cosine + w * ts_rank / max ts_rank (exact: a user's
    metadata is hundreds of rows, so a scan of their rows is cheaper than an index probe plus re-rank)."""
    return await fetch_all(
        conn,
        f"""
        WITH q AS (
            SELECT %(vec)s::vector({int(dimensions)}) AS v,
                   to_tsquery('english', coalesce(nullif(array_to_string(
                       array(SELECT lexeme FROM unnest(to_tsvector('english', %(text)s))), ' | '), ''), 'isa_nothing'))
                   AS tq
        ), scored AS (
            SELECT m.database_source, m.entity_type, m.entity_name, m.entity_full_name, m.content, m.metadata,
                   1 - (m.embedding::vector({int(dimensions)}) <=> q.v) AS cosine,
                   ts_rank_cd(m.search_tsv, q.tq) AS lexical
            FROM db_meta_embedding m, q
            WHERE m.user_id = %(user)s AND m.embedding_model = %(model)s
              AND (%(db)s::text IS NULL OR m.database_source = %(db)s)
        )
        SELECT *, (1 - %(w)s) * cosine
                  + %(w)s * CASE WHEN max(lexical) OVER () > 0 THEN lexical / max(lexical) OVER () ELSE 0 END AS score
        FROM scored ORDER BY score DESC, entity_full_name LIMIT %(limit)s
        """,
        {
            "vec": vector_literal(vector),
            "text": query,
            "user": user_id,
            "model": model,
            "db": database_name,
            "w": lexical_weight,
            "limit": limit,
        },
    )


async def meta_counts(conn: DictConnection, user_id: str) -> dict[str, int]:
    rows = await fetch_all(
        conn,
        "SELECT entity_type, count(*) AS n FROM db_meta_embedding WHERE user_id = %s GROUP BY entity_type",
        (user_id,),
    )
    return {str(r["entity_type"]): int(r["n"]) for r in rows}
