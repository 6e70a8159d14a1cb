"""DuckDB work, run in worker threads: a source file to Parquet, its profile, and locked-down queries.

Every connection is in memory and short-lived. Extensions are never installed or auto-loaded; file access is
limited to the exact paths the code chose (`allowed_paths`) and then switched off for everything else
(`enable_external_access = false`), spilling to disk is off, memory and threads are capped, and the
configuration is locked so SQL can't undo any of it. A query connection holds only the caller's own tables
(views over their Parquet copies), so another user's data is not even there to be named.
"""

from __future__ import annotations

import csv
import re
import threading
import unicodedata
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from isa.core.errors import CodedError

SOURCE_TYPES = ("csv", "tsv", "json", "jsonl", "parquet", "excel")
_NUMERIC = re.compile(
    r"^(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|FLOAT|DOUBLE|DECIMAL)"
)
_TEMPORAL = re.compile(r"^(DATE|TIME|TIMESTAMP)")


class IngestFailed(Exception):
    """The source can't be read as a table; the message says why (DuckDB's words, first line only)."""


class QueryFailed(CodedError):
    """DuckDB refused or stopped a query: `code` is query_timeout, query_failed or query_too_large."""


@dataclass(frozen=True)
class Limits:
    memory_limit: str = "512MB"
    threads: int = 2


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    distinct: int
    nulls: int
    samples: tuple[str, ...]

    @property
    def kind(self) -> str:
        return kind_of(self.type)


@dataclass(frozen=True)
class TableFile:
    """One table made from a source: its suggested name suffix (an Excel sheet), Parquet path and profile."""

    part: str
    path: Path
    rows: int
    columns: tuple[Column, ...]


@dataclass(frozen=True)
class QueryResult:
    columns: tuple[str, ...]
    types: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    total: int
    total_exact: bool  # False when counting stopped at count_limit


def kind_of(duck_type: str) -> str:
    """number, time, bool or text: what a chart and a prompt need to know of a column."""
    upper = duck_type.upper()
    if _NUMERIC.match(upper):
        return "number"
    if _TEMPORAL.match(upper):
        return "time"
    if upper == "BOOLEAN":
        return "bool"
    return "text"


def safe_identifier(raw: str, used: set[str], fallback: str = "col") -> str:
    """A lower-case [a-z0-9_] name that starts with a letter, unique among `used` (which it joins)."""
    text = unicodedata.normalize("NFKD", raw).encode("ascii", "ignore").decode().lower()
    name = re.sub(r"[^a-z0-9]+", "_", text).strip("_")[:60] or fallback
    if not name[0].isalpha():
        name = f"{fallback}_{name}"
    candidate, n = name, 2
    while candidate in used:
        candidate = f"{name}_{n}"
        n += 1
    used.add(candidate)
    return candidate


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@contextmanager
def locked_connection(paths: Sequence[Path], limits: Limits, setup: Sequence[str] = ()) -> Iterator[Any]:
    """An in-memory DuckDB that can touch only `paths`, after running the trusted `setup` statements."""
    con = duckdb.connect(
        ":memory:",
        config={
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "allow_community_extensions": False,
            "allow_unsigned_extensions": False,
            "memory_limit": limits.memory_limit,
            "threads": limits.threads,
        },
    )
    try:
        con.execute("SET allowed_paths = ?", [[str(p) for p in paths]])
        con.execute("SET temp_directory = ''")  # no spilling: the memory limit is the limit
        for statement in setup:
            con.execute(statement)
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        yield con
    finally:
        con.close()


@contextmanager
def _deadline(con: Any, seconds: float) -> Iterator[None]:
    """Interrupt whatever `con` runs once `seconds` have passed (DuckDB checks for it between vectors)."""
    timer = threading.Timer(seconds, con.interrupt)
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def _reader(path: Path, source_type: str) -> str:
    p = _literal(str(path))
    if source_type == "csv":
        return f"read_csv({p}, header = true, sample_size = 20480)"
    if source_type == "tsv":
        return f"read_csv({p}, header = true, delim = '\\t', sample_size = 20480)"
    if source_type == "json":
        return f"read_json({p}, format = 'auto')"
    if source_type == "jsonl":
        return f"read_json({p}, format = 'newline_delimited')"
    if source_type == "parquet":
        return f"read_parquet({p})"
    raise IngestFailed(f"unknown source type {source_type!r}")


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__


def excel_to_csv(src: Path, out_dir: Path, max_columns: int) -> list[tuple[str, Path]]:
    """Each non-empty sheet as a CSV (first row = header), streamed row by row through openpyxl's read-only mode."""
    from openpyxl import load_workbook  # type: ignore[import-untyped]

    handle = src.open("rb")  # a file object: openpyxl would judge a path by its extension
    try:
        book = load_workbook(handle, read_only=True, data_only=True)
    except Exception as exc:  # zip/xml damage surfaces as many exception types
        handle.close()
        raise IngestFailed(f"the file is not a readable Excel workbook ({type(exc).__name__})") from None
    sheets: list[tuple[str, Path]] = []
    try:
        for index, sheet in enumerate(book.worksheets):
            target = out_dir / f"sheet{index}.csv"
            rows = 0
            with target.open("w", newline="", encoding="utf-8") as out:
                writer = csv.writer(out)
                for row in sheet.iter_rows(values_only=True):
                    if rows == 0 and len(row) > max_columns:
                        raise IngestFailed(f"sheet {sheet.title!r} has more than {max_columns} columns")
                    if all(v is None for v in row):
                        continue
                    writer.writerow(["" if v is None else v for v in row])
                    rows += 1
            if rows > 1:
                sheets.append((sheet.title, target))
    finally:
        book.close()
        handle.close()
    if not sheets:
        raise IngestFailed("the workbook has no sheet with a header row and data")
    return sheets


