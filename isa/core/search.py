"""Hybrid retrieval computed in Postgres: pgvector HNSW + BM25 (or ts_rank_cd) + nearest-example votes, fused.

One statement ranks any number of "slices" (e.g. tools, prompts, resources) of one table, each with its own limit,
so a caller pays one round trip. The caller describes its table with `Corpus`; nothing here knows about MCP.
Per slice and query:

- dense arm: the `candidates` nearest rows by cosine distance through the slice's HNSW index (a partial index whose
  predicate the slice's SQL repeats literally, so the planner can match it);
- lexical arm: BM25 over a postings table (term, entry_id, per-field counts and lengths), field-weighted; or, for a
  corpus without postings, `ts_rank_cd` with an OR query;
- examples arm: the nearest stored example queries, each voting sim^p for its row;
- every candidate is then scored exactly, by one of two fusions (`Weights.fusion`):
  "zscore": (1 - w_lex) * z(cosine) + w_lex * z(bm25) + w_examples * votes, where z() standardises a retriever's
  scores over this query's candidate set (mean 0, standard deviation 1), so each arm counts by how far a row
  stands out from the other candidates rather than by its raw scale;
  "max": (1 - w_lex) * cosine + w_lex * bm25 / max_bm25 + w_examples * votes.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from psycopg import sql

from isa.core.db import DictConnection, vector_literal

Mode = Literal["hybrid", "lexical", "dense"]
Fusion = Literal["zscore", "max"]


@dataclass(frozen=True)
class Weights:
    """Fusion and BM25 parameters; defaults were chosen on the dev splits (docs/discovery.md)."""

    lexical: float = 0.3  # share of the normalised BM25 score next to cosine similarity
    examples: float = 1.0  # weight of the example votes (0: examples are ignored)
    example_power: float = 3.0  # votes are sim ** p, so near-duplicates count most
    field_a: float = 2.0  # BM25F field weights: A = name, B = description, C = extra terms
    field_b: float = 1.0
    field_c: float = 0.5
    k1: float = 1.2
    b: float = 0.75
    candidates: int = 40  # per arm; <= hnsw.ef_search (default 40) or the index returns fewer
    fusion: Fusion = "max"  # how cosine and BM25 are put on one scale (module docstring)


@dataclass(frozen=True)
class Corpus:
    """Where a table keeps what hybrid search needs."""

    table: str
    vector_column: str = "embedding"
    model_column: str = "embedding_model"
    tsv_column: str = "search_tsv"
    postings: str | None = None  # (term, entry_id, tf_a, tf_b, tf_c, len_a, len_b, len_c [, slice column])
    examples: str | None = None  # (entry_id, embedding, embedding_model [, slice column])
    text_config: str = "english"
    active_column: str | None = "is_active"  # a boolean column rows must have TRUE; None: every row counts
    # binary_quantize(embedding) of each row (varbit), readable with the slice column from one btree (0036)
    bits_column: str | None = None
    # A fixed SQL expression over postings columns that an index on (slice column, term, <it> DESC) orders by:
    # a posting's share of its term's BM25 weight, for Slice.postings_cap (never built from input).
    postings_impact: str | None = None


@dataclass(frozen=True)
class Slice:
    """One ranked list: rows of `corpus.table` matching `column = value` (+ `where`), best `limit` of them."""

    name: str
    column: str
    value: str
    limit: int
    where: sql.Composable = field(default_factory=lambda: sql.SQL("TRUE"))
    exact: bool = False  # a selective filter: rank its rows exactly instead of through the index
    # > 0 (with Corpus.bits_column): the dense arm shortlists this many rows by Hamming distance of the sign bits,
    # then ranks those by exact cosine (the HNSW index is not used).
    shortlist: int = 0
    # > 0 (with Corpus.postings_impact): the BM25 arm reads at most this many postings per query term, those of
    # highest impact; 0 reads every posting of the terms.
    postings_cap: int = 0
    # Minimum cosine similarity (SQL over the row `e`): rows below it are dropped before the limit, so a
    # request about nothing in the table gets nothing. Ignored without a query vector (lexical mode).
    floor: sql.Composable | None = None
    # The same for the nearest example query (short questions resemble each other more than a question and a
    # description do, so examples get their own, higher floor). None: examples are held to `floor`.
    example_floor: sql.Composable | None = None
    params: Mapping[str, Any] = field(default_factory=dict)  # values `where` binds by name (never inlined)
    # Arms the caller computed (a process-local index: isa/knowledge/local_index.py); the rows are still checked
    # to be the slice's (`column = value`, active, `where`) in SQL and scored by the same fusion.
    # dense_ids: a uuid[] literal; the dense arm ranks exactly these rows by cosine (instead of a shortlist or the
    # index), keeping the best `candidates` as it would.
    dense_ids: str | None = None
    # lexical_hits: (ids, scores): the lexical arm's candidates and their BM25, best first (at most
    # `lexical_candidates(slice, weights)`), instead of the postings read in SQL.
    lexical_hits: tuple[Sequence[str], Sequence[float]] | None = None


@dataclass(frozen=True)
class Bm25Stats:
    """Per-slice collection statistics (row count, mean field lengths), cached by the caller."""

    rows: int = 1
    len_a: float = 1.0
    len_b: float = 1.0
    len_c: float = 1.0


@dataclass(frozen=True)
class Query:
    text: str
    vector: Sequence[float] | None
    model: str
    dimensions: int
    mode: Mode = "hybrid"
    # Vectors of the request's clauses ("A, and B"): a row also clears the floor when it is similar enough to one
    # of them, so a request's second intent is not cut for being a smaller part of the whole. Never in the score.
    clause_vectors: tuple[Sequence[float], ...] = ()


class LruCache:
    """A small bounded mapping (query text -> embedding, ...); least recently used entries leave first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._data: OrderedDict[Hashable, Any] = OrderedDict()

    def get(self, key: Hashable) -> Any | None:
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def put(self, key: Hashable, value: Any) -> None:
        if self.size <= 0:
            return
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self.size:
            self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)


