"""The SQL checker on its own: what it lets through is exactly one read-only query over the named tables, and what
runs is the regenerated text (so a comment or a parser disagreement can't smuggle a second statement)."""

from __future__ import annotations

import pytest

from isa.analytics.sqlcheck import UnsafeSql, check_sql

TABLES = ["sales", "customers"]


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("WITH x AS (SELECT * FROM read_csv('/etc/passwd')) SELECT * FROM x", "sql_forbidden_function"),
        (
            "SELECT * FROM sales WHERE region IN (SELECT content FROM read_text('/etc/hostname'))",
            "sql_forbidden_function",
        ),
        ("SELECT * FROM sales UNION ALL SELECT * FROM secrets", "sql_unknown_table"),
        ("SELECT * FROM main.sales", "sql_unknown_table"),
        ("SELECT * FROM other_db.main.sales", "sql_unknown_table"),
        ("SELECT * FROM information_schema.tables", "sql_unknown_table"),
        ("SELECT * FROM glob('/*')", "sql_forbidden_function"),
        ("SELECT * FROM sales; SELECT 1", "sql_not_single"),
        ("", "sql_not_single"),
        ("CREATE VIEW v AS SELECT 1", "sql_not_select"),
        ("INSERT INTO sales VALUES (1)", "sql_not_select"),
        ("EXPORT DATABASE '/tmp/x'", "sql_unparseable"),
        ("SELECT current_setting('allowed_paths')", "sql_forbidden_function"),
        ("SELECT * FROM (", "sql_unparseable"),
    ],
)
def test_anything_but_one_query_over_the_callers_tables_is_refused(text: str, code: str) -> None:
    with pytest.raises(UnsafeSql) as refused:
        check_sql(text, TABLES)
    assert refused.value.code == code


def test_a_query_with_ctes_joins_and_windows_passes_and_runs_as_regenerated_without_comments() -> None:
    checked = check_sql(
        "/* hello */ WITH r AS (SELECT region, SUM(amount) AS s FROM Sales GROUP BY 1) -- trailing; DROP TABLE x\n"
        "SELECT r.region, r.s, c.name, rank() OVER (ORDER BY r.s DESC) FROM r JOIN customers c ON c.region = r.region",
        TABLES,
    )
    assert sorted(checked.tables) == ["customers", "sales"]
    assert "DROP" not in checked.sql and "hello" not in checked.sql and "--" not in checked.sql
    assert checked.sql.startswith("WITH r AS (SELECT region")
