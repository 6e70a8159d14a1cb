"""KnowledgeService on the test database without an mcp node, with a deterministic embedder (for ranking tests)."""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from isa.core.db import Database
from isa.core.settings import Settings
from isa.knowledge.service import KnowledgeService
from isa.memory.service import MemoryService
from isa.memory.settings import MemorySettings
from tests.support.mcp_servers import sql


class HashEmbedder:
    """Bag of hashed words, normalised: texts sharing words are near; no model download, same vector every run."""

    model_name = "all-MiniLM-L6-v2"
    dimensions = 384

    def embed_batch(self, texts: list[str]) -> list[list[float]]:
        out = []
        for text in texts:
            v = [0.0] * self.dimensions
            for word in re.findall(r"[a-z0-9]+", text.lower()):
                v[int(hashlib.sha256(word.encode()).hexdigest(), 16) % self.dimensions] += 1.0
            n = math.sqrt(sum(x * x for x in v)) or 1.0
            out.append([x / n for x in v] if any(v) else [1.0] + [0.0] * (self.dimensions - 1))
        return out


def add_users(db_url: str, *users: str) -> None:
    for u in users:
        sql(
            db_url,
            "INSERT INTO users (user_id, email, name) VALUES (%s, %s, 't') ON CONFLICT DO NOTHING",
            (u, f"{u}@x.test"),
        )


@asynccontextmanager
async def knowledge(settings: Settings, db_url: str) -> AsyncIterator[KnowledgeService]:
    db = Database(db_url, settings)
    await db.open()
    try:
        yield KnowledgeService(MemoryService(db, HashEmbedder(), MemorySettings()))  # type: ignore[arg-type]
    finally:
        await db.close()


def postings(db_url: str, entry_id: str) -> dict[str, int]:
    """term -> tf of one knowledge row's postings."""
    rows = sql(db_url, "SELECT term, tf_a FROM user_knowledge_postings WHERE entry_id = %s", (entry_id,))
    return {r["term"]: int(r["tf_a"]) for r in rows}


def stats(db_url: str, user_id: str) -> tuple[int, int]:
    """(entries, total_len) kept by the triggers."""
    rows = sql(db_url, "SELECT entries, total_len FROM user_knowledge_bm25_stats WHERE user_id = %s", (user_id,))
    return (int(rows[0]["entries"]), int(rows[0]["total_len"])) if rows else (0, 0)


def recounted(db_url: str, user_id: str) -> tuple[int, int]:
    """The same statistics computed from scratch from user_knowledge."""
    rows = sql(
        db_url,
        "SELECT count(*) AS n, coalesce(sum(knowledge_tsv_length(search_tsv)), 0) AS len FROM user_knowledge"
        " WHERE user_id = %s",
        (user_id,),
    )
    return int(rows[0]["n"]), int(rows[0]["len"])
