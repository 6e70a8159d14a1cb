"""Synthetic memory rows (random unit-ish 384-d vectors) for plan tests and the memory benchmark."""

from __future__ import annotations

from typing import Any

import psycopg

MODEL = "all-MiniLM-L6-v2"
# Per type: the extra NOT NULL columns and the SQL giving their values (g = the row number).
EXTRA = {
    "factual_memories": ("fact_type, subject, predicate, object_value", "'note', 'user', 'p' || g, 'v' || g"),
    "episodic_memories": ("episode_title", "'episode ' || g"),
    "semantic_memories": ("concept_name, concept_category", "'concept ' || g, 'cat' || (g %% 7)"),
    "procedural_memories": ("procedure_name", "'procedure ' || g"),
    "working_memories": ("context_type, expires_at", "'task', now() + interval '1 day'"),
}


def seed(
    conn: psycopg.Connection[Any], users: int, rows_per_table: int, tables: tuple[str, ...] = tuple(EXTRA)
) -> None:
    """`rows_per_table` rows in each table, spread evenly over users bench-0 .. bench-{users-1}."""
    conn.execute(
        "INSERT INTO users (user_id, email, name) SELECT 'bench-' || i, 'bench-' || i || '@example.test', 'b'"
        " FROM generate_series(0, %s) i ON CONFLICT DO NOTHING",
        (users - 1,),
    )
    for table in tables:
        cols, values = EXTRA[table]
        conn.execute(
            f"INSERT INTO {table} (user_id, content, {cols}, importance_score, created_at, embedding, embedding_model)"
            f" SELECT 'bench-' || (g %% %s), 'memory ' || g, {values}, random(),"
            " now() - random() * interval '365 days', v.vec, %s"
            " FROM generate_series(1, %s) g CROSS JOIN LATERAL"
            " (SELECT array_agg(random() - 0.5)::vector AS vec FROM generate_series(1, 384) d WHERE g > 0) v",
            (users, MODEL, rows_per_table),
        )
        conn.execute(f"ANALYZE {table}")
