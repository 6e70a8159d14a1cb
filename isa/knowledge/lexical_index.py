"""Process-local exact BM25 over one user's knowledge chunks (issue #28; docs/memory.md, Knowledge, "Local BM25
postings").

The SQL lexical arm (isa/core/search.py) reads every posting of each query term from `user_knowledge_postings`,
at ~0.5 µs per posting: a common term of a 100,000-chunk user has tens of thousands, so the arm alone is over the
20 ms goal. `Postings` holds the same postings of one user in numpy arrays — CSR by term: per term a slice of row
ordinals (int32) and term frequencies (int16), plus per row the chunk's length (float64), id (16 uuid bytes) and
created_at — and `Postings.top` computes the same BM25 over them (a gather, a few float operations and a scatter
per posting, ~5-10 ns each) and the top k with `np.partition`.

The scores are the SQL arm's: per term w = ln(1 + (max(N, df) - df + 0.5) / (df + 0.5)) * (k1 + 1) with df the
number of the user's postings of the term, and per posting w * tf / (tf + k1 * (1 - b) + (k1 * b / avgdl) * dl)
in the same order of float operations (the idf with `math.log`, libm's as in Postgres), summed over the query's
terms; ties are broken by id (uuid byte order), as the SQL's `ORDER BY bm25 DESC, entry_id`. N and avgdl are the
caller's (`isa.knowledge.store.bm25_stats`, as the SQL arm binds them), so the two stay comparable whatever the
caller caches.

Loading reads one statement (one snapshot): the user's chunk ids (in uuid order) and created_at, and per term its
postings packed as bytea (`uuid_send` of the chunk, `int2send` of tf), so 3.4 million postings cost no Python
object each; the postings' uuids are matched to row numbers in numpy (`_ordinals`). `load(since=...)` reads only
the chunks created at or after `since` (epoch seconds) with their postings; `merged` appends such a newer load
(inserts only: a deleted or updated chunk needs a full load, which the caller's freshness check decides) and skips
chunks already held, so an overlapping `since` is safe.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from psycopg import sql

from isa.core.db import DictConnection

TEXT_CONFIG = "english"  # isa.knowledge.service.CORPUS.text_config: the configuration of search_tsv and of queries
_MAX_LEN = 32767  # knowledge_tsv_length's cap (migration 0019)
_STEPS = 8  # _ordinals' steps forward from a uuid's bucket before an exact search

# The chunks (all of the user's, or those created since a time) in id order, and their postings grouped by term:
# every column packed big-endian into one bytea (the aggregates of one node see the same input order). The
# postings name their chunk by uuid, matched to its row number here (a join in SQL cost more than it saves).
_LOAD = """
WITH e AS (
    SELECT k.id, k.created_at FROM user_knowledge k WHERE k.user_id = %(user_id)s{since_rows}
), p AS (
    SELECT p.term, count(*)::int4 AS c, string_agg(uuid_send(p.entry_id), ''::bytea) AS es,
           string_agg(int2send(p.tf_a), ''::bytea) AS tfs
    FROM {postings} GROUP BY p.term
)
SELECT (SELECT count(*) FROM e) AS n,
       (SELECT string_agg(uuid_send(e.id), ''::bytea ORDER BY e.id) FROM e) AS ids,
       (SELECT string_agg(float8send(date_part('epoch', e.created_at)), ''::bytea ORDER BY e.id) FROM e) AS created,
       t.*
FROM (SELECT array_agg(p.term) AS terms, string_agg(int4send(p.c), ''::bytea) AS counts,
             string_agg(p.es, ''::bytea) AS es, string_agg(p.tfs, ''::bytea) AS tfs FROM p) t
