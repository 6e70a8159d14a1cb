"""SQL for the five memory tables; every statement filters by the owner's user_id."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import sql
from psycopg.types.json import Jsonb

from isa.core.db import DictConnection, vector_literal

TABLES = {
    "factual": "factual_memories",
    "episodic": "episodic_memories",
    "semantic": "semantic_memories",
    "procedural": "procedural_memories",
    "working": "working_memories",
}
MEMORY_TYPES = tuple(TABLES)
# Per type, the columns a search hit shows besides the common ones (fixed names, never from input).
DETAIL_COLUMNS = {
    "factual": ("fact_type", "subject", "predicate", "object_value"),
    "episodic": ("episode_title", "occurred_at", "participants"),
    "semantic": ("concept_name", "concept_category", "definition"),
    "procedural": ("procedure_name", "domain", "steps"),
    "working": ("context_type", "current_step", "expires_at"),
}
# Rows that may be returned at all: expired working memories and expired facts never are.
LIVE = {
    "factual": "(t.expires_at IS NULL OR t.expires_at > now())",
    "working": "t.expires_at > now()",
}


@dataclass(frozen=True)
class Filters:
    types: tuple[str, ...] = MEMORY_TYPES
    subject: str | None = None  # factual only
    fact_type: str | None = None  # factual only
    category: str | None = None  # semantic only
    since: datetime | None = None
    until: datetime | None = None
    min_importance: float = 0.0


def search_filters(
    memory_types: Sequence[str] | None,
    subject: str | None = None,
    category: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    min_importance: float = 0.0,
) -> Filters:
    """What search_memories filters on: subject narrows to facts, category to concepts (types may end up empty)."""
    types = tuple(dict.fromkeys(memory_types)) if memory_types else MEMORY_TYPES
    if subject is not None:
        types = tuple(t for t in types if t == "factual")
    if category is not None:
        types = tuple(t for t in types if t == "semantic")
    return Filters(types, subject, None, category, since, until, min_importance)


@dataclass(frozen=True)
class Blend:
    similarity: float = 0.8
    importance: float = 0.1
    recency: float = 0.1
    half_life_days: float = 30.0


@dataclass(frozen=True)
class Ann:
    """The `candidates` memories per type nearest by distance, reordered by the blend (`search_shortlist = 0`).

    Migration 0040 dropped the HNSW graphs, so by default the user's btree and a sort answer this exactly; where a
    deployment created a graph again, it is read with pgvector >= 0.8's iterative scan:

    The blend (similarity, importance, recency) then ranks the `candidates` memories of each type nearest to the
    query, not every memory of the user: a user with fewer memories of a type than that gets exactly the old
    ranking. The iterative scan keeps reading the index until `candidates` rows of this user are found, so a
    user with 1% of a table still gets them (bounded by hnsw.max_scan_tuples, 20,000 by default).
    """

    candidates: int = 40
    ef_search: int = 100  # the scan's candidate list; >= candidates for recall (docs/benchmarks.md)


@dataclass(frozen=True)
class Bits:
    """Candidates per memory type by sign bits, re-ranked by the exact blend (migration 0036, issue #28).

    Each type reads the user's `embedding_bits`, importance and created_at from its (user_id, embedding_model)
    index alone (no heap, ~1/20 of the vector bytes) and keeps the `shortlist` rows of highest blend with the
    cosine the bits estimate, cos(pi * hamming / dims) (pgvector's `<~>`). Those rows are fetched and the
    `candidates` of highest exact blend (exact cosine, min_similarity applied) go on to the final ranking. No index
    setting is needed, and a type with at most `shortlist` rows of the user is ranked exactly.
    """

    candidates: int = 40
    shortlist: int = 300
    # True: the shortlist and the re-rank order by the blend (the shortlist with the cosine the Hamming distance
    # estimates, the re-rank with the exact one), so importance and recency choose candidates too. False: the
    # shortlist by Hamming distance and the re-rank by exact cosine alone (0036's order; for comparison).
    by_blend: bool = True


JSONB_COLUMNS = frozenset(
    {"steps", "trigger_conditions", "key_events", "outcomes", "properties", "state_data", "next_actions"}
)


def _adapt(column: str, value: Any) -> Any:
    """jsonb columns get Jsonb; Python lists elsewhere are Postgres arrays (participants, related_concepts)."""
    return Jsonb(value) if column in JSONB_COLUMNS else value


async def insert(conn: DictConnection, memory_type: str, values: dict[str, Any], model: str) -> dict[str, Any]:
    """Insert one memory row (values include user_id, content, embedding) and return id/created_at."""
    vector = values.pop("embedding")
    cols = [*values.keys(), "embedding", "embedding_model"]
    dims = len(vector)
    placeholders = [sql.Placeholder(c) for c in values] + [
        sql.SQL("{}::vector({})").format(sql.Placeholder("embedding"), sql.Literal(dims)),
        sql.Placeholder("embedding_model"),
    ]
    stmt = sql.SQL("INSERT INTO {t} ({cols}) VALUES ({vals}) RETURNING id::text, created_at").format(
        t=sql.Identifier(TABLES[memory_type]),
        cols=sql.SQL(", ").join(sql.Identifier(c) for c in cols),
        vals=sql.SQL(", ").join(placeholders),
    )
    params = {k: _adapt(k, v) for k, v in values.items()}
    params.update(embedding=vector_literal(vector), embedding_model=model)
    cur = await conn.execute(stmt, params)
    row = await cur.fetchone()
    assert row is not None
    return row


async def lock(conn: DictConnection, *key: str) -> None:
    """Serialise writers of the same key for the rest of the transaction.

    Every transaction that writes a memory table takes (user_id, memory type) first: migration 0042's triggers
    lock the type's counter row after a writer's first row and before `delete_all`'s rows, so without this lock a
    writer reinforcing a row that a concurrent forget holds would wait in a cycle (Postgres fails one of them)."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 7))", ("\x1f".join(key),))


async def find_fact(conn: DictConnection, user_id: str, subject: str, predicate: str) -> dict[str, Any] | None:
    cur = await conn.execute(
        "SELECT id::text, object_value, importance_score, confidence FROM factual_memories"
        " WHERE user_id = %s AND lower(subject) = lower(%s) AND lower(predicate) = lower(%s)"
        " ORDER BY updated_at DESC LIMIT 1",
        (user_id, subject, predicate),
    )
    return await cur.fetchone()


async def owns_session(conn: DictConnection, user_id: str, session_id: str) -> bool:
    cur = await conn.execute("SELECT 1 FROM sessions WHERE id = %s AND user_id = %s", (session_id, user_id))
    return await cur.fetchone() is not None


async def find_by_hash(conn: DictConnection, memory_type: str, user_id: str, content_hash: str) -> str | None:
    cur = await conn.execute(
        sql.SQL("SELECT id::text FROM {} WHERE user_id = %s AND content_hash = %s LIMIT 1").format(
            sql.Identifier(TABLES[memory_type])
        ),
        (user_id, content_hash),
    )
    row = await cur.fetchone()
    return None if row is None else str(row["id"])


async def update_fact(conn: DictConnection, user_id: str, fact_id: str, values: dict[str, Any], model: str) -> None:
    vector = values.pop("embedding")
    sets = [sql.SQL("{} = {}").format(sql.Identifier(c), sql.Placeholder(c)) for c in values]
    sets.append(sql.SQL("embedding = {}::vector({})").format(sql.Placeholder("embedding"), sql.Literal(len(vector))))
    sets.append(sql.SQL("embedding_model = {}").format(sql.Placeholder("embedding_model")))
    stmt = sql.SQL("UPDATE factual_memories SET {} WHERE id = %(id)s AND user_id = %(user_id)s").format(
        sql.SQL(", ").join(sets)
    )
    params = {**values, "embedding": vector_literal(vector), "embedding_model": model, "id": fact_id}
    params["user_id"] = user_id
    await conn.execute(stmt, params)


async def reinforce(conn: DictConnection, memory_type: str, user_id: str, memory_id: str, importance: float) -> None:
    """Seen again: raise importance to at least the new value and count the access."""
    await conn.execute(
        sql.SQL(
            "UPDATE {} SET importance_score = greatest(importance_score, %s), access_count = access_count + 1,"
            " last_accessed_at = now() WHERE id = %s AND user_id = %s"
        ).format(sql.Identifier(TABLES[memory_type])),
        (importance, memory_id, user_id),
    )


def search_sql(
    model: str,
    dims: int,
    filters: Filters,
    blend: Blend,
    ann: Ann | Bits | None = None,
    local: Collection[str] = (),
    generations: bool = False,
) -> sql.Composed:
    """Per-user similarity over every requested type, blended with importance and recency.

    `local` (with `Bits`): the types whose shortlist the caller computed (isa/memory/local_index.py) and passes as
    `ids_<type>` (a uuid array literal, one text parameter); their arm fetches those ids of the caller (user_id,
    model, LIVE and every filter checked here) and keeps the `candidates` of highest exact blend, as the SQL
    shortlist's arm does; with `generations` the row also carries `calibration` (search_checked).
    `generations`: every row also carries `generations` (memory_search_generations of the caller and model as
    jsonb {type: [generation, reload_generation, row_count]}) and `db_now` (epoch), read in this statement's
    snapshot; with no hit the statement returns one row whose `id` is NULL.

    Without `ann` each arm reads every one of the caller's rows through its (user_id, ...) btree and computes the
    exact cosine distance (linear in the user's memories). With `Bits` see that class. With `Ann` each arm asks
    for the user's nearest `ann.candidates` rows by distance; where the type has a partial HNSW index (0004 made
    them, 0040 dropped them; its predicate `embedding_model = <model>` is repeated literally so the planner matches
    one created again) run it where `hnsw.iterative_scan` is on (`search` does); without one the user's btree and a
    sort answer it exactly.
    """
    arms: list[sql.Composable] = []
    ctes: list[sql.Composable] = []
    calibration: list[sql.Composable] = []
    for memory_type in filters.types:
        conds = [sql.SQL("t.user_id = %(user_id)s"), sql.SQL("t.embedding_model = {}").format(sql.Literal(model))]
        if memory_type in LIVE:
            conds.append(sql.SQL(LIVE[memory_type]))
        if filters.subject is not None and memory_type == "factual":
            conds.append(sql.SQL("lower(t.subject) = lower(%(subject)s)"))
        if filters.fact_type is not None and memory_type == "factual":
            conds.append(sql.SQL("t.fact_type = %(fact_type)s"))
        if filters.category is not None and memory_type == "semantic":
            conds.append(sql.SQL("lower(t.concept_category) = lower(%(category)s)"))
        if filters.since is not None:
            conds.append(sql.SQL("t.created_at >= %(since)s"))
        if filters.until is not None:
            conds.append(sql.SQL("t.created_at < %(until)s"))
        if filters.min_importance > 0:
            conds.append(sql.SQL("t.importance_score >= %(min_importance)s"))
        details = sql.SQL(", ").join(
            sql.SQL("{}, t.{}").format(sql.Literal(c), sql.Identifier(c)) for c in DETAIL_COLUMNS[memory_type]
        )
        source = sql.SQL("{table} t WHERE {conds}")
        distance = sql.SQL("t.embedding::vector({d}) <=> (SELECT v FROM qv)")
        if isinstance(ann, Bits) and memory_type in local:
            # The given shortlist, fetched for the caller in a CTE of its own, which the calibration below also
            # reads: the estimated cosine of each row (from its stored bits, as the caller computed it) next to the
            # exact one.
            fetched = sql.Identifier(f"fetched_{memory_type}")
            ctes.append(
                sql.SQL(
                    "{fetched} AS MATERIALIZED (SELECT t.id, t.content, t.importance_score, t.created_at, {cols},"
                    " t.embedding::vector({d}) <=> (SELECT v FROM qv) AS dist,"
                    " cos(pi() * (t.embedding_bits <~> (SELECT b FROM qv)) / {fd}) AS est FROM {table} t"
                    " WHERE t.id = ANY({ids}::text::uuid[]) AND {conds})"
                ).format(
                    fetched=fetched,
                    cols=sql.SQL(", ").join(
                        sql.SQL("t.{}").format(sql.Identifier(c)) for c in DETAIL_COLUMNS[memory_type]
                    ),
                    d=sql.Literal(dims),
                    fd=sql.Literal(float(dims)),
                    table=sql.Identifier(TABLES[memory_type]),
                    ids=sql.Placeholder(f"ids_{memory_type}"),
                    conds=sql.SQL(" AND ").join(conds),
                )
            )
            calibration.append(
                sql.SQL(
                    "{mt}, (SELECT jsonb_build_array(regr_slope(1 - f.dist, f.est), count(*)) FROM {fetched} f)"
                ).format(mt=sql.Literal(memory_type), fetched=fetched)
            )
            source = sql.SQL(
                "(SELECT t.* FROM {fetched} t WHERE 1 - t.dist >= %(min_similarity)s ORDER BY {exact} DESC LIMIT {k}) t"
            )
            distance = sql.SQL("t.dist")
        elif isinstance(ann, Bits) and ann.by_blend:
            # The inner SELECT reads only the bits index (its own `t`): the blend with cos(pi * hamming / dims),
            # the cosine the sign bits estimate, and the exact importance and recency the index includes. The outer
            # one fetches the shortlist's rows and keeps the `candidates` of highest exact blend.
            source = sql.SQL(
                "(SELECT t.* FROM (SELECT t.*, t.embedding::vector({d}) <=> (SELECT v FROM qv) AS dist FROM {table} t"
                " WHERE t.user_id = %(user_id)s AND t.id IN (SELECT t.id FROM {table} t WHERE {conds}"
                " ORDER BY {estimated} DESC LIMIT {r})) t WHERE 1 - t.dist >= %(min_similarity)s"
                " ORDER BY {exact} DESC LIMIT {k}) t"
            )
            distance = sql.SQL("t.dist")
        elif isinstance(ann, Bits):
            # The inner SELECT reads only the bits index (its own `t`); the outer one fetches the shortlist's rows.
            source = sql.SQL(
                "(SELECT t.*, t.embedding::vector({d}) <=> (SELECT v FROM qv) AS dist FROM {table} t"
                " WHERE t.user_id = %(user_id)s AND t.id IN (SELECT t.id FROM {table} t WHERE {conds}"
                " ORDER BY bit_count(t.embedding_bits # (SELECT b FROM qv)) LIMIT {r}) ORDER BY dist LIMIT {k}) t"
            )
            distance = sql.SQL("t.dist")
        elif ann is not None:
            # The order-by argument must be a plain parameter for the index to serve it.
            source = sql.SQL(
                "(SELECT t.*, t.embedding::vector({d}) <=> %(qvec)s::vector({d}) AS dist FROM {table} t"
                " WHERE {conds} ORDER BY t.embedding::vector({d}) <=> %(qvec)s::vector({d}) LIMIT {k}) t"
            )
            distance = sql.SQL("t.dist")
        arms.append(
            sql.SQL(
                "SELECT {mt} AS memory_type, t.id::text AS id, t.content, t.importance_score, t.created_at,"
                " 1 - ({distance}) AS similarity, jsonb_build_object({details}) AS details FROM {source}"
            ).format(
                distance=distance.format(d=sql.Literal(dims)),
                source=source.format(
                    d=sql.Literal(dims),
                    table=sql.Identifier(TABLES[memory_type]),
                    conds=sql.SQL(" AND ").join(conds),
                    k=sql.Literal(ann.candidates if ann else 0),
                    r=sql.Literal(ann.shortlist if isinstance(ann, Bits) else 0),
                    estimated=_blend(
                        blend,
                        sql.SQL("cos(pi() * (t.embedding_bits <~> (SELECT b FROM qv)) / {})").format(
                            sql.Literal(float(dims))
                        ),
                    ),
                    exact=_blend(blend, sql.SQL("1 - t.dist")),
                    fetched=sql.Identifier(f"fetched_{memory_type}"),
                ),
                mt=sql.Literal(memory_type),
                d=sql.Literal(dims),
                details=details,
            )
        )
    ranked: sql.Composable = sql.SQL(
        "SELECT h.*, {score} AS score"
        " FROM hits h WHERE h.similarity >= %(min_similarity)s ORDER BY score DESC, h.id LIMIT %(limit)s"
    ).format(score=_blend(blend, sql.SQL("h.similarity"), "h"))
    if generations:
        ranked = sql.SQL(
            "SELECT r.*, g.generations, g.db_now, {calibration} AS calibration FROM (SELECT"
            " coalesce(jsonb_object_agg(s.memory_type, jsonb_build_array(s.generation, s.reload_generation,"
            " s.row_count)), '{{}}') AS generations, date_part('epoch', now()) AS db_now"
            " FROM memory_search_generations s WHERE s.user_id = %(user_id)s AND s.embedding_model = {model}) g"
            " LEFT JOIN LATERAL ({ranked}) r ON true ORDER BY r.score DESC, r.id"
        ).format(
            model=sql.Literal(model),
            ranked=ranked,
            calibration=sql.SQL("jsonb_build_object({})").format(sql.SQL(", ").join(calibration)),
        )
    return sql.SQL(
        "WITH qv AS (SELECT v, binary_quantize(v)::varbit AS b FROM (SELECT %(qvec)s::vector({d}) AS v) q),"
        "{ctes} hits AS MATERIALIZED ({arms}) {ranked}"
    ).format(
        d=sql.Literal(dims),
        ctes=sql.SQL("").join(sql.SQL(" {},").format(c) for c in ctes),
        arms=sql.SQL(" UNION ALL ").join(arms),
        ranked=ranked,
    )


async def generations(conn: DictConnection, user_id: str, model: str) -> dict[str, list[int]]:
    """memory_search_generations of the user and model: {type: [generation, reload_generation, row_count]}
    (written by migration 0042's triggers only)."""
    cur = await conn.execute(
        "SELECT memory_type, generation, reload_generation, row_count FROM memory_search_generations"
        " WHERE user_id = %s AND embedding_model = %s",
        (user_id, model),
    )
    return {
        str(r["memory_type"]): [int(r["generation"]), int(r["reload_generation"]), int(r["row_count"])]
        for r in await cur.fetchall()
    }


async def shortlist_rows(
    conn: DictConnection,
    memory_type: str,
    user_id: str,
    model: str,
    since: float | None,
    vectors: bool = False,
    updated: bool = False,
) -> dict[str, Any] | None:
    """What the local shortlist reads of one type, in one statement (one snapshot) with its counter row: the
    counter's generation, reload_generation and row_count, and the rows (all, or those created at or after `since`,
    epoch) as packed big-endian columns — `ids` (16 bytes each), `bits` (varbit_send: a 4-byte length, then the
    bits), `importance`, `created`, `expires` (float8; infinity without expiry), with `vectors` `vectors`
    (vector_send of each embedding), with `updated` `updated` (updated_at, float8 epoch).
    None when the user has no row of that type and model."""
    expires = "t.expires_at" if memory_type in LIVE else "NULL::timestamptz"
    cur = await conn.execute(
        sql.SQL(
            "SELECT g.generation, g.reload_generation, g.row_count, r.* FROM memory_search_generations g"
            " CROSS JOIN LATERAL (SELECT count(*) AS n, string_agg(uuid_send(t.id), ''::bytea) AS ids,"
            " string_agg(varbit_send(t.embedding_bits), ''::bytea) AS bits,"
            " string_agg(float8send(t.importance_score::float8), ''::bytea) AS importance,"
            " string_agg(float8send(date_part('epoch', t.created_at)), ''::bytea) AS created,"
            " string_agg(float8send(coalesce(date_part('epoch', {expires}), 'infinity')), ''::bytea)"
            " AS expires{vectors}{updated}"
            " FROM {table} t WHERE t.user_id = g.user_id AND t.embedding_model = g.embedding_model"
            " AND t.embedding_bits IS NOT NULL{since}) r"
            " WHERE g.user_id = %(user_id)s AND g.embedding_model = %(model)s AND g.memory_type = %(memory_type)s"
        ).format(
            table=sql.Identifier(TABLES[memory_type]),
            expires=sql.SQL(expires),
            vectors=sql.SQL(", string_agg(vector_send(t.embedding), ''::bytea) AS vectors" if vectors else ""),
            updated=sql.SQL(
                ", string_agg(float8send(date_part('epoch', t.updated_at)), ''::bytea) AS updated" if updated else ""
            ),
            since=sql.SQL(" AND t.created_at >= to_timestamp(%(since)s)" if since is not None else ""),
        ),
        {"user_id": user_id, "model": model, "memory_type": memory_type, "since": since},
        binary=True,  # bytea as bytes: in text each byte travels as two hex digits (3x faster for vectors)
    )
    return await cur.fetchone()


async def vectors_of(conn: DictConnection, memory_type: str, user_id: str, ids: str) -> dict[str, Any] | None:
    """The caller's rows of these ids (a uuid array literal) as packed columns: `ids` (uuid_send) and `vectors`
    (vector_send), in one order; rows that are gone are left out."""
    cur = await conn.execute(
        sql.SQL(
            "SELECT count(*) AS n, string_agg(uuid_send(t.id), ''::bytea ORDER BY t.id) AS ids,"
            " string_agg(vector_send(t.embedding), ''::bytea ORDER BY t.id) AS vectors FROM {table} t"
            " WHERE t.user_id = %(user_id)s AND t.id = ANY(%(ids)s::text::uuid[])"
        ).format(table=sql.Identifier(TABLES[memory_type])),
        {"user_id": user_id, "ids": ids},
        binary=True,
    )
    return await cur.fetchone()


def _blend(blend: Blend, similarity: sql.Composable, alias: str = "t") -> sql.Composed:
    """The search score of a row of `alias` with this similarity expression (the one formula search ranks by).

    date_part, not extract: extract returns numeric, and numeric exp costs microseconds per row."""
    return sql.SQL(
        "{ws} * ({sim}) + {wi} * {a}.importance_score + {wr} * exp(-date_part('epoch', now() - {a}.created_at)"
        " / 86400.0 / {hl})"
    ).format(
        sim=similarity,
        a=sql.Identifier(alias),
        ws=sql.Literal(blend.similarity),
        wi=sql.Literal(blend.importance),
        wr=sql.Literal(blend.recency),
        hl=sql.Literal(blend.half_life_days / 0.6931471805599453),  # half-life -> e-folding time
    )


def search_params(
    user_id: str, vector: list[float], filters: Filters, limit: int, min_similarity: float
) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "qvec": vector_literal(vector),
        "subject": filters.subject,
        "fact_type": filters.fact_type,
        "category": filters.category,
        "since": filters.since,
        "until": filters.until,
        "min_importance": filters.min_importance,
        "min_similarity": min_similarity,
        "limit": limit,
    }