def _vec(corpus: Corpus, q: Query, alias: str) -> sql.Composable:
    return sql.SQL("{}.{}::vector({})").format(
        sql.Identifier(alias), sql.Identifier(corpus.vector_column), sql.Literal(q.dimensions)
    )


def _slice_sql(
    corpus: Corpus, q: Query, s: Slice, w: Weights, columns: Sequence[str]
) -> tuple[sql.Composable, sql.Composable]:
    """The CTEs and the final SELECT of one slice; parameters (`_slice_params`) are namespaced by the slice name."""
    p = s.name
    table, col, val = sql.Identifier(corpus.table), sql.Identifier(s.column), sql.Literal(s.value)
    model = sql.Literal(q.model)
    use_dense = q.mode != "lexical" and q.vector is not None
    use_lex = q.mode != "dense"
    use_examples = q.mode == "hybrid" and corpus.examples is not None and w.examples > 0 and q.vector is not None
    ctes: list[sql.Composable] = []
    # The slice's CTEs, named apart from the other slices' in the one statement.
    cte = {name: sql.Identifier(f"{p}_{name}") for name in ("dense", "lex", "ex", "terms", "scored", "final")}
    active = sql.SQL("e.{}").format(sql.Identifier(corpus.active_column)) if corpus.active_column else sql.SQL("TRUE")
    order = sql.SQL("{} <=> (SELECT v FROM qv)").format(_vec(corpus, q, "e"))
    # The slice's rows (table, `col = val`, active, `where`): every statement below names them the same way.
    slice_rows: dict[str, sql.Composable] = {"table": table, "col": col, "val": val, "active": active, "where": s.where}
    # What both dense arms (shortlisted by bits, or ranked directly) fill their statement with.
    dense_args: dict[str, sql.Composable] = {
        **slice_rows,
        "d": cte["dense"],
        "model_col": sql.Identifier(corpus.model_column),
        "model": model,
        "k": sql.Literal(w.candidates if not s.exact else max(w.candidates, s.limit)),
    }
    if use_dense and s.dense_ids is not None:
        ctes.append(
            sql.SQL(
                "{d} AS (SELECT e.id FROM {table} e WHERE e.id = ANY({ids}::uuid[]) AND e.{model_col} = {model}"
                " AND e.{col} = {val} AND {active} AND {where} ORDER BY ({order}) + 0 LIMIT {k})"
            ).format(**dense_args, ids=sql.Placeholder(f"{p}_dense_ids"), order=order)
        )
    elif use_dense and s.shortlist > 0 and corpus.bits_column is not None:
        # Inner SELECT: the slice's bits from the btree alone (index-only); outer: exact cosine of that shortlist.
        # Rows at the same distance are taken in id order, so the shortlist does not depend on the scan's order
        # (and a caller computing it, Slice.dense_ids, can take the same rows).
        ctes.append(
            sql.SQL(
                "{d} AS (SELECT e.id FROM {table} e WHERE e.id IN (SELECT e.id FROM {table} e"
                " WHERE e.{model_col} = {model} AND e.{col} = {val} AND {active} AND {where}"
                " ORDER BY e.{bits} <~> (SELECT b FROM qv), e.id LIMIT {r}) ORDER BY ({order}) + 0 LIMIT {k})"
            ).format(
                **dense_args,
                bits=sql.Identifier(corpus.bits_column),
                order=order,
                r=sql.Literal(max(s.shortlist, w.candidates)),
            )
        )
    elif use_dense:
        # "+ 0" keeps the planner off the index when the filter is selective enough to rank its rows exactly.
        ordering = sql.SQL("({}) + 0").format(order) if s.exact else order
        ctes.append(
            sql.SQL(
                "{d} AS (SELECT e.id FROM {table} e WHERE e.{model_col} = {model} AND e.{col} = {val} AND {active}"
                " AND {where} ORDER BY {ordering} LIMIT {k})"
            ).format(**dense_args, ordering=ordering)
        )
    if use_lex and s.lexical_hits is not None:
        ctes.append(
            sql.SQL(
                "{lex} AS (SELECT l.id, l.bm25 FROM unnest({ids}::uuid[], {scores}::float8[]) AS l(id, bm25)"
                " JOIN {table} e ON e.id = l.id WHERE e.{col} = {val} AND {active} AND {where})"
            ).format(
                **slice_rows,
                lex=cte["lex"],
                ids=sql.Placeholder(f"{p}_lex_ids"),
                scores=sql.Placeholder(f"{p}_lex_scores"),
            )
        )
    elif use_lex and corpus.postings is not None:
        # BM25 per posting = w_t * tf / (tf + k1 * (1 - b) + (k1 * b / avgdl) * dl), with the term's factor
        # w_t = idf_t * (k1 + 1) computed once per term: the arm's cost is its scan of the terms' postings, so each
        # posting costs one index tuple, a multiply-add per weighted field and one division.
        fields = _weighted_fields(w)

        def weighted(column: str) -> sql.Composable:
            # Fields of weight 0 are left out of the statement (knowledge has one field: no multiply-adds by 0).
            if not fields:
                return sql.SQL("0::float8")
            return sql.SQL(" + ").join(
                sql.SQL("{} * p1.{}").format(sql.Placeholder(f"{p}_w{f}"), sql.Identifier(f"{column}_{f}"))
                for f, _ in fields
            )

        # Per query term its df among the slice's postings (an index-only count) and its factor, once per term
        # (OFFSET 0: inlined, Postgres may re-run the count for every posting — 11 s at 2,000 chunks). Then one
        # index probe per term (LATERAL, kept by OFFSET 0: flattened into a join Postgres may scan every posting —
        # 12 of 17 ms at 10,000 tools). N is at least df, so idf stays positive while cached statistics lag
        # behind a change. Before issue #28 df came from a window count over the postings read, which sorted
        # them by term first: without it a 20,000-chunk user's lexical search takes 0.65x (docs/benchmarks.md).
        limit_postings: sql.Composable = sql.SQL("")
        if s.postings_cap > 0 and corpus.postings_impact is not None:
            # Early termination: per term only its `postings_cap` postings of highest impact (a btree on
            # (slice, term, impact DESC) serves them in order); df is still exact. A term with more postings
            # than the cap is a common, low-idf one: the postings left out add least to any row's score.
            limit_postings = sql.SQL(" ORDER BY {} DESC LIMIT {}").format(
                sql.SQL(corpus.postings_impact), sql.Literal(s.postings_cap)
            )
        ctes.append(
            sql.SQL(
                "{terms} AS (SELECT qt.term, ln(1 + (greatest({n}, d.df) - d.df + 0.5) / (d.df + 0.5)) * ({k1} + 1)"
                " AS w FROM qt CROSS JOIN LATERAL (SELECT count(*)::float8 AS df FROM {postings} c"
                " WHERE c.{col} = {val} AND c.term = qt.term) d OFFSET 0),"
                " {lex} AS (SELECT pp.entry_id AS id, sum(pp.w * pp.tf / (pp.tf + {kb0} + {kb1} * pp.dl)) AS bm25"
                " FROM {terms} t CROSS JOIN LATERAL (SELECT p1.entry_id, t.w, {tf} AS tf, {dl} AS dl"
                " FROM {postings} p1 WHERE p1.{col} = {val} AND p1.term = t.term{limit_postings} OFFSET 0) pp"
                " GROUP BY pp.entry_id ORDER BY bm25 DESC, pp.entry_id LIMIT {k})"
            ).format(
                terms=cte["terms"],
                lex=cte["lex"],
                **slice_rows,
                postings=sql.Identifier(corpus.postings),
                k=sql.Literal(lexical_candidates(s, w)),
                tf=weighted("tf"),
                dl=weighted("len"),
                limit_postings=limit_postings,
                **{k: sql.Placeholder(f"{p}_{k}") for k in ("n", "k1", "kb0", "kb1")},
            )
        )
    elif use_lex:
        ctes.append(
            sql.SQL(
                "{lex} AS (SELECT e.id, ts_rank_cd(e.{tsv}, (SELECT tq FROM qtq), 32) AS bm25 FROM {table} e"
                " WHERE e.{tsv} @@ (SELECT tq FROM qtq) AND e.{col} = {val} AND {active} AND {where}"
                " ORDER BY bm25 DESC LIMIT {k})"
            ).format(
                **slice_rows,
                lex=cte["lex"],
                tsv=sql.Identifier(corpus.tsv_column),
                k=sql.Literal(w.candidates),
            )
        )
    if use_examples:
        assert corpus.examples is not None
        ctes.append(
            sql.SQL(
                "{ex} AS (SELECT x.entry_id AS id, sum(power(greatest(1 - (x.v <=> (SELECT v FROM qv)), 0), {pw}))"
                " AS votes, max(1 - (x.v <=> (SELECT v FROM qv))) AS best"
                " FROM (SELECT e.entry_id, {xv} AS v FROM {examples} e WHERE e.{model_col} = {model}"
                " AND e.{col} = {val} ORDER BY {xorder} LIMIT {k}) x GROUP BY x.entry_id)"
            ).format(
                ex=cte["ex"],
                xv=_vec(corpus, q, "e"),
                examples=sql.Identifier(corpus.examples),
                model_col=sql.Identifier(corpus.model_column),
                **slice_rows,
                model=model,
                xorder=order,
                k=sql.Literal(w.candidates),
                pw=sql.Literal(w.example_power),
            )
        )
    arms = [cte[arm] for arm, used in (("dense", use_dense), ("lex", use_lex), ("ex", use_examples)) if used]
    if not arms:
        raise ValueError("nothing to rank with: no query vector and no lexical arm")
    cand = sql.SQL(" UNION ").join(sql.SQL("SELECT id FROM {}").format(arm) for arm in arms)
    dense_expr = (
        sql.SQL("1 - ({} <=> (SELECT v FROM qv))").format(_vec(corpus, q, "e")) if q.vector is not None else None
    )
    lex_expr = sql.SQL("coalesce(l.bm25, 0)") if use_lex else sql.SQL("0")
    vote_expr = sql.SQL("coalesce(x.votes, 0)") if use_examples else sql.SQL("0")
    joins: sql.Composable = sql.SQL("")
    if use_lex:
        joins += sql.SQL(" LEFT JOIN {} l ON l.id = e.id").format(cte["lex"])
    if use_examples:
        joins += sql.SQL(" LEFT JOIN {} x ON x.id = e.id").format(cte["ex"])
    score: sql.Composable
    if q.mode == "dense":
        score = sql.SQL("s.dense")
    elif q.mode == "lexical":
        score = sql.SQL("s.lex / greatest(max(s.lex) OVER (), 1e-9)")
    else:
        if w.fusion == "zscore":
            # Over the candidate set (the window is every row of this slice's `scored`): a retriever that gives
            # every candidate the same score (e.g. no query term matched) contributes 0, not a division by 0.
            score = sql.SQL(
                "(1 - {wl}) * (s.dense - avg(s.dense) OVER ()) / greatest(stddev_pop(s.dense) OVER (), 1e-9)"
                " + {wl} * (s.lex - avg(s.lex) OVER ()) / greatest(stddev_pop(s.lex) OVER (), 1e-9)"
                " + {wx} * s.votes"
            ).format(wx=sql.Placeholder(f"{p}_wx"), wl=sql.Placeholder(f"{p}_wl"))
        else:
            score = sql.SQL(
                "(1 - {wl}) * s.dense + {wl} * s.lex / greatest(max(s.lex) OVER (), 1e-9) + {wx} * s.votes"
            ).format(wx=sql.Placeholder(f"{p}_wx"), wl=sql.Placeholder(f"{p}_wl"))
    lex_filter = sql.SQL(" WHERE s.lex > 0") if q.mode == "lexical" else sql.SQL("")
    # Similarity: to the row itself or to the nearest question it is known to answer (an example), whichever
    # is closer. The floor compares it; kept as a column and applied last, so it never changes any score.
    best_expr = sql.SQL("coalesce(x.best, 0)") if use_examples else sql.SQL("0")
    near_expr = dense_expr
    if dense_expr is not None and q.clause_vectors:
        # The request or its closest clause, whichever is closer (reported and compared like the request's own);
        # the clauses' cosines once per candidate, in a lateral join that both uses read.
        near_expr = sql.SQL("greatest({}, cl.near)").format(dense_expr)
        joins += sql.SQL(" CROSS JOIN LATERAL (SELECT max(1 - ({} <=> k.v)) AS near FROM qc k) cl").format(
            _vec(corpus, q, "e")
        )
    similarity = sql.SQL("greatest({}, {})").format(near_expr, best_expr) if near_expr is not None else None
    keep: sql.Composable = sql.SQL("TRUE")
    if s.floor is not None and near_expr is not None:
        keep = sql.SQL("{} >= ({}) OR {} >= ({})").format(
            near_expr, s.floor, best_expr, s.example_floor if s.example_floor is not None else s.floor
        )
    out_cols = sql.SQL(", ").join(sql.SQL("e.{}").format(sql.Identifier(c)) for c in columns)
    ctes.append(
        sql.SQL(
            # MATERIALIZED: the z-score's window functions read `dense` and `lex` several times; inlined, Postgres
            # re-evaluated the scored rows per reference (cold /discover at 5,000 tools 32.6 -> 11.2 ms).
            "{scored} AS MATERIALIZED (SELECT e.id, {dense} AS dense, {lex} AS lex, {votes} AS votes,"
            " {similarity} AS similarity, {keep} AS keep FROM ({cand}) c JOIN {table} e ON e.id = c.id{joins}"
            " WHERE {active} AND {where}),"
            " {final} AS (SELECT s.id, {score} AS score, s.dense, s.lex, s.votes, s.similarity, s.keep"
            " FROM {scored} s{lex_filter})"
        ).format(
            scored=cte["scored"],
            final=cte["final"],
            dense=dense_expr or sql.SQL("0"),
            lex=lex_expr,
            votes=vote_expr,
            **slice_rows,
            cand=cand,
            joins=joins,
            similarity=similarity or sql.SQL("0"),
            keep=keep,
            score=score,
            lex_filter=lex_filter,
        )
    )
    select = sql.SQL(
        "(SELECT {name} AS slice, f.score, f.dense, f.lex, f.votes, f.similarity, {cols} FROM {final} f"
        " JOIN {table} e ON e.id = f.id WHERE f.keep ORDER BY f.score DESC, e.id LIMIT {limit})"
    ).format(
        name=sql.Literal(s.name),
        cols=out_cols,
        final=cte["final"],
        table=table,
        limit=sql.Literal(s.limit),
    )
    return sql.SQL(",\n").join(ctes), select


