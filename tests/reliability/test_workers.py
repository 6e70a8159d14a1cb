"""`isa worker` processes on one database: a due task runs exactly once, and a killed worker's run is recovered."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from psycopg.types.json import Jsonb

from isa.core.settings import Settings
from tests.support.auth import create_key
from tests.support.events import Page, fake_page
from tests.support.mcp_servers import sql
from tests.support.procs import wait_for

NINE = "2026-03-02T09:00:00+00:00"
LEASE = 60


@pytest.fixture(scope="module")
def owner(settings: Settings, db_url: str) -> str:
    create_key(db_url, settings, "worker-owner", "write")
    return "worker-owner"


@pytest.fixture()
def page() -> Iterator[Page]:
    with fake_page() as fake:
        yield fake


def worker(db_url: str, data_dir: Path, now: str, name: str, batch: int = 10) -> subprocess.Popen[str]:
    """One `isa worker --once` process with its clock fixed at `now`."""
    env = {
        **os.environ,
        "ISA_ENV": "test",
        "ISA_DATA_DIR": str(data_dir),
        "ISA_DATABASE__URL": db_url,
        "ISA_EVENTS__EGRESS_ALLOW_CIDRS": "127.0.0.0/8",
        "ISA_EVENTS__LEASE_SECONDS": str(LEASE),
        "ISA_EVENTS__BATCH_SIZE": str(batch),
    }
    cmd = [sys.executable, "-m", "isa", "worker", "--once", "--now", now, "--worker-id", name]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def add_task(db_url: str, user: str, task_type: str, config: dict[str, Any], next_check: str) -> str:
    rows = sql(
        db_url,
        "INSERT INTO user_tasks (user_id, task_type, config, next_check) VALUES (%s, %s, %s, %s) RETURNING id",
        (user, task_type, Jsonb(config), next_check),
    )
    return str(rows[0]["id"])


def finished(proc: subprocess.Popen[str]) -> str:
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    return out


def test_tasks_due_at_nine_run_once_each_with_three_worker_processes(db_url: str, data_dir: Path, owner: str) -> None:
    daily = {"schedule_type": "daily", "time": "09:00", "message": "standup"}
    ids = [add_task(db_url, owner, "schedule", daily, NINE) for _ in range(12)]
    procs = [worker(db_url, data_dir, "2026-03-02T09:00:05+00:00", f"w{i}", batch=2) for i in range(3)]
    outputs = [finished(p) for p in procs]
    for _ in range(2):  # later rounds at the same moment find nothing left to do
        outputs.append(finished(worker(db_url, data_dir, "2026-03-02T09:00:06+00:00", "late")))
    runs = sql(
        db_url, "SELECT id, run_count, next_check, lease_owner FROM user_tasks WHERE id = ANY(%s::uuid[])", (ids,)
    )
    assert all(r["run_count"] == 1 and r["lease_owner"] is None for r in runs), runs
    assert {r["next_check"].isoformat() for r in runs} == {"2026-03-03T09:00:00+00:00"}
    events = sql(db_url, "SELECT task_id FROM events WHERE task_id = ANY(%s::uuid[])", (ids,))
    assert sorted(str(e["task_id"]) for e in events) == sorted(ids)  # one scheduled_trigger per task, no more
    total = sum(int(o.split("tasks_run=")[1].split()[0]) for o in outputs)
    assert total == 12


def test_a_killed_workers_task_is_taken_over_after_its_lease_and_runs_once(
    db_url: str, data_dir: Path, owner: str, page: Page
) -> None:
    page.body = "<p>CPU load: 97.5 %</p>"
    page.release.clear()  # the first worker's fetch hangs until we kill it
    task = add_task(db_url, owner, "threshold_watch", {"url": page.url, "above": 90}, NINE)
    first = worker(db_url, data_dir, "2026-03-02T09:00:00+00:00", "doomed")
    wait_for(lambda: page.hits >= 1, timeout=60)
    assert sql(db_url, "SELECT lease_owner FROM user_tasks WHERE id = %s", (task,))[0]["lease_owner"] == "doomed"
    first.kill()
    first.wait(10)
    page.release.set()
    # While the dead worker's lease is live, nobody else takes the task.
    assert "tasks_run=0" in finished(worker(db_url, data_dir, "2026-03-02T09:00:30+00:00", "early"))
    taken = finished(worker(db_url, data_dir, "2026-03-02T09:01:01+00:00", "rescuer"))
    assert "tasks_run=1" in taken
    row = sql(db_url, "SELECT * FROM user_tasks WHERE id = %s", (task,))[0]
    assert row["run_count"] == 1 and row["last_error"] is None and row["lease_owner"] is None
    assert row["last_check"].isoformat() == "2026-03-02T09:01:01+00:00"
    assert row["next_check"].isoformat() == "2026-03-02T09:16:01+00:00"  # threshold_watch: every 15 minutes
    events = sql(db_url, "SELECT event_type, event_data FROM events WHERE task_id = %s", (task,))
    assert [(e["event_type"], e["event_data"]["value"]) for e in events] == [("threshold_crossed", 97.5)]