@dataclass(frozen=True)
class Search:
    """One memory search as the store runs it: the caller, the query vector and its model, what and how to rank."""

    user_id: str
    vector: list[float]
    model: str
    filters: Filters
    blend: Blend
    limit: int
    min_similarity: float = -1.0

    def params(self) -> dict[str, Any]:
        return search_params(self.user_id, self.vector, self.filters, self.limit, self.min_similarity)


async def search(conn: DictConnection, q: Search, ann: Ann | Bits | None = None) -> list[dict[str, Any]]:
    stmt = search_sql(q.model, len(q.vector), q.filters, q.blend, ann)
    params = q.params()
    if not isinstance(ann, Ann):
        cur = await conn.execute(stmt, params)
        return await cur.fetchall()
    async with conn.transaction():
        await conn.execute(ANN_SETTINGS, (str(ann.ef_search),))
        cur = await conn.execute(stmt, params)
        return await cur.fetchall()


async def search_checked(
    conn: DictConnection, q: Search, bits: Bits, shortlists: dict[str, str]
) -> tuple[list[dict[str, Any]], dict[str, list[int]], float, dict[str, list[float | None]]]:
    """The Bits search with the given types' shortlists computed by the caller (uuid array literals) plus, read
    in the same statement (see search_sql): the caller's memory_search_generations, the database's clock, and per
    given type [the least-squares slope of the exact cosine on the one the bits estimate, over the fetched shortlist
    (None below two rows), the rows fetched]."""
    stmt = search_sql(q.model, len(q.vector), q.filters, q.blend, bits, frozenset(shortlists), generations=True)
    params = q.params()
    params.update({f"ids_{t}": ids for t, ids in shortlists.items()})
    cur = await conn.execute(stmt, params)
    rows = await cur.fetchall()
    gens: dict[str, list[int]] = dict(rows[0]["generations"])
    db_now = float(rows[0]["db_now"])
    calibration: dict[str, list[float | None]] = dict(rows[0]["calibration"])
    extra = ("generations", "db_now", "calibration")
    hits = [{k: v for k, v in r.items() if k not in extra} for r in rows if r["id"] is not None]
    return hits, gens, db_now, calibration


