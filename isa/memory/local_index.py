"""Process-local shortlist index for users with many memories (issue #28; docs/memory.md "Local shortlist index").

The default search (store.Bits) computes each type's shortlist in SQL: the estimated blend of every one of the
user's rows, read from the bits index. That scan is linear in the user's rows and already at the floor of a
Postgres index-only scan (~0.33 µs per tuple, docs/benchmarks.md), so at 100,000 memories per user it alone is
over the 20 ms goal. For a (user, type, embedding model) with at least `local_index_min_rows` rows this module
keeps what that scan reads — ids, sign bits (uint64 words), importance, created_at and expires_at — in numpy
arrays, computes the same estimated blend over them (~0.05 µs per row) and hands the top `shortlist` ids to one
SQL statement (store.search_checked) that fetches them for the caller (user_id, model, LIVE and every filter in
SQL) and ranks by the exact blend, as the SQL shortlist's arm does. With `calibrate` the estimated cosine is
multiplied by a slope learnt from the re-ranks (the least-squares slope of the exact cosine on the estimate, which
the searching statement reports per type): sign bits of near-orthogonal vectors estimate the cosine with more noise
than the cosines' own spread, and the slope (~0.45 there, 0.6-0.75 for clustered vectors) keeps that noise from
outvoting importance and recency (recall@10 0.985 instead of 0.935 at 100,000 per user, docs/benchmarks.md).

Freshness, across processes and nodes: migration 0042's triggers keep memory_search_generations, whose
`generation` changes (to a never-repeated value) with every insert, delete and every update of a row's user,
model, bits, created_at or expires_at. The searching statement reads that row in its own snapshot; arrays loaded at
another generation are refreshed and the search is run again (at most `_ATTEMPTS` times, then the SQL shortlist
answers). For a user with arrays held here the counters are read first (one primary-key read), so a write since
the last search costs a refresh, not also a search against stale arrays; a user without (all types below the
threshold, or not seen yet) costs no extra round trip: the search statement itself reports the counters.

Refresh: when only inserts happened since the arrays were loaded (`reload_generation` unchanged), the
rows created since the newest cached one minus `OVERLAP_SECONDS` are appended, and the result is kept only if its
size equals the counter's `row_count` in the same snapshot (so a row committed late with an older created_at
forces a full load instead of being missed); after a delete or such an update, or when the arrays are older than
`local_index_max_age_seconds`, a full load. Importance changes (`reinforce`) and embedding changes move the
generation too (migration 0044): the int8 stage below picks the rows SQL re-ranks with the importance and vectors
held here, so they must be current.

int8 vectors (`local_index_vectors`, on by default): each row's embedding is also held as int8 (one scale per row,
which a cosine does not need) with 1 / its norm and its updated_at, +396 bytes a row at 384-d. The shortlist is
then scored again by the blend with the int8 cosine (~0.0003 from the exact one) and SQL gets only the rows that
may be among the `candidates` best per type above min_similarity, allowing each int8 cosine an error of
_INT8_ERROR (~50-70 rows instead of 300; most of the statement's time), and re-ranks them exactly as before. The
slope is then fitted here on the whole shortlist (SQL sees only the best rows, a biased sample). A full reload
keeps the vectors it holds for rows whose updated_at and sign bits are unchanged and reads only the others'
(`store.vectors_of`).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, TypeVar

import anyio
import numpy as np
import numpy.typing as npt

from isa.core.db import DictConnection
from isa.core.signbits import ByteBudget, hamming, query_bits, unpack_bits, uuid_literal
from isa.memory import store
from isa.memory.store import Bits, Filters

OVERLAP_SECONDS = 60.0  # an incremental refresh also reads rows this much older than the newest cached one
_ATTEMPTS = 3  # searches against a generation that moved on before the SQL path answers
_KNOWN_USERS = 10_000  # (user, model) pairs whose generations / slopes are remembered (~1.6 KB each: ~16 MB)
_THREAD_ROWS = 50_000  # a type this large is ranked (~2 ms) and decoded in a worker thread, off the event loop
_MAX_VECTOR_BYTES = 256 << 20  # a type's packed vectors (vector_send) read in one statement at most: ~166,000 at 384-d
_QUANTISE_ROWS = 8192  # rows quantised at a time (bounds the float copies: ~13 MB at 384-d)
_T = TypeVar("_T")
# An int8 cosine (one scale per row) is off the exact one by ~0.0003 on average, 0.0017 at most over 20,000 random
# 384-d rows (0.006 with one dominant component): the margin the int8 stage allows it (see shortlist).
_INT8_ERROR = 0.01
_LEARN, _MIN_FIT_ROWS, _SLOPE_MIN, _SLOPE_MAX = 0.3, 30, 0.05, 2.0  # slope calibration (see _learn)


def _row_bytes(dims: int, vectors: bool) -> int:
    """What one row costs in the arrays: uuid, importance, created, expires and the sign bits in whole words (and,
    with `vectors`, the int8 vector, its inverse norm and the row's updated_at)."""
    return 16 + 24 + (dims + 63) // 64 * 8 + (dims + 12 if vectors else 0)


@dataclass(frozen=True)
class Rows:
    """One (user, type, model)'s rows as of `generation` (arrays are never modified: refreshes make new ones)."""

    ids: npt.NDArray[np.uint8]  # (n, 16) uuid bytes
    bits: npt.NDArray[np.uint64]  # (words, n) sign bits, zero-padded to whole words (word-major: fast XOR per word)
    importance: npt.NDArray[np.float64]
    created: npt.NDArray[np.float64]  # epoch seconds
    expires: npt.NDArray[np.float64]  # epoch seconds, inf without expiry
    dims: int
    generation: int
    reload_generation: int
    loaded_at: float  # time.monotonic() of the full load these arrays descend from
    # With `vectors`: each embedding quantised to int8 (one scale per row, which the cosine does not need), 1 / its
    # norm and the row's updated_at (epoch; a reload keeps the vector of a row whose updated_at is unchanged);
    # (0, 0) and (0,) arrays without.
    vectors: npt.NDArray[np.int8] = field(default_factory=lambda: np.zeros((0, 0), np.int8))
    inverse_norms: npt.NDArray[np.float32] = field(default_factory=lambda: np.zeros(0, np.float32))
    updated: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))

    @property
    def nbytes(self) -> int:
        arrays = (self.ids, self.bits, self.importance, self.created, self.expires)
        return int(sum(a.nbytes for a in (*arrays, self.vectors, self.inverse_norms, self.updated)))

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @property
    def words(self) -> int:
        return int(self.bits.shape[0])


