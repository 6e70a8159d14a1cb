"""Data analytics for the calling user: their files (or a URL) become tables, questions become checked SQL.

Ingestion: source -> local temp copy -> DuckDB streams it to Parquet -> the Parquet goes to the user's storage
(`users/{user}/analytics/...`) -> table and column metadata (names, types, row count, samples) go to Postgres and,
embedded, to db_meta_embedding. Any mcp node can then query the table: it copies the Parquet object to a local
cache once and opens a locked-down DuckDB over it.

Questions: metadata search picks the relevant tables -> the model node writes one SQL query (as the user,
billed) -> sqlglot checks it -> DuckDB runs it with row, time and memory caps -> one repair round when DuckDB
rejects it -> a chart when the columns suit one, returned as PNG and stored in the user's files.
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import math
import os
import re
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import InitVar, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import anyio
import duckdb

from isa.analytics import charts, engine, sources, store
from isa.analytics.engine import IngestFailed, Limits, QueryFailed, TableFile
from isa.analytics.settings import AnalyticsSettings
from isa.analytics.sqlcheck import CheckedSql, UnsafeSql, check_sql
from isa.auth.principal import Principal
from isa.core.db import Database
from isa.core.egress import EgressPolicy
from isa.core.embeddings import Embedder
from isa.core.errors import ApiError
from isa.core.logging import get_logger
from isa.core.storage import Storage, StorageError
from isa.files.content import user_segment
from isa.files.multipart import FilePart
from isa.files.service import FilesService
from isa.llm.client import ModelClient, ModelUnavailable

log = get_logger(__name__)

NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
DEFAULT_DATABASE = "default"
_SQL_BLOCK = re.compile(r"```(?:sql|duckdb)?\s*(.*?)```", re.S | re.I)
SYSTEM_PROMPT = (
    "You write exactly one DuckDB SQL query that answers the user's question over their tables. Use only the "
    "tables and columns listed, by their bare names. Only a read-only SELECT (CTEs allowed); no DDL, no file or "
    "network functions, no second statement. Prefer readable column aliases; order results meaningfully. "
    "Answer with the SQL only, in one ```sql block."
)


def model_needed() -> ApiError:
    return ApiError(
        503,
        "model_not_configured",
        "answering questions in plain language needs a language model, and none is configured on this node"
        " (services.model_url and isa tokens); ingestion, search and listing still work",
    )


@dataclass
class Answer:
    data: dict[str, Any]
    png: bytes | None


def _check_name(value: str | None, what: str, default: str | None = None) -> str:
    name = (value or default or "").strip().lower()
    if not NAME.fullmatch(name):
        raise ApiError(
            422, f"invalid_{what}", f"{what} must be 1-63 of a-z, 0-9 and _, starting with a letter (got {value!r})"
        )
    return name


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, dt.date | dt.datetime | dt.time):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)


def _words(name: str) -> str:
    return name.replace("_", " ")


def extract_sql(text: str) -> str:
    """The SQL inside the model's answer: the first ```sql block, else the whole text."""
    match = _SQL_BLOCK.search(text)
    return (match.group(1) if match else text).strip().rstrip(";").strip()


def _table_out(row: store.TableRow) -> dict[str, Any]:
    return {
        "database_name": row.database_name,
        "table_name": row.table_name,
        "rows": row.row_count,
        "columns": row.columns,
        "description": row.description,
        "source": {"kind": row.source_kind, "ref": row.source_ref, "type": row.source_type},
        "size_bytes": row.size_bytes,
        "updated_at": row.updated_at.isoformat(),
    }