# For this transaction only (set_config(..., true) = SET LOCAL): keep scanning the HNSW graph until enough rows
# pass the user filter (pgvector >= 0.8; `isa doctor` refuses older), in the index's approximate order.
ANN_SETTINGS = "SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true), set_config('hnsw.ef_search', %s, true)"


async def list_rows(
    conn: DictConnection, memory_type: str, user_id: str, where: str, params: dict[str, Any], limit: int
) -> list[dict[str, Any]]:
    """Newest rows of one type for the user; `where` is fixed text chosen by the caller (never input)."""
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in DETAIL_COLUMNS[memory_type])
    stmt = sql.SQL(
        "SELECT id::text, content, importance_score, created_at, {cols} FROM {t} t"
        " WHERE t.user_id = %(user_id)s AND {live} AND {where} ORDER BY t.created_at DESC LIMIT %(limit)s"
    ).format(
        cols=cols,
        t=sql.Identifier(TABLES[memory_type]),
        live=sql.SQL(LIVE.get(memory_type, "TRUE")),
        where=sql.SQL(where),
    )
    cur = await conn.execute(stmt, {**params, "user_id": user_id, "limit": limit})
    return await cur.fetchall()


async def statistics(conn: DictConnection, user_id: str) -> dict[str, Any]:
    parts: list[sql.Composable] = [
        sql.SQL("(SELECT count(*) FROM {t} t WHERE t.user_id = %(u)s AND {live}) AS {name}").format(
            t=sql.Identifier(table),
            live=sql.SQL(LIVE.get(mt, "TRUE")),
            name=sql.Identifier(mt),
        )
        for mt, table in TABLES.items()
    ]
    parts.append(sql.SQL("(SELECT count(*) FROM session_messages WHERE user_id = %(u)s) AS session_messages"))
    parts.append(sql.SQL("(SELECT count(*) FROM sessions WHERE user_id = %(u)s) AS sessions"))
    cur = await conn.execute(sql.SQL("SELECT ") + sql.SQL(", ").join(parts), {"u": user_id})
    row = await cur.fetchone()
    return dict(row or {})


