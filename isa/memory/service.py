"""Long-term memory: extract, deduplicate, embed and store in one transaction; search a user's memories exactly."""

from __future__ import annotations

import hashlib
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import anyio.to_thread

from isa.core.db import Database
from isa.core.embeddings import Embedder
from isa.core.logging import get_logger
from isa.memory import extract, store
from isa.memory.settings import MemorySettings
from isa.memory.store import Blend, Filters

log = get_logger(__name__)


def content_hash(text: str) -> str:
    return hashlib.sha256(" ".join(text.split()).lower().encode()).hexdigest()


class NotFound(Exception):
    """The object does not exist for this user (whether or not someone else has it)."""


class MemoryService:
    def __init__(self, db: Database, embedder: Embedder, settings: MemorySettings) -> None:
        self.db = db
        self.embedder = embedder
        self.settings = settings
        self._limiter = anyio.CapacityLimiter(max(1, settings.embed_threads))

    @property
    def blend(self) -> Blend:
        s = self.settings
        return Blend(s.weight_similarity, s.weight_importance, s.weight_recency, s.recency_half_life_days)

    async def embed(self, texts: list[str]) -> list[list[float]]:
        matrix = await anyio.to_thread.run_sync(self.embedder.embed_batch, texts, limiter=self._limiter)
        return [[float(x) for x in row] for row in matrix]

    async def _store_one(
        self, user_id: str, memory_type: str, values: dict[str, Any], vector: list[float], importance: float
    ) -> dict[str, Any]:
        """Insert, or reinforce the identical memory already stored (same normalised content)."""
        digest = content_hash(values["content"])
        async with self.db.transaction() as conn:
            await store.lock(conn, user_id, memory_type, digest)
            existing = await store.find_by_hash(conn, memory_type, user_id, digest)
            if existing is not None:
                await store.reinforce(conn, memory_type, user_id, existing, importance)
                return {"memory_type": memory_type, "id": existing, "action": "reinforced"}
            row = await store.insert(
                conn,
                memory_type,
                {
                    **values,
                    "user_id": user_id,
                    "content_hash": digest,
                    "importance_score": importance,
                    "embedding": vector,
                },
                self.embedder.model_name,
            )
        return {"memory_type": memory_type, "id": row["id"], "action": "created", "content": values["content"]}

    async def store_facts(self, user_id: str, dialog: str, importance: float) -> list[dict[str, Any]]:
        """Facts from the dialog; a fact on the same subject+predicate is updated (or reinforced), never copied."""
        facts = extract.extract_facts(dialog)
        vectors = await self.embed([f.content for f in facts])
        results: list[dict[str, Any]] = []
        for fact, vector in zip(facts, vectors, strict=True):
            if fact.predicate == "note":
                values = {
                    "content": fact.content,
                    "fact_type": fact.fact_type,
                    "subject": fact.subject,
                    "predicate": fact.predicate,
                    "object_value": fact.object_value,
                }
                results.append(await self._store_one(user_id, "factual", values, vector, importance))
                continue
            async with self.db.transaction() as conn:
                await store.lock(conn, user_id, "fact", fact.subject.lower(), fact.predicate.lower())
                old = await store.find_fact(conn, user_id, fact.subject, fact.predicate)
                if old is None:
                    row = await store.insert(
                        conn,
                        "factual",
                        {
                            **asdict(fact),
                            "user_id": user_id,
                            "content_hash": content_hash(fact.content),
                            "importance_score": importance,
                            "embedding": vector,
                        },
                        self.embedder.model_name,
                    )
                    action, fact_id = "created", row["id"]
                elif old["object_value"].strip().lower() == fact.object_value.strip().lower():
                    await store.reinforce(conn, "factual", user_id, old["id"], importance)
                    action, fact_id = "reinforced", old["id"]
                else:
                    await store.update_fact(
                        conn,
                        user_id,
                        old["id"],
                        {
                            "content": fact.content,
                            "object_value": fact.object_value,
                            "fact_type": fact.fact_type,
                            "content_hash": content_hash(fact.content),
                            "importance_score": max(importance, float(old["importance_score"])),
                            "embedding": vector,
                        },
                        self.embedder.model_name,
                    )
                    action, fact_id = "updated", old["id"]
            results.append({"memory_type": "factual", "id": fact_id, "action": action, **asdict(fact)})
        log.info("memory_facts_stored", count=len(results))
        return results

    async def store_episode(
        self, user_id: str, dialog: str, occurred_at: datetime | None, importance: float
    ) -> dict[str, Any]:
        (vector,) = await self.embed([dialog])
        values = {
            "content": dialog.strip(),
            "episode_title": extract.episode_title(dialog),
            "participants": extract.participants(dialog),
            "occurred_at": occurred_at or datetime.now(UTC),
        }
        return await self._store_one(user_id, "episodic", values, vector, importance)

    async def store_concept(self, user_id: str, dialog: str, category: str | None, importance: float) -> dict[str, Any]:
        name, definition = extract.extract_concept(dialog)
        (vector,) = await self.embed([dialog])
        values = {
            "content": dialog.strip(),
            "concept_name": name,
            "concept_category": category,
            "definition": definition,
        }
        return await self._store_one(user_id, "semantic", values, vector, importance)

    async def store_procedure(self, user_id: str, dialog: str, domain: str | None, importance: float) -> dict[str, Any]:
        (vector,) = await self.embed([dialog])
        values = {
            "content": dialog.strip(),
            "procedure_name": extract.procedure_name(dialog),
            "domain": domain,
            "steps": extract.extract_steps(dialog),
        }
        return await self._store_one(user_id, "procedural", values, vector, importance)

    async def store_working(
        self, user_id: str, dialog: str, ttl_seconds: int, context_type: str, importance: float
    ) -> dict[str, Any]:
        (vector,) = await self.embed([dialog])
        expires = datetime.now(UTC) + timedelta(seconds=ttl_seconds)
        values = {
            "content": dialog.strip(),
            "context_type": context_type,
            "expires_at": expires,
            "current_step": extract.sentences(dialog)[0] if dialog.strip() else None,
        }
        result = await self._store_one(user_id, "working", values, vector, importance)
        if result["action"] == "reinforced":  # the same task again: its TTL restarts
            async with self.db.connection() as conn:
                await conn.execute(
                    "UPDATE working_memories SET expires_at = greatest(expires_at, %s) WHERE id = %s AND user_id = %s",
                    (expires, result["id"], user_id),
                )
        return {**result, "expires_at": expires.isoformat()}

    async def store_session_message(
        self, user_id: str, session_id: str, content: str, message_type: str, role: str, importance: float
    ) -> dict[str, Any]:
        async with self.db.transaction() as conn:
            cur = await conn.execute(
                "SELECT id FROM sessions WHERE id = %s AND user_id = %s FOR UPDATE", (session_id, user_id)
            )
            if await cur.fetchone() is None:
                raise NotFound(f"no session {session_id}")
            cur = await conn.execute(
                "INSERT INTO session_messages (session_id, user_id, message_type, role, content, importance_score)"
                " VALUES (%s, %s, %s, %s, %s, %s) RETURNING id::text, created_at",
                (session_id, user_id, message_type, role, content, importance),
            )
            row = await cur.fetchone()
            await conn.execute(
                "UPDATE sessions SET message_count = message_count + 1, last_activity_at = now()"
                " WHERE id = %s AND user_id = %s",
                (session_id, user_id),
            )
        assert row is not None
        return {"id": row["id"], "session_id": session_id, "created_at": row["created_at"].isoformat()}

    async def search(
        self, user_id: str, query: str, filters: Filters, limit: int, min_similarity: float = -1.0
    ) -> list[dict[str, Any]]:
        (vector,) = await self.embed([query])
        async with self.db.connection() as conn:
            rows = await store.search(
                conn, user_id, vector, self.embedder.model_name, filters, self.blend, limit, min_similarity
            )
        return [_hit(r) for r in rows]

    async def list_type(
        self, user_id: str, memory_type: str, where: str, params: dict[str, Any], limit: int
    ) -> list[dict[str, Any]]:
        async with self.db.connection() as conn:
            rows = await store.list_rows(conn, memory_type, user_id, where, params, limit)
        return [_plain(r) for r in rows]

    async def session_context(
        self, user_id: str, session_id: str, include_summaries: bool, max_recent: int
    ) -> dict[str, Any]:
        async with self.db.connection() as conn:
            cur = await conn.execute(
                "SELECT id::text, title, status, message_count, session_summary, created_at, last_activity_at"
                " FROM sessions WHERE id = %s AND user_id = %s",
                (session_id, user_id),
            )
            session = await cur.fetchone()
            if session is None:
                raise NotFound(f"no session {session_id}")
            cur = await conn.execute(
                "SELECT * FROM (SELECT role, message_type, content, created_at, seq FROM session_messages"
                " WHERE session_id = %s AND user_id = %s ORDER BY seq DESC LIMIT %s) m ORDER BY seq",
                (session_id, user_id, max_recent),
            )
            messages = [_plain({k: v for k, v in r.items() if k != "seq"}) for r in await cur.fetchall()]
            summary = None
            if include_summaries:
                cur = await conn.execute(
                    "SELECT conversation_summary, key_decisions, ongoing_tasks, important_facts, last_summary_at"
                    " FROM session_memories WHERE session_id = %s AND user_id = %s",
                    (session_id, user_id),
                )
                found = await cur.fetchone()
                summary = _plain(found) if found else None
        return {"session": _plain(session), "recent_messages": messages, "summary": summary}

    async def statistics(self, user_id: str) -> dict[str, Any]:
        async with self.db.connection() as conn:
            counts = await store.statistics(conn, user_id)
        total = sum(int(counts[t]) for t in store.MEMORY_TYPES)
        return {
            "counts": counts,
            "total_memories": total,
            "embedding_model": self.embedder.model_name,
            "extraction": "rule-based (no language model wired)",
        }


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}


def _hit(row: dict[str, Any]) -> dict[str, Any]:
    out = _plain(row)
    out["similarity"] = round(float(row["similarity"]), 4)
    out["score"] = round(float(row["score"]), 4)
    details = out.pop("details") or {}
    out.update({k: v for k, v in details.items()})
    return out