"""
# Every chunk's postings: the user's range of the postings table.
_ALL_POSTINGS = "user_knowledge_postings p WHERE p.user_id = %(user_id)s"
# A few new chunks' postings: by entry through user_knowledge_postings_entry_idx, not the user's whole range
# (OFFSET 0 keeps the probe per chunk: flattened, Postgres hash-joined every posting of every user, 0.9 s at 100,000).
_NEW_POSTINGS = (
    "e CROSS JOIN LATERAL (SELECT q.term, q.entry_id, q.tf_a FROM user_knowledge_postings q"
    " WHERE q.entry_id = e.id OFFSET 0) p"
)


async def packed(conn: DictConnection, user_id: str, since: float | None = None) -> dict[str, Any] | None:
    """The load statement's one row (`Postings.decode` reads it): n, ids, created, terms, counts, os, tfs."""
    statement = sql.SQL(_LOAD).format(
        since_rows=sql.SQL(" AND k.created_at >= to_timestamp(%(since)s)" if since is not None else ""),
        postings=sql.SQL(_ALL_POSTINGS if since is None else _NEW_POSTINGS),
    )
    cur = await conn.execute(statement, {"user_id": user_id, "since": since}, binary=True)
    return await cur.fetchone()


@dataclass(frozen=True)
class LexicalHits:
    ids: list[str]  # user_knowledge.id as text, best first
    scores: list[float]  # exact BM25, as the SQL lexical arm's `lex`


def _empty_i32() -> npt.NDArray[np.int32]:
    return np.zeros(0, np.int32)