async def log_extraction(
    conn: DictConnection,
    user_id: str,
    *,
    session_id: str | None,
    source_hash: str,
    method: str,
    model: str | None,
    memory_types: list[str],
    extracted: list[dict[str, Any]],
    created: int,
    error: str | None,
    ms: int,
) -> None:
    """One memory_extraction_logs row: how the text was extracted (llm / rules / rules_fallback) and what came out."""
    status = "partial" if method == "rules_fallback" else "success"
    await conn.execute(
        "INSERT INTO memory_extraction_logs (user_id, session_id, source_content_hash, extraction_method, model_name,"
        " memory_types, extracted_memories, memories_created, status, error_message, processing_time_ms)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (user_id, session_id, source_hash, method, model, memory_types, Jsonb(extracted), created, status, error, ms),
    )


def _counts_sql() -> sql.Composed:
    return sql.SQL(", ").join(
        sql.SQL("(SELECT count(*) FROM {t} t WHERE t.user_id = %(u)s AND {live})").format(
            t=sql.Identifier(table), live=sql.SQL(LIVE.get(mt, "TRUE"))
        )
        for mt, table in TABLES.items()
    )


_COUNT_COLUMNS = sql.SQL(", ").join(sql.Identifier(f"{mt}_count") for mt in TABLES)


