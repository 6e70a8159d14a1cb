"""B2.16: upgrading a database of the previous release that holds data.

The repository has no release tags, so "the previous release" is the schema before the newest migrations: every
file up to 0018 (what shipped before knowledge postings 0019, task idempotency 0020 and the postings index 0021).
The test builds that schema, fills it the way that release's code wrote rows (plain SQL of its columns only),
runs `isa migrate` (the CLI) to the current schema, and then reads the same data back through today's HTTP API:
nothing lost, the new columns have their defaults, and the backfilled BM25 postings find the old knowledge.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
from starlette.testclient import TestClient

from isa.app import create_app
from isa.core.migrations import migrate
from isa.core.settings import Settings
from tests.support.auth import create_key

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"
PREVIOUS_LAST = "0018"

OLD_DATA = [
    "INSERT INTO users (user_id, email, name, credits_remaining, credits_total)"
    " VALUES ('old-alice', 'alice@example.test', 'Alice', 42.5, 50)",
    "INSERT INTO user_tasks (user_id, task_type, name, config, interval_seconds, next_check)"
    " VALUES ('old-alice', 'schedule', 'old reminder', '{\"message\": \"water the plants\"}', 3600, now())",
    "INSERT INTO events (user_id, event_type, event_data) VALUES ('old-alice', 'old.event', '{\"n\": 1}')",
    "INSERT INTO user_knowledge (user_id, content) VALUES ('old-alice', 'The greenhouse key hangs by the door.')",
    "INSERT INTO sessions (user_id, title) VALUES ('old-alice', 'an old conversation')",
]


def test_b2_16_a_previous_release_database_with_data_upgrades_and_serves_its_data(
    empty_db_url: str, settings: Settings, tmp_path: Path
) -> None:
    previous = tmp_path / "migrations"
    previous.mkdir()
    for file in sorted(MIGRATIONS.glob("*.sql")):
        if file.name[:4] <= PREVIOUS_LAST:
            shutil.copy(file, previous / file.name)
    assert migrate(empty_db_url, directory=previous)
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        for statement in OLD_DATA:
            conn.execute(statement)  # type: ignore[arg-type]

    upgraded = subprocess.run(
        [sys.executable, "-m", "isa", "migrate"],
        env={**os.environ, "ISA_DATABASE__URL": empty_db_url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert upgraded.returncode == 0, upgraded.stderr
    with psycopg.connect(empty_db_url) as conn:
        applied = [r[0] for r in conn.execute("SELECT name FROM schema_migrations ORDER BY version").fetchall()]
        task = conn.execute(
            "SELECT idempotency_key, payload_hash FROM user_tasks WHERE name = 'old reminder'"
        ).fetchone()
    assert len(applied) == len(list(MIGRATIONS.glob("*.sql")))
    assert task == (None, None)  # 0020's columns on an old row: no key, and the pair constraint holds

    key = create_key(empty_db_url, settings, "old-alice", "write")
    headers = {"Authorization": f"Bearer {key}"}
    with TestClient(create_app(settings, "mcp", database_url=empty_db_url)) as client:
        me = client.get("/api/v1/users/me", headers=headers).json()["data"]
        assert (me["email"], float(me["credits"])) == ("alice@example.test", 42.5)
        tasks = client.get("/api/v1/tasks", headers=headers).json()
        assert [t["name"] for t in tasks["tasks"]] == ["old reminder"]
        events = client.get("/api/v1/events", params={"event_type": "old.event"}, headers=headers).json()
        assert [e["event_type"] for e in events["events"]] == ["old.event"]
        sessions = client.get("/api/v1/users/me/sessions", headers=headers).json()["data"]
        assert [s["title"] for s in sessions["sessions"]] == ["an old conversation"]
    with psycopg.connect(empty_db_url) as conn:  # 0019 backfilled the postings of knowledge stored before it
        postings = conn.execute(
            "SELECT count(*) FROM user_knowledge_postings WHERE user_id = 'old-alice' AND term = 'greenhous'"
        ).fetchone()
    assert postings == (1,)