def decode(row: dict[str, Any], loaded_at: float) -> Rows:
    """store.shortlist_rows' packed columns as arrays."""
    n = int(row["n"])
    bits, dims = unpack_bits(bytes(row["bits"] or b""), n)

    def floats(name: str) -> npt.NDArray[np.float64]:
        return np.frombuffer(bytes(row[name] or b""), ">f8").astype(np.float64)

    vectors, inverse_norms = quantise(bytes(row.get("vectors") or b""), n)
    return Rows(
        ids=np.frombuffer(bytes(row["ids"] or b""), np.uint8).reshape(n, 16).copy(),
        bits=bits,
        importance=floats("importance"),
        created=floats("created"),
        expires=floats("expires"),
        dims=dims,
        generation=int(row["generation"]),
        reload_generation=int(row["reload_generation"]),
        loaded_at=loaded_at,
        vectors=vectors,
        inverse_norms=inverse_norms,
        updated=np.frombuffer(bytes(row.get("updated") or b""), ">f8").astype(np.float64),
    )


def quantise(packed: bytes, n: int) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.float32]]:
    """n pgvector `vector_send` values (int16 dims, int16 unused, dims big-endian float4) as int8 rows scaled to
    +-127 by each row's largest component, and 1 / the int8 row's norm; empty arrays for no bytes."""
    if not n or not packed:
        return np.zeros((0, 0), np.int8), np.zeros(0, np.float32)
    dims = int.from_bytes(packed[:2], "big")
    big_endian = np.frombuffer(packed, np.dtype([("head", ">u4"), ("v", ">f4", (dims,))]), n)["v"]
    vectors = np.empty((n, dims), np.int8)
    inverse_norms = np.empty(n, np.float32)
    for start in range(0, n, _QUANTISE_ROWS):
        floats = big_endian[start : start + _QUANTISE_ROWS].astype(np.float32)
        scale = np.abs(floats).max(axis=1, keepdims=True)
        scale[scale == 0] = 1.0
        part = np.rint(floats * (127.0 / scale)).astype(np.int8)
        norms = np.linalg.norm(part.astype(np.float32), axis=1)
        norms[norms == 0] = 1.0
        vectors[start : start + len(part)] = part
        inverse_norms[start : start + len(part)] = 1.0 / norms
    return vectors, inverse_norms