async def bump_statistics(
    conn: DictConnection, user_id: str, *, created: int = 0, accessed: int = 0, extractions: int = 0
) -> None:
    """Today's memory_statistics row: live counts per type (recounted now) and the activity counters added."""
    stmt = sql.SQL(
        "INSERT INTO memory_statistics (user_id, period_type, period_start, {cols}, memories_created,"
        " memories_accessed, extractions) SELECT %(u)s, 'day', current_date, {counts}, %(c)s, %(a)s, %(e)s"
        " ON CONFLICT (user_id, period_type, period_start) DO UPDATE SET {sets},"
        " memories_created = memory_statistics.memories_created + EXCLUDED.memories_created,"
        " memories_accessed = memory_statistics.memories_accessed + EXCLUDED.memories_accessed,"
        " extractions = memory_statistics.extractions + EXCLUDED.extractions"
    ).format(
        cols=_COUNT_COLUMNS,
        counts=_counts_sql(),
        sets=sql.SQL(", ").join(sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(f"{mt}_count")) for mt in TABLES),
    )
    await conn.execute(stmt, {"u": user_id, "c": created, "a": accessed, "e": extractions})


async def count_search(conn: DictConnection, user_id: str) -> None:
    """searches + 1 on today's row (the first search of a day creates the row with fresh counts)."""
    cur = await conn.execute(
        "UPDATE memory_statistics SET searches = searches + 1"
        " WHERE user_id = %s AND period_type = 'day' AND period_start = current_date",
        (user_id,),
    )
    if cur.rowcount == 0:
        await bump_statistics(conn, user_id)
        await conn.execute(
            "UPDATE memory_statistics SET searches = searches + 1"
            " WHERE user_id = %s AND period_type = 'day' AND period_start = current_date",
            (user_id,),
        )


