"""B1.4: `isa migrate` dials database.migration_url, never database.url (a transaction pooler breaks its lock)."""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg

from isa.core.migrations import discover
from tests.support.jwt_keys import connection_counter


def test_isa_migrate_applies_every_migration_over_the_migration_url_and_never_dials_the_app_url(
    empty_db_url: str,
) -> None:
    with connection_counter() as pooler:
        # The app URL points at a listener that only counts: one connection there would be the bug.
        env = {
            **os.environ,
            "ISA_DATABASE__URL": f"postgresql://isa:isa@127.0.0.1:{pooler.port}/isa?connect_timeout=2",
            "ISA_DATABASE__MIGRATION_URL": empty_db_url,
        }
        result = subprocess.run(
            [sys.executable, "-m", "isa", "migrate"], env=env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr
        assert pooler.connections == 0
    with psycopg.connect(empty_db_url) as conn:
        applied = [row[0] for row in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
    assert applied == [f.version for f in discover()]
    assert f"{len(applied)} migration(s) applied" in result.stdout


def test_operator_commands_migrate_over_the_migration_url_like_serve_does(db_url: str, empty_db_url: str) -> None:
    """`isa users list` (every domain command shares core/cli.py's bootstrap) migrates the migration URL."""
    env = {
        **os.environ,
        "ISA_DATABASE__URL": db_url,  # already migrated: migrating it again would change nothing
        "ISA_DATABASE__MIGRATION_URL": empty_db_url,
        "ISA_DATABASE__AUTO_MIGRATE": "true",
    }
    result = subprocess.run(
        [sys.executable, "-m", "isa", "users", "list", "--json"], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    with psycopg.connect(empty_db_url) as conn:
        applied = [row[0] for row in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
    assert applied == [f.version for f in discover()]