async def _off_loop(work: Callable[[], _T], rows: int) -> _T:
    """work() in a worker thread when it handles `rows` >= _THREAD_ROWS rows (~20 ms and more), else here."""
    return await anyio.to_thread.run_sync(work) if rows >= _THREAD_ROWS else work()


def answers(filters: Filters, memory_type: str) -> bool:
    """Whether the arrays can apply the filters of this type (the others need columns they do not hold;
    min_importance is left to SQL's arm; since/until only with a time zone)."""
    if filters.min_importance > 0:
        return False
    if any(d is not None and d.tzinfo is None for d in (filters.since, filters.until)):
        return False  # a naive datetime means the session's time zone to Postgres: left to SQL
    if memory_type == "factual" and (filters.subject is not None or filters.fact_type is not None):
        return False
    return not (memory_type == "semantic" and filters.category is not None)


@dataclass(frozen=True)
class Shortlist:
    """What `shortlist` picked: uuids as a Postgres array literal (one text parameter: ~2 ms less than 1,500
    separate strings at five types), and, when the int8 vectors re-scored the sign bits' picks, those picks'
    estimated cosines next to their int8 ones (to learn the slope from)."""

    ids: str
    estimated: npt.NDArray[np.float64] | None = None
    int8: npt.NDArray[np.float64] | None = None


def shortlist(rows: Rows, q: store.Search, now: float, size: int, slope: float = 1.0, keep: int = 0) -> Shortlist:
    """The `size` rows of highest estimated blend — store._blend with `slope` * cos(pi * hamming / dims); with
    slope 1 exactly what the SQL shortlist computes — among those live at `now` and inside the search's since/until.
    With int8 vectors held and `keep` > 0, those rows are scored again by the blend with the int8 cosine (~0.0003
    from the exact one) and only those that may be among the `keep` best passing the search's min_similarity with
    an error up to _INT8_ERROR are handed to SQL's exact re-rank."""
    vector, blend, filters, floor = q.vector, q.blend, q.filters, q.min_similarity
    distance = hamming(rows.bits, query_bits(vector, rows.words))
    e_folding = blend.half_life_days / 0.6931471805599453
    estimate = _cosines(len(vector))[distance]
    score = (
        blend.similarity * slope * estimate
        + blend.importance * rows.importance
        + blend.recency * np.exp(-(now - rows.created) / 86400.0 / e_folding)
    )
    live = rows.expires > now
    if filters.since is not None:
        live &= rows.created >= filters.since.timestamp()
    if filters.until is not None:
        live &= rows.created < filters.until.timestamp()
    candidates = np.flatnonzero(live)
    if candidates.size > size:
        top = np.argpartition(-score[candidates], size - 1)[:size]
        candidates = candidates[top]
    picked = Shortlist(uuid_literal(rows.ids[candidates]))
    if keep and rows.vectors.shape[0] == len(rows) and candidates.size:
        query = np.asarray(vector, np.float32)
        cosine = (rows.vectors[candidates].astype(np.float32) @ query) * rows.inverse_norms[candidates]
        cosine /= max(float(np.linalg.norm(query)), 1e-12)
        blended = score[candidates] + blend.similarity * (cosine - slope * estimate[candidates])
        # Every row that may be among SQL's `keep` best (exact blend, min_similarity applied) if each int8 cosine is
        # off by up to _INT8_ERROR: the `keep` best of the rows sure to pass the floor bound the keep-th exact score
        # from below, so a row is sent when it may pass the floor and may reach that bound (~50-70 rows, not 40).
        sure = blended[cosine >= floor + _INT8_ERROR] - blend.similarity * _INT8_ERROR
        cut = -np.inf if sure.size < keep else float(np.partition(sure, sure.size - keep)[sure.size - keep])
        send = (cosine >= floor - _INT8_ERROR) & (blended + blend.similarity * _INT8_ERROR >= cut)
        picked = Shortlist(uuid_literal(rows.ids[candidates[send]]), estimate[candidates], cosine.astype(np.float64))
    return picked