def lexical_candidates(s: Slice, w: Weights) -> int:
    """How many rows the BM25 postings arm of slice `s` contributes (what `Slice.lexical_hits` should hold)."""
    return w.candidates if not s.exact else max(w.candidates, s.limit) * 4


def _weighted_fields(w: Weights) -> list[tuple[str, float]]:
    """The BM25 fields (a, b, c) of non-zero weight: the others are left out of the statement."""
    return [(f, wt) for f, wt in (("a", w.field_a), ("b", w.field_b), ("c", w.field_c)) if wt != 0]


def _slice_params(corpus: Corpus, q: Query, s: Slice, w: Weights, stats: Bm25Stats) -> dict[str, Any]:
    """The values a slice's SQL binds (the statement itself depends on none of them, so it can be reused)."""
    p = s.name
    params: dict[str, Any] = dict(s.params)
    if q.mode != "dense" and corpus.postings is not None:
        # The BM25 arm's constants: N, k1, the length normalisation's two terms, the weights of fields it reads.
        avg = max(w.field_a * stats.len_a + w.field_b * stats.len_b + w.field_c * stats.len_c, 1e-6)
        params.update({f"{p}_n": float(stats.rows), f"{p}_k1": w.k1})
        params.update({f"{p}_kb0": w.k1 * (1 - w.b), f"{p}_kb1": w.k1 * w.b / avg})
        params.update({f"{p}_w{f}": wt for f, wt in _weighted_fields(w)})
    if q.mode == "hybrid":
        params.update({f"{p}_wl": w.lexical, f"{p}_wx": w.examples})
    if s.dense_ids is not None:
        params[f"{p}_dense_ids"] = s.dense_ids
    if s.lexical_hits is not None:
        params[f"{p}_lex_ids"], params[f"{p}_lex_scores"] = list(s.lexical_hits[0]), list(s.lexical_hits[1])
    return params


