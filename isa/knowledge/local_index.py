"""Process-local index of large users' knowledge (issue #28; docs/memory.md "Knowledge: process-local index").

The default search ranks one user's chunks in SQL: the dense arm scans the user's sign bits in the bits index
(~0.33 µs per row, the floor of a Postgres index-only scan) and the BM25 arm reads every posting of each query
term (~0.5 µs per posting); at 100,000 chunks per user each alone is over the 20 ms goal. For a user with at least
`local_index_min_rows` chunks this module keeps what those scans read in numpy arrays — per embedding model the
chunks' ids and sign bits (`Dense`), per user their postings (isa/knowledge/lexical_index.py's `Postings`) — and
computes both arms here: the `shortlist` rows nearest by Hamming distance (what the SQL arm's inner scan keeps) and
the exact BM25 top k (what the SQL arm's sum over postings computes, with the same N and avgdl). Their ids (and
BM25 scores) go to the same fusion statement (isa.core.search, `Slice.dense_ids` / `Slice.lexical_hits`), which
fetches the rows for the caller (user_id checked in SQL), ranks the shortlist by exact cosine and fuses as before.

Freshness, across processes and nodes: migration 0043's triggers give the user's user_knowledge_bm25_stats row a
never-repeated `generation` on every insert, delete and change of a chunk's text, user, model or sign bits, and a
new `reload_generation` on all but inserts. The search reads that row (the primary-key lookup it made already for
N and avgdl) in a REPEATABLE READ transaction, so the row, any load of the arrays and the searching statement see
one snapshot: arrays of another generation are refreshed before they are used, never after. Refresh: when only
inserts happened (`reload_generation` unchanged) the rows created since the newest held one minus
`OVERLAP_SECONDS` are appended and kept only if the user's row count then equals `entries` (a row committed late
with an older created_at forces a full load instead of being missed); otherwise, or when the arrays are older than
`local_index_max_age_seconds`, a full load — in a background task with its own connection and snapshot (when
the index has a database), while the searches meanwhile take the SQL arms. A deleted chunk can never come back: its
id may be in arrays, but the statement reads the table.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, TypeVar

import anyio
import numpy as np
import numpy.typing as npt
from psycopg import IsolationLevel

from isa.core.db import Database, DictConnection
from isa.core.logging import get_logger
from isa.core.search import Bm25Stats
from isa.core.signbits import ByteBudget, hamming, query_bits, unpack_bits, uuid_literal
from isa.knowledge import store
from isa.knowledge.lexical_index import TEXT_CONFIG

# Loads a user's postings (all, or of the chunks created at or after `since`, epoch) in the caller's snapshot:
# isa/knowledge/lexical_index.py's Postings.load. The result has len() (chunks), .nbytes, .newest (latest
# created_at held), .merged(newer) and .top(terms, k, k1=, b=, n=, avgdl=) -> hits with .ids and .scores.
PostingsLoader = Callable[[DictConnection, str, float | None], Awaitable[Any]]
# Brings the arrays of a key to the caller's snapshot: appends to `old` if given and possible, else (with `full`)
# loads them all; None when only a full load would do and `full` is false.
Loader = Callable[[DictConnection, "Held | None", bool], Awaitable["Held | None"]]
log = get_logger(__name__)

OVERLAP_SECONDS = 60.0  # an append also reads rows this much older than the newest held one
_THREAD_ROWS = 50_000  # a user this large is ranked in a worker thread (numpy releases the GIL), off the event loop
_RECHECK_SECONDS = 30.0  # searches of a user seen below min_rows take the SQL path this long, then look again
_KNOWN_USERS = 10_000  # users remembered as small
_RETRY_SECONDS = 60.0  # a background load that failed is not tried again for this long (SQL answers meanwhile)
_V = TypeVar("_V")
_CLOSE_SECONDS = 5.0  # close() waits this long for the cancelled loads
_LOADS_AT_ONCE = 2  # background loads running at a time (each holds a pooled connection for up to ~1.5 s)


@dataclass(frozen=True)
class State:
    """What a search read of the user (store.search_state), in its snapshot."""

    stats: Bm25Stats
    entries: int
    generation: int
    reload_generation: int
    terms: list[str]

    @classmethod
    def of(cls, row: dict[str, Any]) -> State:
        return cls(
            stats=store.stats_of(row),
            entries=int(row["entries"] or 0),
            generation=int(row["generation"] or 0),
            reload_generation=int(row["reload_generation"] or 0),
            terms=[str(t) for t in row["terms"] or []],
        )


@dataclass(frozen=True)
class Dense:
    """One (user, model)'s ids and sign bits as of `generation` (never modified: refreshes make new arrays)."""

    ids: npt.NDArray[np.uint8]  # (n, 16) uuid bytes
    bits: npt.NDArray[np.uint64]  # (words, n) sign bits (isa.core.signbits)
    dims: int
    others: int  # the user's rows not in this model (entries - n when loaded)
    newest: float | None  # the user's latest created_at (epoch) when loaded, any model
    generation: int
    reload_generation: int
    loaded_at: float  # time.monotonic() of the full load these arrays descend from

    @property
    def nbytes(self) -> int:
        return int(self.ids.nbytes + self.bits.nbytes)

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def shortlist(self, vector: Sequence[float], size: int) -> str:
        """The `size` rows nearest `vector` by Hamming distance of the sign bits, those at the boundary distance in
        id order (as the SQL shortlist takes them), as a uuid[] literal."""
        distance = hamming(self.bits, query_bits(vector, int(self.bits.shape[0])))
        if len(self) <= size:
            return uuid_literal(self.ids)
        bound = distance[np.argpartition(distance, size - 1)[size - 1]]
        inside = np.flatnonzero(distance < bound)
        ties = np.flatnonzero(distance == bound)
        words = self.ids[ties].view(">u8")  # (m, 2): uuid order is the order of these two big-endian words
        ties = ties[np.lexsort((words[:, 1], words[:, 0]))[: size - inside.size]]
        return uuid_literal(self.ids[np.concatenate([inside, ties])])