async def activity_today(conn: DictConnection, user_id: str) -> dict[str, Any] | None:
    cur = await conn.execute(
        "SELECT period_start, memories_created, memories_accessed, searches, extractions FROM memory_statistics"
        " WHERE user_id = %s AND period_type = 'day' AND period_start = current_date",
        (user_id,),
    )
    return await cur.fetchone()


async def link_fact(conn: DictConnection, user_id: str, fact_id: str, subject: str, object_value: str) -> int:
    """Associate a fact with the user's facts about the same (non-user) subject, or whose subject is its object.

    ("user", sister_name, "Lena") and ("Lena", lives_in, "Berlin") are linked as `mentions`; two facts about
    "Acme Corp" as `same_subject`. Bounded to 20 links per write.
    """
    cur = await conn.execute(
        "INSERT INTO memory_associations (user_id, source_memory_type, source_memory_id, target_memory_type,"
        " target_memory_id, association_type, strength, auto_discovered)"
        " SELECT %(u)s, 'factual', %(id)s, 'factual', f.id,"
        " CASE WHEN lower(f.subject) = lower(%(s)s) THEN 'same_subject' ELSE 'mentions' END, 0.5, true"
        " FROM factual_memories f WHERE f.user_id = %(u)s AND f.id <> %(id)s"
        " AND ((lower(f.subject) = lower(%(s)s) AND lower(%(s)s) <> 'user')"
        "   OR lower(f.subject) = lower(%(o)s) OR (lower(f.object_value) = lower(%(s)s) AND lower(%(s)s) <> 'user'))"
        " ORDER BY f.updated_at DESC LIMIT 20 ON CONFLICT DO NOTHING",
        {"u": user_id, "id": fact_id, "s": subject, "o": object_value},
    )
    return cur.rowcount


