"""Check SQL before DuckDB sees it: exactly one read-only SELECT over the caller's own tables, nothing else.

The SQL comes from a model that read user text, so it is untrusted input. It is parsed with sqlglot (DuckDB
dialect) and refused unless the whole tree is a query: no DDL/DML, no COPY/ATTACH/INSTALL/PRAGMA/SET, no
SELECT INTO, every table a bare name of the caller's tables or of a CTE, no table functions (read_csv, glob,
query, ...) and no function that reads files, the network or the settings. What runs is the SQL regenerated
from the checked tree (comments dropped), so DuckDB executes exactly what was checked. The DuckDB connection is
locked down as well (isa/analytics/engine.py): this is the first of two walls, not the only one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from isa.core.errors import CodedError

# Statement kinds that are never a query (by class name, so a sqlglot release that lacks one still imports).
_FORBIDDEN_NODES = {
    "Alter",
    "Analyze",
    "Attach",
    "Cache",
    "Command",
    "Commit",
    "Copy",
    "Create",
    "Delete",
    "Describe",
    "Detach",
    "Drop",
    "Export",
    "Grant",
    "Insert",
    "Install",
    "Into",
    "Kill",
    "LoadData",
    "Merge",
    "Pragma",
    "Refresh",
    "Rollback",
    "Set",
    "Show",
    "Summarize",
    "Transaction",
    "TruncateTable",
    "Uncache",
    "Update",
    "Use",
}
_FORBIDDEN = {name.upper() for name in _FORBIDDEN_NODES}
# Functions that read files, the network, the catalog or the settings, or run SQL given as a string.
_FORBIDDEN_FUNCTION = re.compile(
    r"^(read_\w*|\w*_scan|scan_\w*|parquet_\w*|sniff_\w*|glob|getenv|current_setting|duckdb_\w*|pragma_\w*|query"
    r"|query_table|iceberg_\w*|delta_\w*|sqlite_\w*|postgres_\w*|mysql_\w*|http\w*|load\w*|install\w*|system"
    r"|which_secret|json_execute_serialized_sql|json_deserialize_sql|\w*serialize\w*|checkpoint|force_checkpoint"
    r"|enable_\w*|disable_\w*|set_\w*|export_\w*|import_\w*|copy_\w*|attach\w*|detach\w*|test_\w*|summary"
    r"|icu_\w*|tpch\w*|tpcds\w*|dbgen|dsdgen|repeat_row)$"
)


class UnsafeSql(CodedError):
    """The SQL is not one read-only query over the caller's tables; `code` says which rule it broke."""


@dataclass(frozen=True)
class CheckedSql:
    sql: str  # regenerated from the checked tree; this is what runs
    tables: tuple[str, ...]  # the caller's tables it reads


def _function_name(node: exp.Func) -> str:
    if isinstance(node, exp.Anonymous):
        return str(node.name).lower()
    return str(node.sql_name()).lower()


def check_sql(text: str, allowed_tables: Iterable[str]) -> CheckedSql:
    """The checked query, or UnsafeSql naming the rule it broke."""
    allowed = {t.lower() for t in allowed_tables}
    try:
        statements = [s for s in sqlglot.parse(text, read="duckdb") if s is not None]
    except SqlglotError as exc:
        raise UnsafeSql("sql_unparseable", f"the SQL does not parse: {str(exc).splitlines()[0][:200]}") from None
    if len(statements) != 1:
        raise UnsafeSql("sql_not_single", f"exactly one statement is allowed, not {len(statements)}")
    tree = statements[0]
    if not isinstance(tree, exp.Select | exp.Union | exp.Intersect | exp.Except):
        raise UnsafeSql("sql_not_select", f"only a SELECT query may run, not {type(tree).__name__.upper()}")
    ctes = {str(cte.alias_or_name).lower() for cte in tree.find_all(exp.CTE)}
    used: list[str] = []
    for node in tree.walk():
        kind = type(node).__name__.upper()
        if isinstance(node, exp.Select) and node.args.get("into") is not None:
            kind = "SELECT INTO"
        if kind in _FORBIDDEN or kind == "SELECT INTO":
            raise UnsafeSql("sql_not_select", f"{kind} is not allowed in a query")
        if isinstance(node, exp.Table):
            _check_table(node, allowed, ctes, used)
        elif isinstance(node, exp.Func) and _FORBIDDEN_FUNCTION.match(_function_name(node)):
            raise UnsafeSql("sql_forbidden_function", f"the function {_function_name(node)} is not allowed")
    sql = tree.sql(dialect="duckdb", comments=False)
    return CheckedSql(sql=sql, tables=tuple(dict.fromkeys(used)))


def _check_table(node: exp.Table, allowed: set[str], ctes: set[str], used: list[str]) -> None:
    if not isinstance(node.this, exp.Identifier):
        raise UnsafeSql("sql_forbidden_function", "table functions are not allowed; read from your tables")
    if node.args.get("db") or node.args.get("catalog"):
        raise UnsafeSql("sql_unknown_table", f"use a bare table name, not {node.sql(dialect='duckdb')}")
    name = str(node.name).lower()
    if name in ctes:
        return
    if name not in allowed:
        raise UnsafeSql("sql_unknown_table", f"there is no table {node.name!r} among your data")
    used.append(name)