@dataclass(frozen=True)
class Lexical:
    """One user's postings as of `generation`."""

    postings: Any  # lexical_index.Postings (see PostingsLoader)
    generation: int
    reload_generation: int
    loaded_at: float

    @property
    def nbytes(self) -> int:
        return int(self.postings.nbytes)


Held = Dense | Lexical


def _dense(row: dict[str, Any], state: State, loaded_at: float) -> Dense:
    n = int(row["n"])
    bits, dims = unpack_bits(bytes(row["bits"] or b""), n)
    return Dense(
        ids=np.frombuffer(bytes(row["ids"] or b""), np.uint8).reshape(n, 16).copy(),
        bits=bits,
        dims=dims,
        others=state.entries - n,
        newest=None if row["newest"] is None else float(row["newest"]),
        generation=state.generation,
        reload_generation=state.reload_generation,
        loaded_at=loaded_at,
    )


def _remember(known: OrderedDict[tuple[str, ...], _V], key: tuple[str, ...], value: _V) -> None:
    """known[key] = value as the most recent entry, the least recent dropped beyond _KNOWN_USERS."""
    known[key] = value
    known.move_to_end(key)
    while len(known) > _KNOWN_USERS:
        known.popitem(last=False)


def unseen(held: npt.NDArray[np.uint8], incoming: npt.NDArray[np.uint8]) -> npt.NDArray[np.bool_]:
    """Which of `incoming`'s uuids (n, 16) are not in `held`."""
    key = np.dtype((np.void, 16))
    return ~np.isin(incoming.view(key).ravel(), held.view(key).ravel())