@dataclass(frozen=True)
class Postings:
    """One user's postings in numpy arrays (CSR by term); never modified (`merged` makes new arrays)."""

    terms: dict[str, int]  # lexeme -> its index into `starts`
    starts: npt.NDArray[np.int64]  # (terms + 1,): term t's postings are [starts[t], starts[t + 1])
    rows: npt.NDArray[np.int32]  # (postings,) row ordinal of each posting
    tfs: npt.NDArray[np.int16]  # (postings,) the term's frequency in that row (tf_a)
    lengths: npt.NDArray[np.float64]  # (rows,) the row's token count (len_a), as the float the score needs
    ids: npt.NDArray[np.uint8]  # (rows, 16) uuid bytes
    created: npt.NDArray[np.float64]  # (rows,) created_at, epoch seconds

    @classmethod
    def empty(cls) -> Postings:
        return cls({}, np.zeros(1, np.int64), _empty_i32(), np.zeros(0, np.int16), np.zeros(0, np.float64),
                   np.zeros((0, 16), np.uint8), np.zeros(0, np.float64))  # fmt: skip

    @classmethod
    async def load(cls, conn: DictConnection, user_id: str, *, since: float | None = None) -> Postings:
        """The user's chunks (those created at or after `since`, epoch seconds, if given) and their postings, as of
        one snapshot."""
        row = await packed(conn, user_id, since)
        return cls.decode(row) if row is not None else cls.empty()

    @classmethod
    def decode(cls, row: dict[str, Any]) -> Postings:
        """The load statement's packed columns as arrays."""
        n = int(row["n"])
        if n == 0:
            return cls.empty()
        terms = list(row["terms"] or [])
        counts = np.frombuffer(bytes(row["counts"] or b""), ">i4").astype(np.int64)
        starts = np.zeros(len(terms) + 1, np.int64)
        np.cumsum(counts, out=starts[1:])
        ids = np.frombuffer(bytes(row["ids"]), np.uint8).reshape(n, 16).copy()
        rows = _ordinals(ids, np.frombuffer(bytes(row["es"] or b""), np.uint8).reshape(-1, 16))
        tfs = np.frombuffer(bytes(row["tfs"] or b""), ">i2").astype(np.int16)
        # A row's length is the sum of its lexemes' position counts (knowledge_tsv_length, capped like len_a),
        # and tf_a is each lexeme's count (at most 256 positions per lexeme): the sum of the row's tfs.
        lengths = np.minimum(np.bincount(rows, weights=tfs, minlength=n), float(_MAX_LEN))
        return cls(
            terms={t: i for i, t in enumerate(terms)},
            starts=starts,
            rows=rows,
            tfs=tfs,
            lengths=lengths,
            ids=ids,
            created=np.frombuffer(bytes(row["created"]), ">f8").astype(np.float64),
        )

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @property
    def postings(self) -> int:
        return int(self.rows.shape[0])

    @property
    def nbytes(self) -> int:
        arrays = (self.starts, self.rows, self.tfs, self.lengths, self.ids, self.created)
        # The term dictionary: ~100 bytes per entry (key str, int, hash slot) on CPython.
        return int(sum(a.nbytes for a in arrays)) + 100 * len(self.terms)

    @property
    def newest(self) -> float | None:
        """The latest created_at held (epoch seconds), for a caller's next `load(since=...)`."""
        return float(self.created.max()) if len(self) else None

    def df(self, term: str) -> int:
        t = self.terms.get(term)
        return 0 if t is None else int(self.starts[t + 1] - self.starts[t])

    def merged(self, newer: Postings) -> Postings:
        """These chunks and `newer`'s after them (those whose id is not held already); inserts only."""
        keep = _new_rows(self.ids, newer.ids)
        if not keep.any():
            return self
        if not keep.all():
            newer = newer._subset(keep)
        shift = len(self)
        terms = dict(self.terms)
        for term in newer.terms:
            terms.setdefault(term, len(terms))
        # Per term of the union: its postings here, then newer's; each posting's place in the new CSR arrays.
        old_counts = np.zeros(len(terms), np.int64)
        old_counts[: len(self.terms)] = np.diff(self.starts)
        new_index = np.fromiter((terms[t] for t in newer.terms), np.int64, len(newer.terms))
        new_counts_by_own = np.diff(newer.starts)
        new_counts = np.zeros(len(terms), np.int64)
        new_counts[new_index] = new_counts_by_own
        starts = np.zeros(len(terms) + 1, np.int64)
        np.cumsum(old_counts + new_counts, out=starts[1:])
        total = int(starts[-1])
        rows = np.empty(total, np.int32)
        tfs = np.empty(total, np.int16)
        old_dest = _dest(starts[:-1][: len(self.terms)], self.starts)
        rows[old_dest], tfs[old_dest] = self.rows, self.tfs
        new_dest = _dest(starts[:-1][new_index] + old_counts[new_index], newer.starts)
        rows[new_dest], tfs[new_dest] = newer.rows + shift, newer.tfs
        return Postings(
            terms=terms,
            starts=starts,
            rows=rows,
            tfs=tfs,
            lengths=np.concatenate([self.lengths, newer.lengths]),
            ids=np.concatenate([self.ids, newer.ids]),
            created=np.concatenate([self.created, newer.created]),
        )

    def _subset(self, keep: npt.NDArray[np.bool_]) -> Postings:
        """Only the rows where `keep` (renumbered in order) and their postings."""
        number = np.cumsum(keep, dtype=np.int64) - 1
        kept = keep[self.rows]
        term_of = np.repeat(np.arange(len(self.terms), dtype=np.int64), np.diff(self.starts))[kept]
        counts = np.bincount(term_of, minlength=len(self.terms))
        starts = np.zeros(len(self.terms) + 1, np.int64)
        np.cumsum(counts, out=starts[1:])
        return Postings(
            terms=self.terms,
            starts=starts,
            rows=number[self.rows[kept]].astype(np.int32),
            tfs=self.tfs[kept],
            lengths=self.lengths[keep],
            ids=self.ids[keep],
            created=self.created[keep],
        )

    def top(self, terms: Sequence[str], k: int, *, k1: float, b: float, n: int, avgdl: float) -> LexicalHits:
        """The best `k` rows by BM25 of `terms` (each counted once) with N = `n` and mean length `avgdl` (as the
        SQL arm binds them: `bm25_stats`' rows and len_a); rows matching no term are not hits."""
        known = sorted({t for t in terms if t in self.terms})
        if k <= 0 or not known or not len(self):
            return LexicalHits([], [])
        kb0 = k1 * (1 - b)
        kb1 = k1 * b / max(avgdl, 1e-6)  # isa.core.search._slice_params' avg (field A alone, weight 1)
        scores = np.zeros(len(self), np.float64)
        for term in known:
            t = self.terms[term]
            lo, hi = int(self.starts[t]), int(self.starts[t + 1])
            df = float(hi - lo)
            w = math.log(1 + (max(float(n), df) - df + 0.5) / (df + 0.5)) * (k1 + 1)
            rows = self.rows[lo:hi]
            # The SQL's w * tf / (tf + kb0 + kb1 * dl), operation for operation (in place: 0.8x the time of
            # the expression's temporaries); a row is in a term's slice once.
            tf = self.tfs[lo:hi].astype(np.float64)
            den = self.lengths[rows]
            den *= kb1
            num = tf * w
            tf += kb0
            tf += den
            num /= tf
            scores[rows] += num
        matched = np.flatnonzero(scores)
        if matched.size > k:
            # Every row scoring at least the k-th best (ties at the boundary included), then ordered exactly.
            kth = np.partition(scores[matched], matched.size - k)[matched.size - k]
            matched = matched[scores[matched] >= kth]
        words = self.ids[matched].view(">u8")  # (m, 2): the uuid's bytes as two big-endian words
        order = np.lexsort((words[:, 1], words[:, 0], -scores[matched]))[:k]
        best = matched[order]
        return LexicalHits(
            ids=[str(uuid.UUID(bytes=self.ids[i].tobytes())) for i in best], scores=scores[best].tolist()
        )