def hybrid_sql(
    corpus: Corpus,
    q: Query,
    slices: Sequence[Slice],
    weights: Weights,
    stats: dict[str, Bm25Stats],
    columns: Sequence[str],
) -> tuple[sql.Composed, dict[str, Any]]:
    """One statement ranking every slice; rows carry `slice`, `score`, `dense`, `lex`, `votes`, `similarity`
    (the larger of `dense` and the nearest example's cosine) and `columns`."""
    heads: list[sql.Composable] = [
        sql.SQL("qt AS (SELECT DISTINCT u.lexeme AS term FROM unnest(to_tsvector({cfg}, %(text)s)) u)").format(
            cfg=sql.Literal(corpus.text_config)
        ),
        sql.SQL(
            # The terms are lexemes already: cast, don't re-normalise (stemming a stem can change it).
            "qtq AS (SELECT coalesce(string_agg(quote_literal(term), ' | ')::tsquery, ''::tsquery) AS tq FROM qt)"
        ),
    ]
    if q.vector is not None:
        qv = "qv AS (SELECT %(qvec)s::vector({}) AS v)"
        if corpus.bits_column is not None:  # the query's sign bits, computed once
            qv = "qv AS (SELECT v, binary_quantize(v)::varbit AS b FROM (SELECT %(qvec)s::vector({}) AS v) q)"
        heads.insert(0, sql.SQL(qv).format(sql.Literal(q.dimensions)))
        if q.clause_vectors:
            qc = "qc AS (SELECT u::vector({}) AS v FROM unnest(%(qclauses)s::text[]) u)"
            heads.insert(1, sql.SQL(qc).format(sql.Literal(q.dimensions)))
    ctes: list[sql.Composable] = list(heads)
    selects: list[sql.Composable] = []
    for s in slices:
        cte_part, select_part = _slice_sql(corpus, q, s, weights, columns)
        ctes.append(cte_part)
        selects.append(select_part)
    statement = sql.SQL("WITH ") + sql.SQL(",\n").join(ctes) + sql.SQL("\n") + sql.SQL("\nUNION ALL\n").join(selects)
    return statement, hybrid_params(corpus, q, slices, weights, stats)


