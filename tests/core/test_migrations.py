"""`isa migrate`: ordered, transactional, locked, checksum-validated."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest

from isa.core.migrations import MigrationError, discover, migrate, packaged_dir, status

ORIGINAL_TABLES = {
    "users",
    "subscriptions",
    "user_credit_transactions",
    "user_usage_records",
    "sessions",
    "session_messages",
    "session_memories",
    "factual_memories",
    "episodic_memories",
    "semantic_memories",
    "procedural_memories",
    "working_memories",
    "memory_associations",
    "memory_metadata",
    "memory_config",
    "memory_extraction_logs",
    "memory_statistics",
    "user_knowledge",
    "db_meta_embedding",
    "mcp_tools",
    "mcp_prompts",
    "mcp_resources",
    "mcp_search_history",
    "mcp_unified_search_embeddings",
    "tool_embeddings",
    "prompt_embeddings",
    "resource_embeddings",
    "user_tasks",
    "events",
    "checkpoints",
    "checkpoint_blobs",
    "checkpoint_writes",
    "checkpoint_migrations",
    "traces",
    "spans",
    "span_logs",
    "langgraph_executions",
    "models",
    "model_capabilities",
    "model_embeddings",
    "model_statistics",
    "carts",
    "orders",
}


def _tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
        ).fetchall()
    return {r[0] for r in rows}


def _isa(*args: str, url: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "ISA_DATABASE__URL": url, **env}
    return subprocess.run(
        [sys.executable, "-m", "isa", *args], env=full_env, capture_output=True, text=True, timeout=120
    )


def test_fresh_migrate_creates_the_43_tables_of_the_original_schema(empty_db_url: str) -> None:
    applied = migrate(empty_db_url)
    assert [f.filename for f in applied] == [f.filename for f in discover()]
    assert len(ORIGINAL_TABLES) == 43
    assert ORIGINAL_TABLES - _tables(empty_db_url) == set()


def test_every_table_has_a_primary_key(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        missing = conn.execute(
            """SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE n.nspname = 'public' AND c.relkind = 'r'
                 AND NOT EXISTS (SELECT 1 FROM pg_constraint p WHERE p.conrelid = c.oid AND p.contype = 'p')"""
        ).fetchall()
    assert missing == []


def test_a_second_migrate_applies_nothing(db_url: str) -> None:
    assert migrate(db_url) == []
    assert {s.state for s in status(db_url)} == {"applied"}


def test_three_concurrent_migrators_apply_every_file_exactly_once(empty_db_url: str) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "isa", "migrate"],
            env={**os.environ, "ISA_DATABASE__URL": empty_db_url},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    applied_lines = [line for out, _ in outputs for line in out.splitlines() if line.startswith("applied ")]
    assert sorted(applied_lines) == sorted(f"applied {f.filename}" for f in discover())
    with psycopg.connect(empty_db_url) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
    assert versions == [f.version for f in discover()]


def _copy_migrations(tmp_path: Path) -> Path:
    folder = tmp_path / "migrations"
    shutil.copytree(packaged_dir(), folder)
    return folder


def test_a_failing_migration_is_rolled_back_whole_and_a_fixed_rerun_succeeds(empty_db_url: str, tmp_path: Path) -> None:
    folder = _copy_migrations(tmp_path)
    last = max(discover(folder), key=lambda f: f.version).version
    bad = folder / f"{last + 1:04d}_half_done.sql"
    bad.write_text(
        "CREATE TABLE half_one (id int PRIMARY KEY);\nSELECT no_such_function();\n"
        "CREATE TABLE half_two (id int PRIMARY KEY);\n"
    )
    with pytest.raises(MigrationError, match=bad.name):
        migrate(empty_db_url, directory=folder)
    assert "half_one" not in _tables(empty_db_url)
    assert [s.state for s in status(empty_db_url, directory=folder)][-1] == "pending"
    bad.write_text("CREATE TABLE half_one (id int PRIMARY KEY);\n")
    assert [f.filename for f in migrate(empty_db_url, directory=folder)] == [bad.name]
    assert "half_one" in _tables(empty_db_url)


def test_an_edited_applied_migration_is_refused_by_name(empty_db_url: str, tmp_path: Path) -> None:
    folder = _copy_migrations(tmp_path)
    migrate(empty_db_url, directory=folder)
    first = discover(folder)[0]
    (folder / first.filename).write_text(first.sql + "\n-- edited after release\n")
    with pytest.raises(MigrationError, match=first.filename):
        migrate(empty_db_url, directory=folder)
    assert "changed" in {s.state for s in status(empty_db_url, directory=folder)}


def test_cli_refuses_checksum_drift_with_a_non_zero_exit(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("UPDATE schema_migrations SET checksum = 'tampered' WHERE version = 1")
    try:
        result = _isa("migrate", url=db_url)
        assert result.returncode != 0
        assert "0001_" in result.stderr and "changed" in result.stderr
        listing = _isa("migrate", "--status", url=db_url)
        assert listing.returncode != 0 and "changed" in listing.stdout
    finally:
        first = discover()[0]
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute("UPDATE schema_migrations SET checksum = %s WHERE version = 1", (first.checksum,))


def test_a_migration_blocked_by_a_lock_fails_within_lock_timeout(db_url: str, tmp_path: Path) -> None:
    folder = _copy_migrations(tmp_path)
    last = max(discover(folder), key=lambda f: f.version).version
    (folder / f"{last + 1:04d}_touch_users.sql").write_text("ALTER TABLE users ADD COLUMN nickname text;\n")
    holder = psycopg.connect(db_url)
    holder.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
    released = threading.Event()
    try:
        started = time.monotonic()
        with pytest.raises(MigrationError, match="touch_users"):
            migrate(db_url, directory=folder, lock_timeout_ms=500)
        assert time.monotonic() - started < 5
    finally:
        holder.rollback()
        holder.close()
        released.set()
    assert [s.state for s in status(db_url, directory=folder)][-1] == "pending"


def test_status_lists_pending_files_on_an_empty_database(empty_db_url: str) -> None:
    result = _isa("migrate", "--status", url=empty_db_url)
    assert result.returncode == 0
    assert result.stdout.count("pending") == len(discover())


def test_migrations_ship_inside_the_package() -> None:
    assert packaged_dir().is_dir()
    assert discover()[0].filename.startswith("0001_")