def fit(estimated: npt.NDArray[np.float64] | None, cosine: npt.NDArray[np.float64]) -> list[float | None]:
    """[the least-squares slope of `cosine` on `estimated` (None below two distinct estimates), the rows] — what
    the searching statement's regr_slope reports for a shortlist SQL re-ranked."""
    assert estimated is not None
    spread = float(np.var(estimated))
    if estimated.size < 2 or spread <= 0:
        return [None, float(estimated.size)]
    return [float(np.mean((estimated - estimated.mean()) * (cosine - cosine.mean())) / spread), float(estimated.size)]


_COSINES: dict[int, npt.NDArray[np.float64]] = {}


def _cosines(dims: int) -> npt.NDArray[np.float64]:
    """cos(pi * h / dims) for every Hamming distance h in 0..dims (a lookup instead of a cosine per row)."""
    table = _COSINES.get(dims)
    if table is None:
        table = _COSINES[dims] = np.cos(np.pi * np.arange(dims + 1) / float(dims))
    return table


class LocalIndex:
    """Arrays per (user, type, model) above `min_rows`, least recently used dropped beyond `max_bytes`."""

    def __init__(
        self,
        min_rows: int,
        max_bytes: int,
        max_age_seconds: float,
        shortlist: int = 0,
        calibrate: bool = True,
        vectors: bool = False,
    ) -> None:
        self.min_rows = min_rows
        self.shortlist = shortlist  # per type for the types answered here (at least the search's own)
        self.calibrate = calibrate
        self.vectors = vectors  # hold int8 vectors too: SQL re-ranks only the `candidates` they score best per type
        # Per (user, type, model): the slope of the exact cosine on the estimated one, learnt from the shortlists'
        # re-ranks (see _learn); 1 until a search has reported one.
        self._slopes: OrderedDict[tuple[str, str, str], float] = OrderedDict()
        self._priors: dict[tuple[str, str], float] = {}
        self._locks: dict[tuple[str, str, str], anyio.Lock] = {}
        self.max_bytes = max_bytes
        self.max_age_seconds = max_age_seconds
        self._rows: ByteBudget[tuple[str, str, str], Rows] = ByteBudget(max_bytes)
        self._known: OrderedDict[tuple[str, str], dict[str, list[int]]] = OrderedDict()
        self._clock = 0.0  # database clock - this process's clock, seconds (from the last search)
        self.loads = {"full": 0, "append": 0, "retry": 0, "fallback": 0}  # what refreshes happened (bench, tests)

    @property
    def nbytes(self) -> int:
        return self._rows.nbytes

    async def search(self, conn: DictConnection, q: store.Search, bits: Bits) -> list[dict[str, Any]]:
        """store.search's result for `bits`, with the shortlists of the user's large types computed here."""
        user_id, model, filters = q.user_id, q.model, q.filters
        gens = self._known.get((user_id, model), {})
        if any(self._large(filters, t, gens) for t in filters.types):
            # A user this process holds arrays for: their generations first (a primary-key read), so that a write
            # since the last search costs a refresh, not also a search against stale arrays.
            gens = await store.generations(conn, user_id, model)
        for attempt in range(_ATTEMPTS + 1):
            if attempt == _ATTEMPTS:
                gens = {}
            arrays: dict[str, Rows] = {}
            # The user's large types that fit in the budget together, in a fixed order: held in turn instead, each
            # search would evict the type the next one needs and load every type again. The others use SQL.
            large, room = [], self.max_bytes
            for t in filters.types:
                if self._large(filters, t, gens) and gens[t][2] * _row_bytes(len(q.vector), self.vectors) <= room:
                    large.append(t)
                    room -= gens[t][2] * _row_bytes(len(q.vector), self.vectors)
            for memory_type in filters.types:
                if memory_type in large:
                    rows = await self._current(conn, user_id, model, memory_type, gens[memory_type], len(q.vector))
                    if rows is not None:
                        arrays[memory_type] = rows
                elif attempt < _ATTEMPTS and gens.get(memory_type, [0, 0, 0])[2] < self.min_rows:
                    self._rows.drop((user_id, memory_type, model))  # forgotten or shrunk: its arrays are of no use
            now = time.time() + self._clock
            size = max(bits.shortlist, self.shortlist)
            slopes = {t: self.slope(user_id, t, model) if self.calibrate else 1.0 for t in arrays}
            picked: dict[str, Shortlist] = {}
            keep = bits.candidates if self.vectors else 0
            for t, r in arrays.items():
                rank = partial(shortlist, r, q, now, size, slopes[t], keep)
                picked[t] = await anyio.to_thread.run_sync(rank) if len(r) >= _THREAD_ROWS else rank()
            ids = {t: p.ids for t, p in picked.items()}
            hits, gens, db_now, calibration = await store.search_checked(conn, q, bits, ids)
            self._clock = db_now - time.time()
            if self.calibrate:
                # Where int8 vectors re-scored the whole shortlist, the slope is fitted on it here (SQL saw only the
                # few rows kept, the best of them: a biased sample).
                calibration.update({t: fit(p.estimated, p.int8) for t, p in picked.items() if p.int8 is not None})
                self._learn(user_id, model, slopes, calibration)
            self._remember((user_id, model), gens)
            if all(t in gens and gens[t][0] == r.generation for t, r in arrays.items()):
                if attempt == _ATTEMPTS:
                    self.loads["fallback"] += 1
                return hits
            self.loads["retry"] += 1
        raise AssertionError("unreachable: the last attempt has no local arrays")  # pragma: no cover

    def _large(self, filters: Filters, memory_type: str, gens: dict[str, list[int]]) -> bool:
        seen = gens.get(memory_type)
        return seen is not None and seen[2] >= self.min_rows and answers(filters, memory_type)

    def _learn(
        self, user_id: str, model: str, used: dict[str, float], calibration: dict[str, list[float | None]]
    ) -> None:
        """Move each type's slope towards the one its re-ranked shortlist just showed (`_LEARN` of the way; the
        first one is taken as it is), and the type's and model's prior for users not seen yet likewise."""
        for memory_type, (slope, count) in calibration.items():
            if slope is None or count is None or count < _MIN_FIT_ROWS:
                continue
            seen = float(slope)
            key = (user_id, memory_type, model)
            old = self._slopes.get(key)
            new = seen if old is None else used.get(memory_type, old) + _LEARN * (seen - used.get(memory_type, old))
            self._slopes[key] = min(max(new, _SLOPE_MIN), _SLOPE_MAX)
            self._slopes.move_to_end(key)
            while len(self._slopes) > _KNOWN_USERS:
                self._slopes.popitem(last=False)
            prior = self._priors.get((memory_type, model), seen)
            self._priors[(memory_type, model)] = min(max(prior + _LEARN * (seen - prior), _SLOPE_MIN), _SLOPE_MAX)

    def slope(self, user_id: str, memory_type: str, model: str) -> float:
        """The slope the next search of this user's type ranks by: learnt for the user, else the type's prior
        (learnt from every user's searches), else 1 (the SQL shortlist's estimate)."""
        learnt = self._slopes.get((user_id, memory_type, model))
        return learnt if learnt is not None else self._priors.get((memory_type, model), 1.0)

    def _remember(self, key: tuple[str, str], gens: dict[str, list[int]]) -> None:
        self._known[key] = gens
        self._known.move_to_end(key)
        while len(self._known) > _KNOWN_USERS:
            self._known.popitem(last=False)

    async def _current(
        self, conn: DictConnection, user_id: str, model: str, memory_type: str, seen: list[int], dims: int
    ) -> Rows | None:
        """The arrays at generation `seen[0]` or later (appended or loaded again as needed); None when there is
        nothing to hold or it would not fit in the budget."""
        key = (user_id, memory_type, model)
        current = self._usable(key, seen)
        if current is not None:
            return current if current.dims == dims else None
        # One refresh per key at a time: concurrent searches of the user wait for it instead of loading again.
        lock = self._locks.setdefault(key, anyio.Lock())
        try:
            async with lock:
                current = self._usable(key, seen) or await self._refresh(conn, user_id, model, memory_type, seen, dims)
                return current if current is not None and current.dims == dims else None  # another model's width
        finally:
            # Released to a waiting task, the lock is still owned (anyio hands it over): only an idle lock goes.
            if not lock.locked() and not lock.statistics().tasks_waiting and self._locks.get(key) is lock:
                del self._locks[key]

    def _usable(self, key: tuple[str, str, str], seen: list[int]) -> Rows | None:
        cached = self._rows.peek(key)
        if cached is None or time.monotonic() - cached.loaded_at > self.max_age_seconds or cached.generation != seen[0]:
            return None
        return self._rows.get(key)

    async def _refresh(
        self, conn: DictConnection, user_id: str, model: str, memory_type: str, seen: list[int], dims: int
    ) -> Rows | None:
        key = (user_id, memory_type, model)
        cached = self._rows.peek(key)
        fresh = cached is not None and time.monotonic() - cached.loaded_at <= self.max_age_seconds
        rows: Rows | None = None
        if cached is not None and fresh and cached.reload_generation == seen[1] and len(cached):
            rows = await self._append(conn, user_id, model, memory_type, cached)  # keeps cached's vectors or none
        if rows is None:
            # A reload keeps the vectors it already holds (most of a reload's time with them: ~10x the rest). A type
            # whose vectors would not fit in one bytea (Postgres's 1 GB; capped well below) is held without them.
            vectors = self.vectors and seen[2] * (4 * dims + 4) <= _MAX_VECTOR_BYTES
            carry = cached if vectors and cached is not None and len(cached.vectors) else None
            row = await store.shortlist_rows(
                conn, memory_type, user_id, model, None, vectors and carry is None, vectors
            )
            self.loads["full"] += 1
            rows = None
            if row is not None and int(row["n"]):
                rows = await _off_loop(partial(decode, row, time.monotonic()), int(row["n"]))
            if rows is not None and carry is not None:
                rows = await self._carried(conn, user_id, memory_type, carry, rows)
        if rows is None:
            self._rows.drop(key)
            return None
        return rows if self._rows.put(key, rows) else None

    async def _carried(self, conn: DictConnection, user_id: str, memory_type: str, old: Rows, new: Rows) -> Rows:
        """`new` (loaded without vectors) with the int8 vectors of `old` for the rows both hold with the same
        updated_at and sign bits, and those of the others read from the database."""
        held = old.ids.view("S16").ravel()
        order = np.argsort(held)
        wanted = new.ids.view("S16").ravel()
        at = np.minimum(np.searchsorted(held[order], wanted), len(held) - 1)
        source = order[at]
        found = (held[source] == wanted) & (old.bits[:, source] == new.bits).all(axis=0)
        found &= old.updated[source] == new.updated
        vectors = np.zeros((len(new), new.dims), np.int8)
        inverse_norms = np.zeros(len(new), np.float32)
        vectors[found], inverse_norms[found] = old.vectors[source[found]], old.inverse_norms[source[found]]
        missing = np.flatnonzero(~found)
        if missing.size:
            row = await store.vectors_of(conn, memory_type, user_id, uuid_literal(new.ids[missing]))
            n = int(row["n"]) if row is not None else 0
            if n != missing.size:  # deleted since the load: the next search sees a new generation and reloads
                return replace(new, vectors=np.zeros((0, 0), np.int8), inverse_norms=np.zeros(0, np.float32))
            assert row is not None
            got = np.frombuffer(bytes(row["ids"]), np.uint8).reshape(n, 16).view("S16").ravel()
            at = np.searchsorted(got, wanted[missing])  # both sorted the same way: uuid order is byte order
            fetched, norms = await _off_loop(partial(quantise, bytes(row["vectors"]), n), n)
            vectors[missing], inverse_norms[missing] = fetched[at], norms[at]
        return replace(new, vectors=vectors, inverse_norms=inverse_norms)

    async def _append(
        self, conn: DictConnection, user_id: str, model: str, memory_type: str, cached: Rows
    ) -> Rows | None:
        """`cached` plus the rows created since its newest minus the overlap; None unless only inserts happened
        and the result has exactly the counter's row_count (same snapshot)."""
        held = len(cached.vectors) == len(cached)  # with vectors (not for a type above _MAX_VECTOR_BYTES)
        since = float(cached.created.max()) - OVERLAP_SECONDS
        row = await store.shortlist_rows(conn, memory_type, user_id, model, since, held, held)
        if row is None or int(row["reload_generation"]) != cached.reload_generation:
            return None
        self.loads["append"] += 1
        new = decode(row, cached.loaded_at)
        if len(new) and new.words != cached.words:
            return None
        recent = {bytes(b) for b in cached.ids[cached.created >= since]}
        add = np.array([bytes(b) not in recent for b in new.ids], dtype=bool)
        if len(cached) + int(add.sum()) != int(row["row_count"]):
            return None
        if not add.any():
            return replace(cached, generation=new.generation)
        return replace(
            cached,
            ids=np.concatenate([cached.ids, new.ids[add]]),
            bits=np.ascontiguousarray(np.concatenate([cached.bits, new.bits[:, add]], axis=1)),
            importance=np.concatenate([cached.importance, new.importance[add]]),
            created=np.concatenate([cached.created, new.created[add]]),
            expires=np.concatenate([cached.expires, new.expires[add]]),
            vectors=np.concatenate([cached.vectors, new.vectors[add]]) if held else cached.vectors,
            inverse_norms=np.concatenate([cached.inverse_norms, new.inverse_norms[add]])
            if held
            else cached.inverse_norms,
            updated=np.concatenate([cached.updated, new.updated[add]]) if held else cached.updated,
            generation=new.generation,
        )

    def forget_user(self, user_id: str, model: str) -> None:
        """Hold nothing of this user and model any more (after a failure: the next searches start afresh)."""
        for key in [k for k in self._rows if k[0] == user_id and k[2] == model]:
            self._rows.drop(key)
        self._known.pop((user_id, model), None)