@dataclass(eq=False)
class AnalyticsService:
    db: Database
    storage: Storage
    files: FilesService
    embedder: Embedder
    settings: AnalyticsSettings
    model: ModelClient | None
    work_dir: InitVar[Path]
    policy: EgressPolicy = field(init=False)
    limits: Limits = field(init=False)
    tmp_dir: Path = field(init=False)
    cache_dir: Path = field(init=False)

    def __post_init__(self, work_dir: Path) -> None:
        self.policy = EgressPolicy(self.settings.allow_hosts, self.settings.allow_cidrs)
        self.limits = Limits(self.settings.memory_limit, self.settings.threads)
        self.tmp_dir = work_dir / "tmp"
        self.cache_dir = work_dir / "cache"
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self.cache_dir.mkdir(parents=True, exist_ok=True)

    # ---- ingestion

    async def ingest(
        self,
        user_id: str,
        source_path: str,
        source_type: str | None,
        database_name: str | None,
        table_name: str | None = None,
    ) -> dict[str, Any]:
        database = _check_name(database_name, "database_name", DEFAULT_DATABASE)
        wanted_table = _check_name(table_name, "table_name") if table_name else None
        ref = source_path.strip()
        if not ref:
            raise sources.invalid_source("source_path is empty")
        with tempfile.TemporaryDirectory(dir=self.tmp_dir) as tmp:
            work = Path(tmp)
            if sources.is_url(ref):
                src = await sources.from_url(
                    ref,
                    self.policy,
                    source_type,
                    work / "source",
                    min(self.settings.max_url_bytes, self.settings.max_source_bytes),
                    self.settings.url_timeout_seconds,
                )
            else:
                src = await sources.from_file(
                    self.files, user_id, ref, source_type, work / "source", self.settings.max_source_bytes
                )
            try:
                tables = await anyio.to_thread.run_sync(
                    lambda: engine.to_parquet(
                        src.path,
                        src.source_type,
                        work,
                        self.limits,
                        self.settings.max_columns,
                        self.settings.sample_values,
                        self.settings.ingest_timeout_seconds,
                    )
                )
            except IngestFailed as exc:
                raise ApiError(422, "unreadable_source", str(exc)) from None
            stem = wanted_table or PurePosixPath(src.name).stem
            used: set[str] = set()
            out = []
            for table in tables:
                base = f"{stem}_{table.part}" if table.part and len(tables) > 1 else stem
                name = engine.safe_identifier(base, used, fallback="t")
                out.append(await self._store_table(user_id, database, name, src, table))
        log.info("analytics_ingested", database=database, tables=len(out), source_kind=src.kind)
        return {
            "database_name": database,
            "source": {"kind": src.kind, "ref": src.ref, "type": src.source_type, "name": src.name},
            "tables": out,
            "message": "; ".join(
                f"table {t['table_name']}: {t['rows']} rows, {len(t['columns'])} columns" for t in out
            ),
        }

    async def _store_table(
        self, user_id: str, database: str, table: str, src: sources.Source, made: TableFile
    ) -> dict[str, Any]:
        columns = [
            {
                "name": c.name,
                "type": c.type,
                "kind": c.kind,
                "distinct": min(c.distinct, made.rows),
                "nulls": c.nulls,
                "samples": list(c.samples),
            }
            for c in made.columns
        ]
        names = ", ".join(c.name for c in made.columns[:30])
        description = f"{table}: {made.rows} rows from {src.name} ({src.source_type}); columns: {names}"
        entities = await self._entities(table, made, description)
        key = f"users/{user_segment(user_id)}/analytics/{database}/{table}-{uuid.uuid4().hex[:12]}.parquet"
        size = made.path.stat().st_size
        try:
            await self.storage.put_stream(
                key, _chunks(made.path), content_type="application/octet-stream", max_bytes=size
            )
        except (StorageError, OSError):
            raise ApiError(502, "storage_unavailable", "file storage is not reachable; try again") from None
        old: store.TableRow | None = None
        try:
            async with self.db.transaction() as conn:
                if not await store.lock_user(conn, user_id):
                    raise ApiError(404, "not_found", "no such user")
                old = await store.get_table(conn, user_id, database, table)
                if old is None and await store.count_tables(conn, user_id) >= self.settings.max_tables_per_user:
                    raise ApiError(
                        403,
                        "quota_exceeded",
                        f"you have {self.settings.max_tables_per_user} tables, the most allowed; drop one first",
                    )
                row = await store.upsert_table(
                    conn,
                    user_id,
                    database_name=database,
                    table_name=table,
                    source_kind=src.kind,
                    source_ref=src.ref,
                    source_type=src.source_type,
                    storage_key=key,
                    size_bytes=size,
                    row_count=made.rows,
                    columns=columns,
                    description=description,
                )
                await store.delete_meta(conn, user_id, database, table)
                await store.insert_meta(conn, user_id, database, self.embedder.model_name, entities)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._delete_object(key)
            raise
        if old is not None:  # replaced: the old Parquet is no longer referenced
            await self._delete_object(old.storage_key)
        return _table_out(row)

    async def _entities(self, table: str, made: TableFile, description: str) -> list[store.MetaEntity]:
        texts = [f"table {table} ({_words(table)}): {description}"]
        search = [f"{_words(table)} " + " ".join(_words(c.name) for c in made.columns)]
        for c in made.columns:
            samples = ", ".join(c.samples[:5])
            texts.append(f"column {c.name} ({_words(c.name)}) of table {table}, {c.kind} {c.type}; e.g. {samples}")
            search.append(f"{_words(c.name)} {_words(table)} {samples}")
        vectors = await self.embedder.embed(texts)
        entities = [store.MetaEntity("table", table, table, texts[0], search[0], {"rows": made.rows}, vectors[0])]
        for i, c in enumerate(made.columns, start=1):
            meta = {"table": table, "type": c.type, "kind": c.kind, "samples": list(c.samples)}
            entities.append(
                store.MetaEntity("column", c.name, f"{table}.{c.name}", texts[i], search[i], meta, vectors[i])
            )
        return entities

    async def _delete_object(self, key: str) -> None:
        try:
            await self.storage.delete(key)
        except (StorageError, OSError) as exc:
            log.warning("analytics_object_delete_failed", error=type(exc).__name__)

    # ---- catalogue

    async def list_datasets(self, user_id: str, database_name: str | None) -> dict[str, Any]:
        database = _check_name(database_name, "database_name") if database_name else None
        async with self.db.connection() as conn:
            rows = await store.list_tables(conn, user_id, database)
        return {"tables": [_table_out(r) for r in rows], "count": len(rows)}

    async def drop(self, user_id: str, database_name: str, table_name: str | None) -> dict[str, Any]:
        database = _check_name(database_name, "database_name")
        table = _check_name(table_name, "table_name") if table_name else None
        async with self.db.transaction() as conn:
            keys = await store.delete_tables(conn, user_id, database, table)
        if not keys:
            what = f"table {table} in database {database}" if table else f"database {database}"
            raise ApiError(404, "not_found", f"no {what} among your data")
        for key in keys:
            await self._delete_object(key)
        log.info("analytics_dropped", database=database, tables=len(keys))
        return {"database_name": database, "table_name": table, "dropped_tables": len(keys)}

    async def search(self, user_id: str, query: str, database_name: str | None, limit: int) -> dict[str, Any]:
        database = _check_name(database_name, "database_name") if database_name else None
        hits = await self._search(user_id, query, database, limit)
        results = [
            {
                "database_name": h["database_source"],
                "type": h["entity_type"],
                "name": h["entity_full_name"],
                "description": h["content"],
                "score": round(float(h["score"]), 4),
            }
            for h in hits
        ]
        return {"query": query, "results": results, "count": len(results)}

    async def _search(self, user_id: str, query: str, database: str | None, limit: int) -> list[dict[str, Any]]:
        vector = (await self.embedder.embed([query]))[0]
        async with self.db.connection() as conn:
            return await store.search_meta(
                conn,
                user_id,
                query=query,
                vector=vector,
                model=self.embedder.model_name,
                dimensions=self.embedder.dimensions,
                database_name=database,
                limit=limit,
                lexical_weight=self.settings.lexical_weight,
            )

    async def status(self, user_id: str) -> dict[str, Any]:
        async with self.db.connection() as conn:
            rows = await store.list_tables(conn, user_id)
            meta = await store.meta_counts(conn, user_id)
        s = self.settings
        return {
            "engine": f"duckdb {duckdb.__version__}",
            "model_configured": self.model is not None,
            "can": {
                "ingest": True,
                "search": True,
                "query_with_language": self.model is not None,
            },
            "databases": sorted({r.database_name for r in rows}),
            "tables": len(rows),
            "rows": sum(r.row_count for r in rows),
            "metadata_entities": meta,
            "limits": {
                "max_rows": s.max_rows,
                "query_timeout_seconds": s.query_timeout_seconds,
                "memory_limit": s.memory_limit,
                "max_source_bytes": s.max_source_bytes,
                "max_tables": s.max_tables_per_user,
            },
            "source_types": list(sources.SOURCE_TYPES),
        }

    # ---- questions

    async def ask(self, principal: Principal, question: str, database_name: str | None) -> Answer:
        if self.model is None:
            raise model_needed()
        user_id = principal.user_id
        database = _check_name(database_name, "database_name") if database_name else None
        hits = await self._search(user_id, question, database, self.settings.link_top_k)
        if not hits:
            where = f" in database {database}" if database else ""
            raise ApiError(404, "no_data", f"you have no ingested tables{where}; ingest a file first")
        database = database or str(hits[0]["database_source"])
        async with self.db.connection() as conn:
            tables = await store.list_tables(conn, user_id, database)
        by_name = {t.table_name: t for t in tables}
        linked = list(dict.fromkeys(self._table_of(h) for h in hits if h["database_source"] == database))
        relevant = [by_name[n] for n in linked if n in by_name] or tables[:10]
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": f"Tables:\n{self._schema_text(relevant)}\n\nQuestion: {question}"},
        ]
        checked, result, repaired = await self._generate_and_run(principal, messages, by_name)
        return await self._answer(
            user_id, question, database, checked, result, repaired, [t.table_name for t in relevant]
        )

    @staticmethod
    def _table_of(hit: dict[str, Any]) -> str:
        return str(hit["entity_full_name"]).split(".", 1)[0]

    @staticmethod
    def _schema_text(tables: list[store.TableRow]) -> str:
        parts = []
        for t in tables:
            cols = "\n".join(
                f"  {c['name']} {c['type']}" + (f"  -- e.g. {', '.join(c['samples'][:3])}" if c.get("samples") else "")
                for c in t.columns[:80]
            )
            parts.append(f"{t.table_name} ({t.row_count} rows):\n{cols}")
        return "\n\n".join(parts)

    async def _sql_from_model(self, principal: Principal, messages: list[dict[str, Any]]) -> str:
        assert self.model is not None
        try:
            text = await self.model.complete(principal, messages, model=self.settings.sql_model, temperature=0)
        except ModelUnavailable as exc:
            raise ApiError(502, "model_unavailable", str(exc)) from None
        sql = extract_sql(text)
        if not sql:
            raise ApiError(502, "model_no_sql", "the model did not answer with a SQL query")
        return sql

    async def _generate_and_run(
        self, principal: Principal, messages: list[dict[str, Any]], tables: dict[str, store.TableRow]
    ) -> tuple[CheckedSql, engine.QueryResult, bool]:
        sql = await self._sql_from_model(principal, messages)
        for attempt in (1, 2):
            try:
                checked = check_sql(sql, tables)
            except UnsafeSql as exc:
                log.warning("analytics_sql_refused", code=exc.code)
                raise ApiError(
                    422, exc.code, f"the generated SQL was refused before running: {exc.message}", details={"sql": sql}
                ) from None
            try:
                result = await self._run(principal.user_id, checked, tables)
                return checked, result, attempt == 2
            except QueryFailed as exc:
                if exc.code != "query_failed" or attempt == 2:
                    raise ApiError(422, exc.code, exc.message, details={"sql": checked.sql}) from None
                messages = [
                    *messages,
                    {"role": "assistant", "content": f"```sql\n{sql}\n```"},
                    {
                        "role": "user",
                        "content": f"DuckDB rejected that query: {exc.message}\nWrite a corrected query.",
                    },
                ]
                sql = await self._sql_from_model(principal, messages)
        raise AssertionError("unreachable")

    async def _run(self, user_id: str, checked: CheckedSql, tables: dict[str, store.TableRow]) -> engine.QueryResult:
        views = {name: await self._local_copy(tables[name]) for name in checked.tables}
        s = self.settings
        return await anyio.to_thread.run_sync(
            lambda: engine.run_query(
                views,
                checked.sql,
                max_rows=s.max_rows,
                count_limit=s.count_limit,
                timeout=s.query_timeout_seconds,
                limits=self.limits,
            )
        )

    async def _local_copy(self, table: store.TableRow) -> Path:
        """This node's cached copy of the table's Parquet (keys are never reused, so a copy never goes stale)."""
        target = self.cache_dir / (hashlib.sha256(table.storage_key.encode()).hexdigest() + ".parquet")
        if target.exists():
            os.utime(target)
            return target
        partial = self.tmp_dir / f"{uuid.uuid4().hex}.part"
        try:
            async with await anyio.open_file(partial, "wb") as out:
                async for chunk in self.storage.read(table.storage_key):
                    await out.write(chunk)
            partial.replace(target)  # atomic: a concurrent query sees no copy or a whole one
        except (StorageError, OSError):
            raise ApiError(
                502, "storage_unavailable", "the table's data is not reachable in storage; try again"
            ) from None
        finally:
            partial.unlink(missing_ok=True)
        await anyio.to_thread.run_sync(self._prune_cache, target)
        return target

    def _prune_cache(self, keep: Path) -> None:
        """Drop the least recently used copies past cache_bytes; a copy used in the last minute stays (a query
        on this node may be about to open it)."""
        files = sorted(self.cache_dir.glob("*.parquet"), key=lambda p: p.stat().st_mtime)
        total = sum(p.stat().st_size for p in files)
        recent = time.time() - 60
        for path in files:
            if total <= self.settings.cache_bytes:
                break
            if path != keep and path.stat().st_mtime < recent:
                total -= path.stat().st_size
                path.unlink(missing_ok=True)

    async def _answer(
        self,
        user_id: str,
        question: str,
        database: str,
        checked: CheckedSql,
        result: engine.QueryResult,
        repaired: bool,
        linked: list[str],
    ) -> Answer:
        data: dict[str, Any] = {
            "question": question,
            "database_name": database,
            "sql": checked.sql,
            "repaired": repaired,
            "tables_used": list(checked.tables),
            "tables_considered": linked,
            "columns": list(result.columns),
            "column_types": list(result.types),
            "rows": [_jsonable(list(r)) for r in result.rows],
            "row_count": len(result.rows),
            "total_rows": result.total,
            "total_exact": result.total_exact,
            "truncated": result.total > len(result.rows),
            "chart": None,
        }
        spec = charts.choose(result.columns, result.types, len(result.rows))
        png = None
        if spec is not None:
            rows = result.rows[: self.settings.chart_max_points]
            png = await anyio.to_thread.run_sync(lambda: charts.render_png(spec, result.columns, rows, question))
            data["chart"] = {"kind": spec.kind, "x": spec.x, "y": spec.y, **await self._store_chart(user_id, png)}
        return Answer(data, png)

    async def _store_chart(self, user_id: str, png: bytes) -> dict[str, Any]:
        async def chunks() -> AsyncIterator[bytes]:
            yield png

        name = f"chart-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}.png"
        try:
            row = await self.files.upload(user_id, FilePart(name, "image/png", chunks()), len(png))
        except ApiError as exc:  # quota or storage trouble: the image still comes back in the result
            return {"file_id": None, "file_error": exc.code}
        return {"file_id": row.id, "filename": row.filename}


async def _chunks(path: Path, size: int = 1024 * 1024) -> AsyncIterator[bytes]:
    async with await anyio.open_file(path, "rb") as handle:
        while chunk := await handle.read(size):
            yield chunk