async def hybrid_search(
    conn: DictConnection,
    corpus: Corpus,
    q: Query,
    slices: Sequence[Slice],
    weights: Weights,
    stats: dict[str, Bm25Stats],
    columns: Sequence[str],
) -> list[dict[str, Any]]:
    """Run `hybrid_sql`; rows come back grouped by slice, best first.

    The statement's text depends on the shape of the request (corpus, slices, weights, mode), not on the query
    or the statistics, which travel as parameters; composing and rendering it cost about 1 ms of the event loop
    per cold /discover, so the rendered text is kept for slices passed again (the same objects) and only the
    parameters are built per call.
    """
    if not slices:
        return []
    # By the slices' identity: a caller that reuses its Slice objects (immutable, as is the SQL inside them) for
    # a kind of request reuses the statement; the entry holds the slices, so no other object can take their ids.
    vectors = (q.vector is None, bool(q.clause_vectors))
    shape = (corpus, q.model, q.dimensions, q.mode, vectors, weights, tuple(columns), conn.info.encoding)
    key = (*shape, *(id(s) for s in slices))
    hit = _STATEMENTS.get(key)
    if hit is not None and all(a is b for a, b in zip(hit[0], slices, strict=True)):
        statement: bytes = hit[1]
    else:
        statement = hybrid_sql(corpus, q, slices, weights, stats, columns)[0].as_bytes(conn)
        if not any(s.dense_ids is not None or s.lexical_hits is not None for s in slices):
            _STATEMENTS.put(key, (tuple(slices), statement))  # per-search candidates: never asked for again
    cur = await conn.execute(statement, hybrid_params(corpus, q, slices, weights, stats))
    return await cur.fetchall()


def hybrid_params(
    corpus: Corpus, q: Query, slices: Sequence[Slice], weights: Weights, stats: dict[str, Bm25Stats]
) -> dict[str, Any]:
    """The parameters of `hybrid_sql`'s statement (what `hybrid_sql` returns next to it)."""
    params: dict[str, Any] = {"text": q.text}
    if q.vector is not None:
        params["qvec"] = vector_literal(q.vector)
        if q.clause_vectors:
            params["qclauses"] = [vector_literal(v) for v in q.clause_vectors]
    for s in slices:
        params.update(_slice_params(corpus, q, s, weights, stats.get(s.name, Bm25Stats())))
    return params


# Rendered statements by request shape (hybrid_search); a shape is one caller's kind of request, so few exist.
_STATEMENTS = LruCache(64)
