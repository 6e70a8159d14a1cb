"""`isa migrate`: apply migrations/NNNN_name.sql in order, each in one transaction, under an advisory lock.

- `schema_migrations` records version, name, checksum, applied_at and duration of every applied file.
- A session-level advisory lock makes concurrent migrators queue: the first applies, the others
  then find nothing pending.
- `lock_timeout` / `statement_timeout` bound how long a migration may block live traffic.
- An applied file whose checksum changed is refused by name (like Flyway's validate).
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path

import psycopg

from isa.core.logging import get_logger

log = get_logger("isa.migrate")

# Any constant works; it only has to be the same for every migrator of this schema.
ADVISORY_LOCK_KEY = 0x15A_0001
_FILE = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")

_HISTORY = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    duration_ms integer NOT NULL
)
"""


class MigrationError(Exception):
    """A migration could not be applied or validated; the message names the file."""


@dataclass(frozen=True)
class MigrationFile:
    version: int
    name: str
    filename: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


@dataclass(frozen=True)
class MigrationStatus:
    version: int
    name: str
    state: str  # applied | pending | changed | missing_file
    applied_at: datetime | None
    duration_ms: int | None


def packaged_dir() -> Path:
    return Path(str(resources.files("isa") / "migrations"))


def discover(directory: Path | None = None) -> list[MigrationFile]:
    """The migration files in version order; a malformed name or a duplicate version is an error."""
    folder = directory or packaged_dir()
    files: list[MigrationFile] = []
    for path in sorted(folder.iterdir()):
        if path.suffix != ".sql":
            continue
        match = _FILE.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NNNN_lowercase_name.sql")
        files.append(MigrationFile(int(match["version"]), match["name"], path.name, path.read_text("utf-8")))
    versions = [f.version for f in files]
    if len(set(versions)) != len(versions):
        raise MigrationError("two migration files share a version number")
    return files


def _applied(conn: psycopg.Connection[tuple[object, ...]]) -> dict[int, tuple[str, str, datetime, int]]:
    rows = conn.execute("SELECT version, name, checksum, applied_at, duration_ms FROM schema_migrations")
    return {int(r[0]): (str(r[1]), str(r[2]), r[3], int(r[4])) for r in rows}  # type: ignore[misc, call-overload]


def _validate(files: list[MigrationFile], applied: dict[int, tuple[str, str, datetime, int]]) -> None:
    for f in files:
        if f.version in applied and applied[f.version][1] != f.checksum:
            raise MigrationError(
                f"{f.filename} was changed after it was applied (checksum differs); "
                "add a new migration instead of editing an applied one"
            )


def migrate(
    url: str,
    *,
    directory: Path | None = None,
    lock_timeout_ms: int = 4000,
    statement_timeout_ms: int = 600_000,
) -> list[MigrationFile]:
    """Apply every pending migration; return the ones this call applied."""
    files = discover(directory)
    done: list[MigrationFile] = []
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_KEY,))
        try:
            conn.execute(_HISTORY)
            applied = _applied(conn)
            _validate(files, applied)
            for f in files:
                if f.version in applied:
                    continue
                _apply_one(conn, f, lock_timeout_ms, statement_timeout_ms)
                done.append(f)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (ADVISORY_LOCK_KEY,))
    return done


def _apply_one(
    conn: psycopg.Connection[tuple[object, ...]],
    f: MigrationFile,
    lock_timeout_ms: int,
    statement_timeout_ms: int,
) -> None:
    started = time.perf_counter()
    try:
        with conn.transaction():
            conn.execute(f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}")
            conn.execute(f"SET LOCAL statement_timeout = {int(statement_timeout_ms)}")
            conn.execute(f.sql.encode())
            conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum, duration_ms) VALUES (%s, %s, %s, %s)",
                (f.version, f.name, f.checksum, int((time.perf_counter() - started) * 1000)),
            )
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MigrationError(f"{f.filename} failed and was rolled back: {reason}") from exc
    log.info("migration_applied", file=f.filename, duration_ms=round((time.perf_counter() - started) * 1000))


def status(url: str, *, directory: Path | None = None) -> list[MigrationStatus]:
    """Applied, pending and changed files, plus applied versions whose file is gone."""
    files = discover(directory)
    with psycopg.connect(url, autocommit=True) as conn:
        exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
        applied = _applied(conn) if exists and exists[0] else {}
    result: list[MigrationStatus] = []
    for f in files:
        row = applied.get(f.version)
        if row is None:
            result.append(MigrationStatus(f.version, f.name, "pending", None, None))
        else:
            state = "applied" if row[1] == f.checksum else "changed"
            result.append(MigrationStatus(f.version, f.name, state, row[2], row[3]))
    known = {f.version for f in files}
    for version, row in sorted(applied.items()):
        if version not in known:
            result.append(MigrationStatus(version, row[0], "missing_file", row[2], row[3]))
    return sorted(result, key=lambda s: s.version)