async def session_for_summary(conn: DictConnection, user_id: str, session_id: str) -> dict[str, Any] | None:
    """The session's message count and the count at its last summary (locked until the transaction ends)."""
    cur = await conn.execute(
        "SELECT s.message_count, m.total_messages AS summarised FROM sessions s"
        " LEFT JOIN session_memories m ON m.session_id = s.id AND m.user_id = s.user_id"
        " WHERE s.id = %s AND s.user_id = %s FOR UPDATE OF s",
        (session_id, user_id),
    )
    return await cur.fetchone()


async def user_messages(conn: DictConnection, user_id: str, session_id: str, limit: int) -> list[str]:
    cur = await conn.execute(
        "SELECT content FROM (SELECT content, seq FROM session_messages WHERE session_id = %s AND user_id = %s"
        " AND role = 'user' ORDER BY seq DESC LIMIT %s) m ORDER BY seq",
        (session_id, user_id, limit),
    )
    return [str(r["content"]) for r in await cur.fetchall()]


async def save_summary(
    conn: DictConnection, user_id: str, session_id: str, total: int, summary: dict[str, Any]
) -> None:
    await conn.execute(
        "INSERT INTO session_memories (session_id, user_id, conversation_summary, key_decisions, ongoing_tasks,"
        " important_facts, total_messages, messages_since_last_summary, last_summary_at)"
        " VALUES (%(s)s, %(u)s, %(text)s, %(d)s, %(t)s, %(f)s, %(n)s, 0, now())"
        " ON CONFLICT (session_id) DO UPDATE SET conversation_summary = EXCLUDED.conversation_summary,"
        " key_decisions = EXCLUDED.key_decisions, ongoing_tasks = EXCLUDED.ongoing_tasks,"
        " important_facts = EXCLUDED.important_facts, total_messages = EXCLUDED.total_messages,"
        " messages_since_last_summary = 0, last_summary_at = now()"
        " WHERE session_memories.user_id = EXCLUDED.user_id",
        {
            "s": session_id,
            "u": user_id,
            "text": summary["summary"],
            "d": Jsonb(summary["key_decisions"]),
            "t": Jsonb(summary["ongoing_tasks"]),
            "f": Jsonb(summary["important_facts"]),
            "n": total,
        },
    )


async def extend_working(conn: DictConnection, user_id: str, memory_id: str, expires_at: Any) -> None:
    """The same task again: a working memory's TTL restarts (never shortens)."""
    await conn.execute(
        "UPDATE working_memories SET expires_at = greatest(expires_at, %s) WHERE id = %s AND user_id = %s",
        (expires_at, memory_id, user_id),
    )


async def session_summary(conn: DictConnection, user_id: str, session_id: str) -> dict[str, Any] | None:
    cur = await conn.execute(
        "SELECT conversation_summary, key_decisions, ongoing_tasks, important_facts, last_summary_at"
        " FROM session_memories WHERE session_id = %s AND user_id = %s",
        (session_id, user_id),
    )
    return await cur.fetchone()


async def delete_all(conn: DictConnection, user_id: str, memory_type: str) -> int:
    """Delete every memory of one type of the user; the number deleted."""
    cur = await conn.execute(
        sql.SQL("DELETE FROM {} WHERE user_id = %s").format(sql.Identifier(TABLES[memory_type])), (user_id,)
    )
    return cur.rowcount
