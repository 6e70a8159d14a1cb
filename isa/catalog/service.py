"""CatalogService: sync our own items, import other servers' tools, and rank all of them for a request."""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import anyio
import numpy as np
import psycopg
from psycopg import sql

from isa.auth.principal import Principal
from isa.catalog import history_store, store
from isa.catalog.access import Floor, access_sql
from isa.catalog.adapter import QueryAdapter
from isa.catalog.doc2query import Doc2Query
from isa.catalog.history import Selection, SelectionLog
from isa.catalog.importer import server_items
from isa.catalog.models import ITEM_TYPES, OWN_SERVER, SECURITY_LEVELS, CatalogItem, SearchFilters, SyncReport
from isa.catalog.notify import CHANNEL, listen
from isa.catalog.results import discovery_hit, filter_sql, search_hit
from isa.catalog.schemas import DISCOVER_RANKED_CHARS, ImportedServerSpec
from isa.catalog.settings import CatalogSettings
from isa.catalog.text import (
    clause_spans,
    embed_text,
    embedding_hash,
    extra_text,
    item_hash,
    joined_text,
    name_text,
    qualified_name,
)
from isa.core.db import Database, vector_literal
from isa.core.embeddings import Embedder, SpanEmbedder
from isa.core.errors import ApiError
from isa.core.logging import get_logger
from isa.core.search import Bm25Stats, Corpus, LruCache, Mode, Query, Slice, hybrid_search
from isa.llm.client import ModelClient
from isa.llm.rerank import rerank

log = get_logger(__name__)
Listener = Callable[[], Awaitable[None]]
Progress = Callable[[int], None]
Generated = dict[tuple[str, str], list[str]]  # (server, tool name) -> doc2query requests
Picks = list[tuple[str, str, str, float]]  # (item type, call name, server, score), best first
EMBED_CHUNK = 256
# A catalog write of at least this many rows refreshes the planner statistics at once (`_analyze_after`).
ANALYZE_AFTER_ROWS = 100
CORPUS = Corpus("mcp_unified_search_embeddings", postings="mcp_search_postings", examples="mcp_query_examples")
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_DEFAULT_LIMITS = {"tools": 5, "prompts": 3, "resources": 3}


