"""The embedded Postgres 16 + pgvector of the default set-up (PyPI package `pgserver`), under ISA_DATA_DIR.

Several `isa` processes on one machine share one server: pgserver counts the processes that hold
it and stops it when the last one exits.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from pathlib import Path
from urllib.parse import quote

import psycopg

DATABASE_NAME = "isa"


def embedded_url(data_dir: Path, *, keep_running: bool = False) -> str:
    """Start (or join) the embedded server for `data_dir` and return the URL of the `isa` database.

    `keep_running` leaves the server up after this process exits (for `isa db url`).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pgserver warns when XDG_RUNTIME_DIR is unset; harmless here
        import pgserver  # heavy-ish and only needed without a configured URL

        pgdata = data_dir / "pg"
        data_dir.mkdir(parents=True, exist_ok=True)
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
