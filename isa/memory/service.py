"""Long-term memory: extract (LLM or rules), deduplicate, embed and store in one transaction; search (store.py).

Each write transaction also holds the extraction's memory_extraction_logs row and today's memory_statistics row,
so the bookkeeping never disagrees with the memories.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import anyio.to_thread

from isa.auth.principal import Principal
from isa.core import pgvector
from isa.core.db import Database, DictConnection
from isa.core.embeddings import Embedder
from isa.core.logging import get_logger
from isa.core.pgvector import UPGRADE_HINT, has_iterative_scan
from isa.memory import extract, store
from isa.memory.llm_extract import Extractor, Outcome
from isa.memory.local_index import LocalIndex
from isa.memory.settings import MemorySettings
from isa.memory.store import Ann, Bits, Blend, Filters
from isa.users import sessions

log = get_logger(__name__)


def content_hash(text: str) -> str:
    return hashlib.sha256(" ".join(text.split()).lower().encode()).hexdigest()


class NotFound(Exception):
    """The object does not exist for this user (whether or not someone else has it)."""


class MemoryService:
    def __init__(
        self, db: Database, embedder: Embedder, settings: MemorySettings, extractor: Extractor | None = None
    ) -> None:
        self.db = db
        self.embedder = embedder
        self.settings = settings
        self.extractor = extractor or Extractor(None, "rules", settings.extraction_model)
        self._limiter = anyio.CapacityLimiter(max(1, settings.embed_threads))
        self._iterative_scan: bool | None = None  # pgvector >= 0.8, asked once
        self.local_index: LocalIndex | None = None
        if settings.local_index_min_rows > 0 and settings.local_index_max_bytes > 0:
            self.local_index = LocalIndex(
                settings.local_index_min_rows,
                settings.local_index_max_bytes,
                settings.local_index_max_age_seconds,
                settings.local_index_shortlist,
                settings.local_index_calibrate,
                settings.local_index_vectors,
            )

    async def ann(self, conn: DictConnection) -> Ann | Bits | None:
        """How search takes candidates: sign bits + exact re-rank (default), the HNSW index (pgvector >= 0.8,
        `search_shortlist = 0`) or None, an exact scan of the user's rows."""
        if self.settings.search_candidates == 0:
            return None
        if self.settings.search_shortlist > 0:
            return Bits(
                self.settings.search_candidates, max(self.settings.search_shortlist, self.settings.search_candidates)
            )
        if self._iterative_scan is None:
            self._iterative_scan = has_iterative_scan(await pgvector.installed(conn))
            if not self._iterative_scan:
                log.warning("pgvector < 0.8: memory search ranks every row of the user exactly", hint=UPGRADE_HINT)
        if not self._iterative_scan:
            return None
        return Ann(
            self.settings.search_candidates, max(self.settings.search_ef_search, self.settings.search_candidates)
        )

    @property
    def blend(self) -> Blend:
        s = self.settings
        return Blend(s.weight_similarity, s.weight_importance, s.weight_recency, s.recency_half_life_days)

    async def embed(self, texts: list[str]) -> list[list[float]]:
        matrix = await anyio.to_thread.run_sync(self.embedder.embed_batch, texts, limiter=self._limiter)
        return [[float(x) for x in row] for row in matrix]

    async def _log(
        self, conn: DictConnection, user_id: str, memory_type: str, text: str, outcome: Outcome[Any],
        results: list[dict[str, Any]], session_id: str | None = None,
    ) -> None:  # fmt: skip
        """The extraction's log row and today's statistics, in the transaction of the write."""
        created = sum(1 for r in results if r["action"] == "created")
        accessed = sum(1 for r in results if r["action"] == "reinforced")
        value = outcome.value
        extracted = [asdict(v) for v in value] if isinstance(value, list) else [asdict(value)]
        await store.log_extraction(
            conn, user_id, session_id=session_id, source_hash=content_hash(text), method=outcome.method,
            model=outcome.model, memory_types=[memory_type], extracted=extracted, created=created,
            error=outcome.error, ms=outcome.ms,
        )  # fmt: skip
        await store.bump_statistics(conn, user_id, created=created, accessed=accessed, extractions=1)

    async def _store_one(
        self,
        user_id: str,
        memory_type: str,
        dialog: str,
        importance: float,
        outcome: Outcome[Any] | None = None,
        **columns: Any,
    ) -> dict[str, Any]:
        """Insert `dialog` (embedded) with its `columns`, or reinforce the identical memory already stored (same
        normalised content); log; count."""
        (vector,) = await self.embed([dialog])
        values = {"content": dialog.strip(), **columns}
        digest = content_hash(values["content"])
        async with self.db.transaction() as conn:
            await store.lock(conn, user_id, memory_type)  # first, as in every memory write (see store.lock)
            await store.lock(conn, user_id, memory_type, digest)
            existing = await store.find_by_hash(conn, memory_type, user_id, digest)
            if existing is not None:
                await store.reinforce(conn, memory_type, user_id, existing, importance)
                if memory_type == "working":  # the same task again: its TTL restarts
                    await store.extend_working(conn, user_id, existing, values["expires_at"])
                result = {"memory_type": memory_type, "id": existing, "action": "reinforced"}
            else:
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
                result = {
                    "memory_type": memory_type,
                    "id": row["id"],
                    "action": "created",
                    "content": values["content"],
                }
            if outcome is not None:
                await self._log(conn, user_id, memory_type, values["content"], outcome, [result])
            else:
                created = int(result["action"] == "created")
                await store.bump_statistics(conn, user_id, created=created, accessed=1 - created)
        if outcome is not None:
            result["extraction"] = outcome.method
        return result

    async def store_facts(
        self,
        user_id: str,
        dialog: str,
        importance: float,
        principal: Principal | None = None,
        *,
        keep_notes: bool = True,
        session_id: str | None = None,
    ) -> tuple[list[dict[str, Any]], Outcome[list[extract.Fact]]]:
        """Facts from the dialog, all written in one transaction with the extraction's log row.

        A fact on the same subject+predicate is updated (or reinforced), never copied; `note` facts dedup by content.
        """
        outcome = await self.extractor.facts(principal, dialog, keep_notes)
        facts = outcome.value
        vectors = await self.embed([f.content for f in facts]) if facts else []
        results: list[dict[str, Any]] = []
        async with self.db.transaction() as conn:
            if session_id is not None and not await store.owns_session(conn, user_id, session_id):
                raise NotFound(f"no session {session_id}")
            await store.lock(conn, user_id, "factual")  # first, as in every memory write (see store.lock)
            # Every dedup key of this write, locked in a fixed order (two writers never wait on each other in a cycle).
            keys = sorted(
                ("factual", content_hash(f.content))
                if f.predicate == "note"
                else ("fact", f.subject.lower(), f.predicate)
                for f in facts
            )
            for key in dict.fromkeys(keys):
                await store.lock(conn, user_id, *key)
            for fact, vector in zip(facts, vectors, strict=True):
                results.append(await self._write_fact(conn, user_id, fact, vector, importance))
            await self._log(conn, user_id, "factual", dialog, outcome, results, session_id)
        log.info("memory_facts_stored", count=len(results), method=outcome.method)
        return results, outcome

    async def _write_fact(
        self, conn: DictConnection, user_id: str, fact: extract.Fact, vector: list[float], importance: float
    ) -> dict[str, Any]:
        """Insert, reinforce or update one fact (its dedup key is already locked)."""
        digest = content_hash(fact.content)
        if fact.predicate == "note":
            old_id = await store.find_by_hash(conn, "factual", user_id, digest)
            old: dict[str, Any] | None = None
            if old_id is not None:  # the same note text: reinforced like an identical fact
                old = {"id": old_id, "object_value": fact.object_value, "importance_score": 0}
        else:
            old = await store.find_fact(conn, user_id, fact.subject, fact.predicate)
        if old is None:
            row = await store.insert(
                conn,
                "factual",
                {**asdict(fact), "user_id": user_id, "content_hash": digest, "importance_score": importance,
                 "embedding": vector},
                self.embedder.model_name,
            )  # fmt: skip
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
                    "content_hash": digest,
                    "importance_score": max(importance, float(old["importance_score"])),
                    "embedding": vector,
                },
                self.embedder.model_name,
            )
            action, fact_id = "updated", old["id"]
        links = 0
        if action != "reinforced" and fact.predicate != "note":
            links = await store.link_fact(conn, user_id, fact_id, fact.subject, fact.object_value)
        return {"memory_type": "factual", "id": fact_id, "action": action, "associations": links, **asdict(fact)}

    async def store_episode(
        self,
        user_id: str,
        dialog: str,
        occurred_at: datetime | None,
        importance: float,
        principal: Principal | None = None,
    ) -> dict[str, Any]:
        outcome = await self.extractor.episode(principal, dialog)
        episode = outcome.value
        when = occurred_at or datetime.now(UTC)
        return await self._store_one(
            user_id, "episodic", dialog, importance, outcome,
            episode_title=episode.title, participants=episode.participants, occurred_at=when,
        )  # fmt: skip

    async def store_concept(
        self, user_id: str, dialog: str, category: str | None, importance: float, principal: Principal | None = None
    ) -> dict[str, Any]:
        outcome = await self.extractor.concept(principal, dialog)
        concept = {"concept_name": outcome.value.name, "definition": outcome.value.definition}
        return await self._store_one(
            user_id, "semantic", dialog, importance, outcome, concept_category=category, **concept
        )

    async def store_procedure(
        self, user_id: str, dialog: str, domain: str | None, importance: float, principal: Principal | None = None
    ) -> dict[str, Any]:
        outcome = await self.extractor.procedure(principal, dialog)
        procedure = {"procedure_name": outcome.value.name, "steps": outcome.value.steps}
        return await self._store_one(user_id, "procedural", dialog, importance, outcome, domain=domain, **procedure)

    async def store_working(
        self, user_id: str, dialog: str, ttl_seconds: int, context_type: str, importance: float
    ) -> dict[str, Any]:
        expires = datetime.now(UTC) + timedelta(seconds=ttl_seconds)
        step = extract.sentences(dialog)[0] if dialog.strip() else None
        result = await self._store_one(
            user_id, "working", dialog, importance, context_type=context_type, expires_at=expires, current_step=step
        )
        return {**result, "expires_at": expires.isoformat()}

    async def summarise_if_due(
        self, user_id: str, session_id: str, principal: Principal | None
    ) -> dict[str, Any] | None:
        """A new rolling summary once summary_every_messages more messages have arrived since the last one."""
        every = self.settings.summary_every_messages
        if every <= 0:
            return None
        async with self.db.connection() as conn:
            row = await store.session_for_summary(conn, user_id, session_id)
            if row is None or int(row["message_count"]) - int(row["summarised"] or 0) < every:
                return None
            messages = await store.user_messages(conn, user_id, session_id, 50)
        outcome = await self.extractor.summary(principal, messages)
        async with self.db.transaction() as conn:
            row = await store.session_for_summary(conn, user_id, session_id)  # locked: one summary per threshold
            if row is None or int(row["message_count"]) - int(row["summarised"] or 0) < every:
                return None
            await store.save_summary(conn, user_id, session_id, int(row["message_count"]), asdict(outcome.value))
            await store.log_extraction(
                conn, user_id, session_id=session_id, source_hash=content_hash("\n".join(messages)),
                method=outcome.method, model=outcome.model, memory_types=[], extracted=[asdict(outcome.value)],
                created=0, error=outcome.error, ms=outcome.ms,
            )  # fmt: skip
        log.info("memory_session_summarised", method=outcome.method, messages=int(row["message_count"]))
        return {"messages": int(row["message_count"]), "method": outcome.method}

    async def store_session_message(
        self, user_id: str, session_id: str, content: str, message_type: str, role: str, importance: float
    ) -> dict[str, Any]:
        async with self.db.transaction() as conn:
            row = await sessions.add_note(
                conn, user_id, session_id, sessions.Note(role, message_type, content, importance)
            )
        if row is None:
            raise NotFound(f"no session {session_id}")
        return {"id": row["id"], "session_id": session_id, "created_at": row["created_at"].isoformat()}

    async def search(
        self, user_id: str, query: str, filters: Filters, limit: int, min_similarity: float = -1.0
    ) -> list[dict[str, Any]]:
        (vector,) = await self.embed([query])
        async with self.db.connection() as conn:
            ann = await self.ann(conn)
            q = store.Search(user_id, vector, self.embedder.model_name, filters, self.blend, limit, min_similarity)
            rows: list[dict[str, Any]] | None = None
            if self.local_index is not None and isinstance(ann, Bits) and ann.by_blend:
                try:
                    rows = await self.local_index.search(conn, q, ann)
                except Exception as exc:  # the arrays are an accelerator: the SQL shortlist answers without them
                    log.error("memory_local_index_failed", error=type(exc).__name__)
                    self.local_index.forget_user(user_id, q.model)
            if rows is None:
                rows = await store.search(conn, q, ann)
        async with self.db.transaction() as conn:
            await store.count_search(conn, user_id)
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
            session = await sessions.session_brief(conn, user_id, session_id)
            if session is None:
                raise NotFound(f"no session {session_id}")
            messages = [_plain(r) for r in await sessions.recent_messages(conn, user_id, session_id, max_recent)]
            summary = None
            if include_summaries:
                found = await store.session_summary(conn, user_id, session_id)
                summary = _plain(found) if found else None
        return {"session": _plain(session), "recent_messages": messages, "summary": summary}

    async def forget(self, user_id: str, memory_type: str | None) -> dict[str, Any]:
        """Delete the user's memories of one type (None: every type) in one transaction; counts by table."""
        types = store.MEMORY_TYPES if memory_type is None else (memory_type,)
        deleted: dict[str, int] = {}
        async with self.db.transaction() as conn:
            for kind in types:  # MEMORY_TYPES order: the writers' (user, type) locks, one at a time, never in a cycle
                await store.lock(conn, user_id, kind)
                deleted[store.TABLES[kind]] = await store.delete_all(conn, user_id, kind)
        return {"deleted": deleted, "total": sum(deleted.values())}

    async def statistics(self, user_id: str) -> dict[str, Any]:
        async with self.db.connection() as conn:
            counts = await store.statistics(conn, user_id)
            today = await store.activity_today(conn, user_id)
        total = sum(int(counts[t]) for t in store.MEMORY_TYPES)
        return {
            "counts": counts,
            "total_memories": total,
            "today": _plain(today) if today else None,
            "embedding_model": self.embedder.model_name,
            "extraction": self.extractor.describe(),
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