class CatalogService:
    def __init__(
        self,
        db: Database,
        embedder: Embedder,
        settings: CatalogSettings | None = None,
        adapter: QueryAdapter | None = None,
        reranker: ModelClient | None = None,
        doc2query: Doc2Query | None = None,
    ) -> None:
        self.db = db
        self.embedder = embedder
        self.settings = settings or CatalogSettings()
        self.adapter = adapter if adapter is None or adapter.model == embedder.model_name else None
        self.weights = self.settings.weights()
        self.reranker = reranker
        self.doc2query = doc2query  # None: no generated example queries (no model configured)
        self.selections = SelectionLog(db, self.settings.log_queue)
        self._cache = LruCache(self.settings.query_cache_size)
        self._slices = LruCache(64)  # /discover's slices by kind of request (_discover_slices)
        self._limiter = anyio.CapacityLimiter(self.settings.embed_threads)
        self._listeners: list[Listener] = []
        # Vectors embedded before the database could be read (prime_own), by embedding hash; used once by sync_own.
        self._primed: dict[str, list[float]] = {}
        self._stats: dict[str, Bm25Stats] = {}
        self._stats_at = 0.0

    # --- change notifications -------------------------------------------------------------------------------

    def add_listener(self, callback: Listener) -> None:
        """`callback()` runs after the catalog changed (here, in another replica, or through the CLI)."""
        self._listeners.append(callback)

    async def _changed(self) -> None:
        self._stats_at = 0.0
        for callback in list(self._listeners):
            try:
                await callback()
            except Exception as exc:  # one broken listener must not stop the others
                log.warning("catalog_listener_failed", error=type(exc).__name__)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Lifespan: the selection-log writer and the LISTEN loop that relays changes made elsewhere."""
        async with self.selections.running(), anyio.create_task_group() as tg:
            tg.start_soon(listen, self.db.url, self._changed)
            tg.start_soon(self._keep_stats_fresh)
            tg.start_soon(self._reembed_in_background)
            if self.settings.learn_interval_seconds > 0:
                tg.start_soon(self._learn_periodically)
            try:
                yield
            finally:
                tg.cancel_scope.cancel()

    # --- embedding ------------------------------------------------------------------------------------------

    async def _embed(self, texts: Sequence[str]) -> np.ndarray[Any, np.dtype[np.float32]]:
        return await anyio.to_thread.run_sync(self.embedder.embed_batch, list(texts), limiter=self._limiter)

    async def load_encoder(self) -> None:
        """Load the encoder's weights (no database needed: a node started while its database is down loads them
        during the outage, so readiness after the database returns does not wait for them)."""
        await self._embed(["warm up the encoder"])

    async def warm_up(self) -> None:
        """Load the encoder and read the BM25 statistics now, not on the first user's request."""
        await self.load_encoder()
        await self._refresh_stats()

    async def _query_vector(self, text: str) -> list[float]:
        return (await self._query_vectors([text]))[0]

    def _adapted(self, vector: np.ndarray[Any, np.dtype[np.float32]]) -> list[float]:
        out: list[float] = (self.adapter.apply(vector) if self.adapter is not None else vector).tolist()
        return out

    async def _query_vectors(self, texts: Sequence[str]) -> list[list[float]]:
        """Query embeddings from the LRU (keyed by text), the missing ones embedded one text at a time in one trip
        to the encoder's thread: int8 activations are quantised per batch, so a text embedded next to others
        would get a vector that depends on them (and on which request put it in the cache first)."""
        keys = [("request", " ".join(t.split())) for t in texts]
        found: dict[tuple[str, str], list[float]] = {}
        for key in keys:
            cached = self._cache.get(key)
            if cached is not None:
                found[key] = list(cached)
        todo = list(dict.fromkeys(k for k in keys if k not in found))
        if todo:
            vectors = await anyio.to_thread.run_sync(
                lambda: [self.embedder.embed_batch([text])[0] for _, text in todo], limiter=self._limiter
            )
            for key, vector in zip(todo, vectors, strict=True):
                found[key] = self._adapted(vector)
                self._cache.put(key, tuple(found[key]))
        return [found[k] for k in keys]

    async def _clause_vectors(self, text: str) -> tuple[list[float], tuple[list[float], ...]]:
        """The request's vector and its clauses' (none when it is one clause). An encoder that can pools each
        clause from the request's own run, at no second run; others embed each clause alone. Pooled, a clause
        reads its neighbours too: on MetaTool's two-tool dev half both tools cleared the floor a little less
        often (0.834, alone 0.851) and fewer other tools did (13 per request, alone 18); docs/discovery.md."""
        text = " ".join(text.split())
        spans = clause_spans(text)
        if not spans:
            return (await self._query_vectors([text]))[0], ()
        if not isinstance(self.embedder, SpanEmbedder):
            vectors = await self._query_vectors([text, *(text[a:b] for a, b in spans)])
            return vectors[0], tuple(vectors[1:])
        cached, parts = self._cache.get(("request", text)), self._cache.get(("clauses", text))
        if cached is not None and parts is not None:
            return list(cached), tuple(p.tolist() for p in parts)
        late = self.embedder.embed_spans
        vector, states = await anyio.to_thread.run_sync(late, text, spans, limiter=self._limiter)
        out = self._adapted(vector), tuple(self._adapted(s) for s in states)
        self._cache.put(("request", text), tuple(out[0]))
        # An array, not Python floats (8 bytes a value, not 32): up to four vectors in one entry of the LRU.
        self._cache.put(("clauses", text), np.array(out[1], dtype=np.float64))
        return out

    # --- writing --------------------------------------------------------------------------------------------

    async def _rows(
        self, items: Sequence[CatalogItem], server: str, progress: Progress | None = None
    ) -> tuple[list[store.IndexRow], int]:
        """Index rows for `items`, embedding only those whose embedded text (or model) changed."""
        model = self.embedder.model_name
        async with self.db.connection() as conn:
            state = await store.index_state(conn, server, model)
        texts = [embed_text(i) for i in items]
        hashes = [embedding_hash(t, model) for t in texts]
        todo = [
            n
            for n, (item, h) in enumerate(zip(items, hashes, strict=True))
            if not (s := state.get((item.item_type, item.name))) or s["embedded_hash"] != h or not s["has_vector"]
        ]
        fresh: dict[int, list[float]] = {n: self._primed[hashes[n]] for n in todo if hashes[n] in self._primed}
        todo_ = [n for n in todo if n not in fresh]
        # In chunks, so a long import can say how far it got (isa catalog import/add show a progress bar).
        for start in range(0, len(todo_), EMBED_CHUNK):
            chunk = todo_[start : start + EMBED_CHUNK]
            vectors = await self._embed([texts[n] for n in chunk])
            fresh.update({n: vectors[k].tolist() for k, n in enumerate(chunk)})
            if progress is not None:
                progress(len(chunk))
        rows = [
            store.IndexRow(item, item_hash(item), hashes[n], name_text(item), extra_text(item), fresh.get(n))
            for n, item in enumerate(items)
        ]
        return rows, len(todo)

    async def prime_own(self, items: Sequence[CatalogItem]) -> None:
        """Embed our own items without the database (while it is down at start): the first sync_own after it
        returns then only writes, so readiness follows the database within a probe interval (drill B2.7)."""
        model = self.embedder.model_name
        texts = [embed_text(i) for i in items]
        vectors = await self._embed(texts)
        self._primed = {embedding_hash(t, model): vectors[k].tolist() for k, t in enumerate(texts)}

    async def sync_own(self, items: Sequence[CatalogItem]) -> SyncReport:
        """Make the catalog's "isa" rows match `items`: upsert by content hash, re-embed only changed text."""
        seen: set[tuple[str, str]] = set()
        for item in items:
            if item.server != OWN_SERVER:
                raise ValueError(f"sync_own takes server {OWN_SERVER!r} items, got {item.server!r}")
            if not _NAME.match(item.qualified_name) or item.security_level not in SECURITY_LEVELS:
                raise ValueError(f"invalid call name or security level on {item.item_type} {item.name!r}")
            if (item.item_type, item.qualified_name) in seen:
                raise ValueError(f"duplicate {item.item_type} name {item.qualified_name!r}")
            seen.add((item.item_type, item.qualified_name))
        rows, embedded = await self._rows(items, OWN_SERVER)
        self._primed = {}  # used once: later syncs embed only what changed
        async with self.db.transaction() as conn:
            await store.lock_writes(conn)
            before = await store.index_state(conn, OWN_SERVER, self.embedder.model_name)
            await store.upsert(conn, rows, self.embedder.model_name)
            keep: dict[str, list[str]] = {t: [i.name for i in items if i.item_type == t] for t in ITEM_TYPES}
            removed = await store.delete_missing(conn, OWN_SERVER, keep)
            changed = [
                r
                for r in rows
                if (s := before.get((r.item.item_type, r.item.name))) is None
                or s["content_hash"] != r.content_hash
                or r.vector is not None
            ]
            if changed or removed:
                await conn.execute(sql.SQL("NOTIFY {}").format(sql.Identifier(CHANNEL)))
        report = SyncReport(len(changed), embedded, removed, len(rows) - len(changed))
        log.info("catalog_synced", **report.__dict__)
        await self._analyze_after(len(changed) + removed)
        if changed or removed:
            await self._changed()
        return report

    async def _example_rows(self, specs: Sequence[ImportedServerSpec], generated: Generated) -> dict[str, str]:
        """Vector text for every distinct example query, embedding only the ones never seen with this model."""
        model = self.embedder.model_name
        made = {q for queries in generated.values() for q in queries}
        texts = sorted({e for s in specs for t in s.tools for e in t.examples} | made)
        by_hash = {hashlib.sha256(t.encode()).hexdigest(): t for t in texts}
        async with self.db.connection() as conn:
            known = await store.example_vectors(conn, list(by_hash), model)
        todo = [h for h in by_hash if h not in known]
        for start in range(0, len(todo), 512):
            chunk = todo[start : start + 512]
            vectors = await self._embed([by_hash[h] for h in chunk])
            known.update({h: vector_literal(v) for h, v in zip(chunk, vectors, strict=True)})
        return known

    async def import_servers(
        self,
        specs: Sequence[ImportedServerSpec],
        extras: Mapping[str, Sequence[CatalogItem]] | None = None,
        progress: Progress | None = None,
    ) -> list[dict[str, Any]]:
        """Register (or refresh) other servers' tools; a server's tools not in its new list are removed.

        `extras` adds a server's prompts and resources (a live server's listing); `progress(n)` is told each time
        `n` more items were embedded.
        """
        prepared = []
        for spec in specs:
            items = [*server_items(spec, lambda _name: ""), *(extras or {}).get(spec.name, ())]
            prepared.append((spec, *await self._rows(items, spec.name, progress)))
        # doc2query (when a model is configured): bounded, cached, and an import goes on without it on failure.
        generated = await self.doc2query.for_import(self.db, specs) if self.doc2query is not None else {}
        example_vectors = await self._example_rows(specs, generated)
        model = self.embedder.model_name
        out = []
        any_change = False
        written = 0
        async with self.db.transaction() as conn:
            await store.lock_writes(conn)
            taken = {t: await store.taken_names(conn, t) for t in ITEM_TYPES}
            for spec, rows, embedded in prepared:
                state = await store.index_state(conn, spec.name, model)
                named = []
                for row in rows:
                    old = state.get((row.item.item_type, row.item.name))
                    kind = row.item.item_type
                    short = str(row.item.metadata.get("title") or row.item.name) if kind == "resource" else None
                    qname = old["qualified_name"] if old else qualified_name(spec.name, short or row.item.name,
                                                                             taken[kind])  # fmt: skip
                    taken[kind].add(qname)
                    item = replace(row.item, qualified_name=qname)
                    named.append(replace(row, item=item, content_hash=item_hash(item)))
                any_change = any_change or await store.server_url(conn, spec.name) != spec.url
                changed = sum(
                    (s := state.get((r.item.item_type, r.item.name))) is None or s["content_hash"] != r.content_hash
                    for r in named
                )
                any_change = any_change or changed > 0
                rewritten = sum(r.vector is not None for r in named)  # a new vector rewrites the row too
                await store.upsert_server(conn, spec.name, spec.description, spec.url, spec.category)
                await store.upsert(conn, named, model)
                keep: dict[str, list[str]] = {
                    t: [r.item.name for r in named if r.item.item_type == t] for t in ITEM_TYPES
                }
                removed = await store.delete_missing(conn, spec.name, keep)
                any_change = any_change or removed > 0 or embedded > 0
                written += max(changed, rewritten) + removed
                ids = await store.entry_ids(conn, spec.name)
                examples = [
                    (ids[t.name], q, h, example_vectors[h])
                    for t in spec.tools
                    for q in dict.fromkeys(t.examples)
                    if (h := hashlib.sha256(q.encode()).hexdigest()) in example_vectors
                ]
                await store.replace_examples(conn, list(ids.values()), examples, model, "import")
                if self.doc2query is not None:
                    made = [
                        (ids[t.name], q, h, example_vectors[h])
                        for t in spec.tools
                        for q in generated.get((spec.name, t.name), ())
                        if (h := hashlib.sha256(q.encode()).hexdigest()) in example_vectors
                    ]
                    await store.replace_examples(conn, list(ids.values()), made, model, "generated")
                count = await store.set_tool_count(conn, spec.name)
                out.append(
                    {
                        "server": spec.name,
                        "tools": count,
                        "embedded": embedded,
                        "removed": removed,
                        "examples": len(examples),
                        "url": spec.url,
                    }
                )
                if self.doc2query is not None:
                    out[-1]["generated"] = sum(len(generated.get((spec.name, t.name), ())) for t in spec.tools)
            if any_change:  # a scheduled re-sync that found nothing new wakes no replica
                await conn.execute(sql.SQL("NOTIFY {}").format(sql.Identifier(CHANNEL)))
        await self._analyze_after(written)
        if any_change:
            await self._changed()
        return out

    async def _analyze_after(self, written: int) -> None:
        """Bring the ranked tables to autovacuum's steady state after a bulk write, before the first query ranks.

        Autovacuum would vacuum and analyze them too, but up to a minute later; until then plans made on statistics
        of a far smaller catalog took a freshly imported 10,000-tool catalog's cold /discover from about 10 to 36 ms
        p50 (docs/benchmarks.md). A small write leaves it to autovacuum. The write has committed: a failure here is
        logged, never the import's error.
        """
        if written < ANALYZE_AFTER_ROWS:
            return
        started = time.perf_counter()
        try:
            async with self.db.maintenance() as conn:
                skipped = await store.vacuum_analyze(conn)
        except psycopg.Error as exc:
            log.warning("catalog_analyze_failed", error=type(exc).__name__)
            return
        if skipped:  # e.g. a role that does not own the tables: autovacuum does it later
            log.warning("catalog_analyze_skipped", warnings=skipped)
        log.info("catalog_analyzed", rows_written=written, ms=round((time.perf_counter() - started) * 1000, 1))

    async def learn_from_usage(self) -> int:
        """Store queries whose discovered tool the same user then called successfully as `usage` examples."""
        settings = self.settings
        async with self.db.connection() as conn:
            pairs = await history_store.confirmed_selections(conn, settings.learn_window_minutes, settings.learn_batch)
        if not pairs:
            return 0
        model = self.embedder.model_name
        by_hash = {hashlib.sha256(p["query"].encode()).hexdigest(): p["query"] for p in pairs}
        async with self.db.connection() as conn:
            vectors = await store.example_vectors(conn, list(by_hash), model)
        todo = [h for h in by_hash if h not in vectors]
        if todo:
            fresh = await self._embed([by_hash[h] for h in todo])
            vectors.update({h: vector_literal(v) for h, v in zip(todo, fresh, strict=True)})
        rows = [
            (p["entry_id"], p["query"], h, vectors[h])
            for p in pairs
            if (h := hashlib.sha256(p["query"].encode()).hexdigest()) in vectors
        ]
        async with self.db.transaction() as conn:
            await store.add_examples(conn, rows, model, "usage")
        log.info("catalog_learned_from_usage", examples=len(rows))
        return len(rows)

    async def reembed_stale(self, batch: int = 256) -> int:
        """Embed, with this service's encoder, index rows and example queries that have no vector of it yet.

        After `[catalog] encoder` changes, imported servers' rows (which no sync rewrites) and every example keep
        vectors of the old model, which the ranking statement never compares with the new model's queries. This
        brings them over in batches; each batch is its own short transaction, so discovery keeps answering.
        """
        model, done = self.embedder.model_name, 0
        while True:
            async with self.db.connection() as conn:
                rows = await store.stale_rows(conn, model, batch)
            if not rows:
                break
            texts = [joined_text(r["name_text"], r["description"] or "", r["search_text"] or "") for r in rows]
            vectors = await self._embed(texts)
            async with self.db.transaction() as conn:
                await store.set_vectors(
                    conn,
                    [
                        (r["id"], vector_literal(v), embedding_hash(t, model))
                        for r, v, t in zip(rows, vectors, texts, strict=True)
                    ],
                    model,
                )
            done += len(rows)
        while True:
            async with self.db.connection() as conn:
                examples = await store.stale_examples(conn, model, batch)
            if not examples:
                break
            vectors = await self._embed([x["query"] for x in examples])
            async with self.db.transaction() as conn:
                for source in {x["source"] for x in examples}:
                    picked = [(x, v) for x, v in zip(examples, vectors, strict=True) if x["source"] == source]
                    rows_ = [(x["entry_id"], x["query"], x["query_hash"], vector_literal(v)) for x, v in picked]
                    await store.add_examples(conn, rows_, model, source)
            done += len(examples)
        if done:
            log.info("catalog_reembedded", model=model, rows=done)
            self._cache = LruCache(self.settings.query_cache_size)
        await self._analyze_after(done)
        return done

    async def _reembed_in_background(self) -> None:
        try:
            await self.reembed_stale()
        except Exception as exc:  # the next start tries again; until then those rows rank lexically only
            log.warning("catalog_reembed_failed", error=type(exc).__name__)

    async def _learn_periodically(self) -> None:
        while True:
            await anyio.sleep(self.settings.learn_interval_seconds)
            try:
                await self.learn_from_usage()
            except Exception as exc:  # a failed round is retried at the next interval
                log.warning("catalog_learn_failed", error=type(exc).__name__)

    async def remove_server(self, name: str) -> int:
        """Delete an imported server and its items (404 `unknown_server` when there is none)."""
        async with self.db.transaction() as conn:
            await store.lock_writes(conn)
            removed = await store.remove_server(conn, name)
            if removed is not None:
                await conn.execute(sql.SQL("NOTIFY {}").format(sql.Identifier(CHANNEL)))
        if removed is None:
            raise ApiError(404, "unknown_server", f"no imported server named {name!r}")
        await self._analyze_after(removed)
        await self._changed()
        return removed

    # --- reading --------------------------------------------------------------------------------------------

    async def list_servers(self) -> list[dict[str, Any]]:
        async with self.db.connection() as conn:
            return await store.list_servers(conn)

    async def get_item(self, item_type: str, qualified_name: str) -> CatalogItem | None:
        async with self.db.connection() as conn:
            return await store.get_item(conn, item_type, qualified_name)

    async def upstream_item(self, item_type: str, name: str) -> CatalogItem | None:
        """Another server's item by its own name (a resource's URI); None when no imported server has one."""
        async with self.db.connection() as conn:
            return await store.upstream_item(conn, item_type, name)

    async def server_url(self, server: str) -> str | None:
        async with self.db.connection() as conn:
            return await store.server_url(conn, server)

    async def _refresh_stats(self) -> None:
        async with self.db.connection() as conn:
            self._stats = await store.bm25_stats(conn)
        self._stats_at = time.monotonic()

    async def _bm25_stats(self) -> dict[str, Bm25Stats]:
        if time.monotonic() - self._stats_at > self.settings.stats_ttl_seconds:
            await self._refresh_stats()
        return self._stats

    async def _keep_stats_fresh(self) -> None:
        """Re-read the BM25 statistics before they go stale, so no request pays for the scan of the postings."""
        period = max(self.settings.stats_ttl_seconds / 2, 1.0)
        while True:
            try:
                await self._refresh_stats()
            except Exception as exc:  # the database may be down; requests fall back to reading it themselves
                log.warning("catalog_stats_failed", error=type(exc).__name__)
            await anyio.sleep(period)

    async def _rank(self, text: str, slices: list[Slice], mode: Mode) -> list[dict[str, Any]]:
        floored = any(s.floor is not None for s in slices)  # with no floor, clauses would change nothing
        vector: list[float] | None = None
        parts: tuple[list[float], ...] = ()
        if mode != "lexical" and floored and self.settings.floor_per_clause:
            vector, parts = await self._clause_vectors(text)
        elif mode != "lexical":
            vector = await self._query_vector(text)
        stats = await self._bm25_stats()
        query = Query(text, vector, self.embedder.model_name, self.embedder.dimensions, mode, clause_vectors=parts)
        async with self.db.connection() as conn:
            return await hybrid_search(conn, CORPUS, query, slices, self.weights, stats, store.ITEM_COLUMNS)

    async def discover(
        self,
        request: str,
        max_results: dict[str, int] | None,
        principal: Principal | None,
        min_similarity: float | None = None,
        only: Collection[str] | None = None,
    ) -> dict[str, list[dict[str, Any]]]:
        """The few tools, prompts and resources that fit `request` and that this caller may use, best first.

        Each list is ranked on its own; items the caller may not use and items below the relevance floor
        (`min_similarity` overrides the configured one; 0: none) are left out in SQL, before the limit. `only`:
        the call names allowed (a virtual server's members), also applied in SQL before the limit.
        """
        if not request or not request.strip():
            raise ApiError(422, "invalid_request", "request must not be blank")
        # A turn may paste a document after the request: every caller (POST /discover, discover_tools, the agent)
        # is ranked on the same bounded head, so a long request costs what a 4,000-character one does.
        request = request[:DISCOVER_RANKED_CHARS]
        limits = {**_DEFAULT_LIMITS, **(max_results or {})}
        if set(limits) - set(_DEFAULT_LIMITS) or any(not 0 <= v <= 50 for v in limits.values()):
            raise ApiError(422, "invalid_request", "max_results takes tools, prompts, resources between 0 and 50")
        started = time.perf_counter()
        rerank_tools = self.reranker is not None and principal is not None and limits["tools"] > 0
        pool = {**limits, "tools": max(limits["tools"], self.settings.rerank_candidates)} if rerank_tools else limits
        slices = self._discover_slices(principal, min_similarity, only, pool)
        rows = await self._rank(request, slices, "hybrid") if slices else []
        out: dict[str, list[dict[str, Any]]] = {"tools": [], "prompts": [], "resources": []}
        for row in rows:
            out[row["item_type"] + "s"].append(discovery_hit(row))
        if rerank_tools and self.reranker is not None and principal is not None:
            out["tools"] = await self._rerank(request, out["tools"], principal)
        out["tools"] = out["tools"][: limits["tools"]]
        picks = [(kind[:-1], h["name"], h["server"], float(h["score"])) for kind, hits in out.items() for h in hits]
        self._record("discover", request, principal, started, picks)
        return out

    def _discover_slices(
        self,
        principal: Principal | None,
        min_similarity: float | None,
        only: Collection[str] | None,
        pool: dict[str, int],
    ) -> list[Slice]:
        """The ranked lists of one /discover: what the caller may use, above the floor, within `only`.

        The same objects for the same kind of request (kept in a small LRU), so hybrid_search reuses the
        statement it rendered for them instead of composing it again.
        """
        key = (
            frozenset(principal.scopes) if principal is not None else None,
            min_similarity,
            frozenset(only) if only is not None else None,
            tuple(sorted(pool.items())),
        )
        cached: list[Slice] | None = self._slices.get(key)
        if cached is not None:
            return cached
        where, floor = access_sql(principal), self._floor(min_similarity)
        if only is not None:
            where = sql.SQL("({}) AND e.qualified_name = ANY({})").format(where, sql.Literal(sorted(only)))
        below, examples_below = floor.condition(), floor.example_condition()
        slices = [
            Slice(t, "item_type", t, pool[t + "s"], where=where, floor=below, example_floor=examples_below)
            for t in ITEM_TYPES
            if pool[t + "s"] > 0
        ]
        self._slices.put(key, slices)
        return slices

    def _record(
        self, kind: str, text: str, principal: Principal | None, started: float, picks: Picks, **filters: Any
    ) -> None:
        """Log what a discovery or search returned (selection history), timed from `started`."""
        latency = (time.perf_counter() - started) * 1000
        user_id = principal.user_id if principal else None
        self.selections.record(Selection(kind, text, user_id, latency, picks, filters=filters))

    def _floor(self, min_similarity: float | None) -> Floor:
        configured = self.settings.floor()
        return configured if min_similarity is None else replace(configured, min_similarity=min_similarity)

    async def _rerank(self, request: str, tools: list[dict[str, Any]], principal: Principal) -> list[dict[str, Any]]:
        """The hybrid candidates in the model node's order (the hybrid order if it fails)."""
        assert self.reranker is not None
        ranked, how = await rerank(
            self.reranker,
            self.settings.rerank_model,
            principal,
            request,
            tools,
            lambda hit: f"{hit['name']}: {hit['description']}",
        )
        log.info("discovery_reranked", outcome=how.split(" ")[0], candidates=len(tools))
        return [{k: v for k, v in hit.items() if k != "hybrid_rank"} for hit in ranked]

    async def search(self, query: str, filters: SearchFilters, principal: Principal | None) -> list[dict[str, Any]]:
        """One ranking across the chosen types, with filters, over what the caller may use and above the floor;
        best first, at most `filters.max_results`."""
        if not query or not query.strip():
            raise ApiError(422, "invalid_request", "query must not be blank")
        started = time.perf_counter()
        where, bound = filter_sql(filters)
        where = sql.SQL("({}) AND ({})").format(access_sql(principal), where)
        floor = self._floor(filters.min_similarity)
        slices = [
            Slice(
                t,
                "item_type",
                t,
                filters.max_results,
                where=where,
                exact=bool(bound),
                params=bound,
                floor=floor.condition(),
                example_floor=floor.example_condition(),
            )
            for t in dict.fromkeys(filters.types)
        ]
        rows = await self._rank(query, slices, filters.mode)
        floor_ = filters.min_score
        rows = sorted(
            (r for r in rows if floor_ is None or float(r["score"]) >= floor_), key=lambda r: -float(r["score"])
        )
        rows = rows[: filters.max_results]
        picks = [(r["item_type"], r["qualified_name"], r["server"], float(r["score"])) for r in rows]
        self._record("search", query, principal, started, picks, types=list(filters.types), mode=filters.mode)
        return [search_hit(r) for r in rows]

    async def capabilities(self, limit: int, principal: Principal | None) -> dict[str, Any]:
        """Counts and call names of what this caller may use."""
        async with self.db.connection() as conn:
            return await store.capabilities(conn, limit, access_sql(principal))

    async def security_levels(self, limit: int, principal: Principal | None) -> dict[str, Any]:
        """Tools by security level, among those this caller may use."""
        async with self.db.connection() as conn:
            return await store.security_levels(conn, limit, access_sql(principal))

    async def tools_at_level(self, level: str, limit: int) -> list[dict[str, Any]]:
        async with self.db.connection() as conn:
            return await store.tools_at_level(conn, level, limit)

    async def stats(self) -> dict[str, Any]:
        async with self.db.connection() as conn:
            out = await history_store.stats(conn)
        out["log"] = {"written": self.selections.written, "dropped": self.selections.dropped}
        out["query_cache"] = {"entries": len(self._cache), "size": self._cache.size}
        return out