def to_parquet(
    src: Path, source_type: str, out_dir: Path, limits: Limits, max_columns: int, samples: int, timeout: float = 300
) -> list[TableFile]:
    """Convert the source into one Parquet file per table (DuckDB streams it; Python never holds the rows);
    each table's conversion and profile is interrupted after `timeout` seconds."""
    parts: list[tuple[str, Path, str]]
    if source_type == "excel":
        parts = [(title, path, "csv") for title, path in excel_to_csv(src, out_dir, max_columns)]
    else:
        parts = [("", src, source_type)]
    tables: list[TableFile] = []
    for index, (part, path, kind) in enumerate(parts):
        out = out_dir / f"table{index}.parquet"
        try:
            with locked_connection([path, out], limits) as con, _deadline(con, timeout):
                described = con.execute(f"DESCRIBE SELECT * FROM {_reader(path, kind)}").fetchall()
                if not described:
                    raise IngestFailed("the source has no columns")
                if len(described) > max_columns:
                    raise IngestFailed(f"the source has {len(described)} columns; at most {max_columns} are kept")
                used: set[str] = set()
                select = ", ".join(
                    f"{_quote(str(row[0]))} AS {_quote(safe_identifier(str(row[0]), used))}" for row in described
                )
                con.execute(
                    f"COPY (SELECT {select} FROM {_reader(path, kind)}) TO {_literal(str(out))}"
                    " (FORMAT parquet, COMPRESSION zstd)"
                )
                rows, columns = _profile(con, out, samples)
        except IngestFailed:
            raise
        except duckdb.InterruptException:
            raise IngestFailed(f"reading the data took longer than {timeout:g} s") from None
        except duckdb.OutOfMemoryException:
            raise IngestFailed(f"reading the data needs more than {limits.memory_limit} of memory") from None
        except duckdb.Error as exc:
            raise IngestFailed(f"the {kind.upper()} data can't be read: {_first_line(exc)}") from None
        if rows == 0:
            raise IngestFailed("the source has no rows")
        tables.append(TableFile(part, out, rows, columns))
    return tables


def _profile(con: Any, parquet: Path, samples: int) -> tuple[int, tuple[Column, ...]]:
    source = f"read_parquet({_literal(str(parquet))})"
    described = con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
    aggregates = ", ".join(
        f"approx_count_distinct({_quote(str(r[0]))}), count(*) - count({_quote(str(r[0]))})" for r in described
    )
    stats = con.execute(f"SELECT count(*), {aggregates} FROM {source}").fetchone()
    rows = int(stats[0])
    columns: list[Column] = []
    for i, (name, duck_type, *_rest) in enumerate(described):
        values: tuple[str, ...] = ()
        if samples:
            found = con.execute(
                f"SELECT DISTINCT {_quote(str(name))} FROM {source} WHERE {_quote(str(name))} IS NOT NULL"
                f" LIMIT {int(samples)}"
            ).fetchall()
            values = tuple(str(v[0])[:80] for v in found)
        columns.append(Column(str(name), str(duck_type), int(stats[1 + 2 * i]), int(stats[2 + 2 * i]), values))
    return rows, tuple(columns)


def run_query(
    views: dict[str, Path], sql: str, *, max_rows: int, count_limit: int, timeout: float, limits: Limits
) -> QueryResult:
    """Run checked SQL over the caller's tables only; interrupted after `timeout` seconds."""
    setup = [
        f"CREATE VIEW {_quote(name)} AS SELECT * FROM read_parquet({_literal(str(path))})"
        for name, path in views.items()
    ]
    with locked_connection(list(views.values()), limits, setup) as con, _deadline(con, timeout):
        try:
            cursor = con.execute(sql)
            description = cursor.description or []
            rows = cursor.fetchmany(max_rows)
            total = len(rows)
            exact = True
            while len(rows) == max_rows:
                more = cursor.fetchmany(10_000)
                if not more:
                    break
                total += len(more)
                if total >= count_limit:
                    exact = False
                    break
        except duckdb.InterruptException:
            raise QueryFailed("query_timeout", f"the query ran longer than {timeout:g} s and was stopped") from None
        except duckdb.OutOfMemoryException:
            raise QueryFailed("query_too_large", f"the query needs more than {limits.memory_limit} of memory") from None
        except duckdb.Error as exc:
            raise QueryFailed("query_failed", _first_line(exc)) from None
    return QueryResult(
        columns=tuple(str(d[0]) for d in description),
        types=tuple(str(d[1]) for d in description),
        rows=list(rows),
        total=total,
        total_exact=exact,
    )