def _dest(heads: npt.NDArray[np.int64], starts: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Where each posting of CSR `starts` goes when its term's postings begin at `heads[term]` instead."""
    counts = np.diff(starts)
    return np.arange(int(starts[-1]), dtype=np.int64) + np.repeat(heads - starts[:-1], counts)


def _ordinals(ids: npt.NDArray[np.uint8], entries: npt.NDArray[np.uint8]) -> npt.NDArray[np.int32]:
    """Each of `entries`' uuids' row in `ids` (both (n, 16) bytes; `ids` in uuid order, as Postgres sorts them:
    bytewise, i.e. by the two big-endian halves). By the first half's leading bits (gen_random_uuid's are
    uniform: ~0.5 ids per bucket) and a few steps forward — np.searchsorted of millions of postings cost ~0.3 µs
    each; what is left after `_STEPS` (clustered uuids, two sharing a half) is searched for exactly."""
    hi, lo = ids.view(">u8")[:, 0].astype(np.uint64), ids.view(">u8")[:, 1].astype(np.uint64)
    want_hi = entries.view(">u8")[:, 0].astype(np.uint64)
    want_lo = entries.view(">u8")[:, 1].astype(np.uint64)
    n = len(hi)
    bits = min(max(int(n).bit_length() + 1, 1), 24)
    shift = np.uint64(64 - bits)
    first = np.searchsorted(hi >> shift, np.arange(1 << bits, dtype=np.uint64))
    at = first[(want_hi >> shift).astype(np.intp)].astype(np.int64)
    todo = np.arange(len(at))
    for _ in range(_STEPS):
        if not todo.size:
            break
        here = np.minimum(at[todo], n - 1)
        found = (hi[here] == want_hi[todo]) & (lo[here] == want_lo[todo])
        todo = todo[~found & (at[todo] < n - 1)]
        at[todo] += 1
    for miss in todo:  # left after the steps
        start, stop = np.searchsorted(hi, want_hi[miss]), np.searchsorted(hi, want_hi[miss], "right")
        match = start + np.flatnonzero(lo[start:stop] == want_lo[miss])
        at[miss] = match[0] if match.size else n
    if at.size and (int(at.max()) >= n or not ((hi[at] == want_hi) & (lo[at] == want_lo)).all()):
        raise ValueError("a posting names a chunk the load did not read")
    return at.astype(np.int32)


def _new_rows(held: npt.NDArray[np.uint8], incoming: npt.NDArray[np.uint8]) -> npt.NDArray[np.bool_]:
    """Which of `incoming`'s uuids are not in `held` (both (n, 16) bytes)."""
    if not len(incoming) or not len(held):
        return np.ones(len(incoming), bool)
    key = np.dtype((np.void, 16))
    return ~np.isin(incoming.view(key).ravel(), held.view(key).ravel())


_QUERY_TERMS = sql.SQL("SELECT DISTINCT u.lexeme AS term FROM unnest(to_tsvector({}, %(text)s)) u ORDER BY 1")


async def query_terms(conn: DictConnection, text: str, config: str = TEXT_CONFIG) -> list[str]:
    """The query's lexemes as the SQL arm takes them (isa.core.search.hybrid_sql's `qt`: the distinct lexemes of
    to_tsvector(config, text)), sorted."""
    cur = await conn.execute(_QUERY_TERMS.format(sql.Literal(config)), {"text": text})
    return [str(r["term"]) for r in await cur.fetchall()]


__all__ = ["TEXT_CONFIG", "LexicalHits", "Postings", "packed", "query_terms"]