class KnowledgeLocalIndex:
    """Arrays of users with at least `min_rows` chunks, least recently used dropped beyond `max_bytes`."""

    def __init__(self, sizes: tuple[int, int, float], postings: PostingsLoader | None, db: Database | None) -> None:
        """`sizes`: (min_rows, max_bytes, max_age_seconds), [default.knowledge] local_index_*."""
        min_rows, max_bytes, max_age_seconds = sizes
        self.min_rows = min_rows
        self.postings_loader = postings  # None: the lexical arm stays in SQL
        # With a database: full loads run in a task of their own (its own connection and snapshot) while the SQL
        # arms answer; without, on the searching request.
        self.db = db
        self._tasks: set[asyncio.Task[None]] = set()
        self._pending: set[tuple[str, ...]] = set()
        self._closed = False  # after close(), no load starts and none keeps what it read
        # key -> monotonic time its background load failed (retried after _RETRY_SECONDS), least recent first
        self._failed: OrderedDict[tuple[str, ...], float] = OrderedDict()
        # key -> the user's chunk count when its arrays did not fit in max_bytes: not loaded again at that size
        self._too_big: OrderedDict[tuple[str, ...], int] = OrderedDict()
        self._loading = asyncio.Semaphore(_LOADS_AT_ONCE)
        self.max_age_seconds = max_age_seconds
        self._held: ByteBudget[tuple[str, ...], Held] = ByteBudget(max_bytes)
        # Per key: a lock and how many searches hold or wait for it (asyncio's: the background loads are asyncio
        # tasks, and close() cancels them natively, which an anyio lock's shielded checkpoint can swallow).
        self._locks: dict[tuple[str, ...], tuple[asyncio.Lock, list[int]]] = {}
        self._small: OrderedDict[str, float] = OrderedDict()  # users seen below min_rows: monotonic time seen
        # What happened (bench, tests): full loads, appends, searches whose arms the arrays answered.
        self.loads = {"full": 0, "append": 0, "dense": 0, "lexical": 0}

    @property
    def nbytes(self) -> int:
        return self._held.nbytes

    def known_small(self, user_id: str) -> bool:
        """Whether the user was below min_rows a moment ago (their searches then take the SQL path as before)."""
        seen = self._small.get(user_id)
        return seen is not None and time.monotonic() - seen < _RECHECK_SECONDS

    async def candidates(
        self,
        conn: DictConnection,
        user_id: str,
        model: str,
        vector: Sequence[float] | None,
        state: State,
        *,
        shortlist: int,
        lexical: int,
        k1: float,
        b: float,
    ) -> tuple[str | None, tuple[list[str], list[float]] | None]:
        """The dense shortlist (uuid[] literal; with `shortlist` > 0 and a vector) and the lexical top `lexical`
        (ids, BM25; with `lexical` > 0) of a user with at least min_rows chunks, from arrays at `state`'s
        generation; (None, None) for a smaller user (the SQL arms answer). Loads run in a savepoint, so a failing
        one leaves the caller's transaction usable."""
        if state.entries < self.min_rows:
            self._small[user_id] = time.monotonic()
            self._small.move_to_end(user_id)
            while len(self._small) > _KNOWN_USERS:
                self._small.popitem(last=False)
            for key in [k for k in self._held if k[1] == user_id]:
                self._held.drop(key)  # shrunk: its arrays are of no use
            return None, None
        self._small.pop(user_id, None)
        dense: Dense | None = None
        postings: Lexical | None = None
        if shortlist > 0 and vector is not None:
            key = ("dense", user_id, model)
            found = await self._current(conn, key, state, partial(self._load_dense, user_id, model))
            dense = found if isinstance(found, Dense) and found.dims == len(vector) else None
        if lexical > 0 and self.postings_loader is not None:
            found = await self._current(conn, ("lexical", user_id), state, partial(self._load_lexical, user_id))
            postings = found if isinstance(found, Lexical) else None

        def rank() -> tuple[str | None, tuple[list[str], list[float]] | None]:
            ids = dense.shortlist(vector, shortlist) if dense is not None and vector is not None else None
            top = None
            if postings is not None:
                s = state.stats
                hits = postings.postings.top(state.terms, lexical, k1=k1, b=b, n=s.rows, avgdl=s.len_a)
                top = (list(hits.ids), [float(x) for x in hits.scores])
            return ids, top

        if max(len(dense) if dense else 0, len(postings.postings) if postings else 0) >= _THREAD_ROWS:
            ids, top = await anyio.to_thread.run_sync(rank)
        else:
            ids, top = rank()
        self.loads["dense"] += ids is not None
        self.loads["lexical"] += top is not None
        return ids, top

    async def _current(
        self,
        conn: DictConnection,
        key: tuple[str, ...],
        state: State,
        make: Callable[[State], Loader],
        wait: bool = False,
    ) -> Held | None:
        """The arrays of `key` at the state's generation (appended, or loaded again as needed); None when they
        would not fit in the budget, or when a full load is needed and (with a database, unless `wait`) left to a
        background task."""
        if self._usable(key, state):
            return self._held.get(key)
        if not wait and self.db is not None and (key in self._pending or self._too_big.get(key) == state.entries):
            return None  # a full load runs in the background (or would not fit): SQL answers, nobody waits for it
        # One refresh per key at a time: concurrent searches of the user wait for it instead of loading again.
        lock, users = self._locks.setdefault(key, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                if self._usable(key, state):
                    return self._held.get(key)
                old = self._held.peek(key)
                if old is not None and (
                    time.monotonic() - old.loaded_at > self.max_age_seconds
                    or old.reload_generation != state.reload_generation
                ):
                    old = None  # too old, or rows were deleted or changed since: a full load
                full = wait or self.db is None
                if old is None and not full:
                    self._load_later(key, make)
                    return None
                async with conn.transaction():  # a savepoint: a failed load leaves the search's transaction usable
                    new = await make(state)(conn, old, full)
                if new is None:
                    self._load_later(key, make)
                    return None
                if self._closed:  # a load that outlived close() (its cancellation did not reach it in time)
                    return None
                if self._held.put(key, new):
                    return new
                if self._too_big.get(key) != state.entries:
                    log.warning("knowledge_local_index_over_budget", bytes=new.nbytes, max_bytes=self._held.max_bytes)
                _remember(self._too_big, key, state.entries)  # not loaded again at this size (SQL answers)
                return None
        finally:
            users[0] -= 1
            if not users[0]:  # nobody holds or waits for it (a woken waiter has not taken it yet: still counted)
                del self._locks[key]

    def _usable(self, key: tuple[str, ...], state: State) -> bool:
        held = self._held.peek(key)
        return (
            held is not None
            and held.generation == state.generation
            and time.monotonic() - held.loaded_at <= self.max_age_seconds
        )

    def _load_later(self, key: tuple[str, ...], make: Callable[[State], Loader]) -> None:
        """Load `key`'s arrays in a task of its own, once at a time (the searches meanwhile use SQL)."""
        failed = self._failed.get(key)
        if self._closed or key in self._pending or (failed is not None and time.monotonic() - failed < _RETRY_SECONDS):
            return
        self._failed.pop(key, None)
        self._pending.add(key)  # before the task starts: the searches meanwhile take the SQL arms
        task = asyncio.get_running_loop().create_task(self._background(key, make))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _background(self, key: tuple[str, ...], make: Callable[[State], Loader]) -> None:
        assert self.db is not None
        user_id = key[1]
        try:
            async with self._loading, self.db.connection() as conn:
                await conn.set_isolation_level(IsolationLevel.REPEATABLE_READ)  # the counters and rows: one snapshot
                try:
                    async with conn.transaction():
                        state = State.of(await store.search_state(conn, user_id, "", TEXT_CONFIG))
                        await self._current(conn, key, state, make, wait=True)
                finally:
                    await conn.set_isolation_level(None)
        except Exception as exc:  # the SQL arms go on answering; the next search that needs the arrays tries again
            log.error("knowledge_local_index_failed", error=type(exc).__name__, background=True)
            self.forget_user(user_id)
            _remember(self._failed, key, time.monotonic())
        finally:
            self._pending.discard(key)

    async def settled(self) -> None:
        """Wait until no background load runs (tests, the bench)."""
        while self._tasks:
            await asyncio.wait(list(self._tasks))  # never raises what a task ended with

    async def close(self) -> None:
        """Cancel the background loads and wait for them, at most _CLOSE_SECONDS (at shutdown, before the pool
        closes: a cancelled load may still roll back its transaction)."""
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=_CLOSE_SECONDS)

    def _load_dense(self, user_id: str, model: str, state: State) -> Loader:
        async def load(conn: DictConnection, old: Held | None, full: bool) -> Held | None:
            if isinstance(old, Dense) and old.newest is not None:
                new = await self._append_dense(conn, user_id, model, state, old)
                if new is not None:
                    return new
            if not full:
                return None
            self.loads["full"] += 1
            return _dense(await store.dense_rows(conn, user_id, model), state, time.monotonic())

        return load

    async def _append_dense(
        self, conn: DictConnection, user_id: str, model: str, state: State, old: Dense
    ) -> Dense | None:
        """`old` plus the model's rows created since its newest minus the overlap; None unless every row since is
        the model's and the total then matches `entries`."""
        assert old.newest is not None
        row = await store.dense_rows_since(conn, user_id, model, old.newest - OVERLAP_SECONDS)
        if int(row["others"]):
            return None  # another model's rows: whether they are counted in `others` already is unknown
        new = _dense(row, state, old.loaded_at)
        if len(new) and new.bits.shape[0] != old.bits.shape[0]:
            return None
        add = unseen(old.ids, new.ids)
        if len(old) + int(add.sum()) + old.others != state.entries:
            return None
        self.loads["append"] += 1
        return replace(
            old,
            ids=np.concatenate([old.ids, new.ids[add]]),
            bits=np.ascontiguousarray(np.concatenate([old.bits, new.bits[:, add]], axis=1)),
            newest=max(old.newest, new.newest or old.newest),
            generation=state.generation,
            reload_generation=state.reload_generation,
        )

    def _load_lexical(self, user_id: str, state: State) -> Loader:
        loader = self.postings_loader
        assert loader is not None

        async def load(conn: DictConnection, old: Held | None, full: bool) -> Held | None:
            newest = old.postings.newest if isinstance(old, Lexical) else None
            if isinstance(old, Lexical) and newest is not None:
                merged = old.postings.merged(await loader(conn, user_id, float(newest) - OVERLAP_SECONDS))
                if len(merged) == state.entries:
                    self.loads["append"] += 1
                    return replace(old, postings=merged, generation=state.generation)
            if not full:
                return None
            self.loads["full"] += 1
            postings = await loader(conn, user_id, None)
            return Lexical(postings, state.generation, state.reload_generation, time.monotonic())

        return load

    def forget_user(self, user_id: str) -> None:
        """Hold nothing of this user any more (after a failure: the next searches start afresh)."""
        for key in [k for k in self._held if k[1] == user_id]:
            self._held.drop(key)
        self._small.pop(user_id, None)
