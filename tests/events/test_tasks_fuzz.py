"""Schemathesis against the /api/v1/tasks routes described in /openapi.json: no input makes them answer 500.

A module of its own (own database, no worker): the fuzzer creates tasks with arbitrary URLs, which nothing here runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from isa.app import create_app
from isa.core.settings import Settings
from tests.support.auth import create_key
from tests.support.events import events_settings
from tests.support.fuzz import run_schemathesis
from tests.support.mcp_servers import serve_asgi, settings_with, sql

TASK_ROUTES = r"^/api/v1/tasks"
TIME_BUDGET = 8


@pytest.fixture(scope="module")
def target(settings: Settings, db_url: str) -> Iterator[tuple[str, str, list[str]]]:
    """A node, a write key, and two tasks of that user (one for DELETE)."""
    key = create_key(db_url, settings, "fuzzer", "write")
    base = events_settings(settings)
    full = settings_with(base, auth={"rate_limit": {**base.raw["auth"]["rate_limit"], "principal_limit": 0}})
    with serve_asgi(create_app(full, "mcp", database_url=db_url)) as url:
        ids = []
        for name in ("keep", "delete"):
            made = httpx.post(
                url + "/api/v1/tasks",
                json={"task_type": "schedule", "config": {"interval_minutes": 60}, "name": name},
                headers={"Authorization": f"Bearer {key}"},
                timeout=10,
            )
            assert made.status_code == 201, made.text
            ids.append(made.json()["task_id"])
        yield url, key, ids


def test_schemathesis_finds_no_500_on_the_task_routes(target: tuple[str, str, list[str]], tmp_path: Path) -> None:
    url, key, (keep, delete) = target
    tested, report = run_schemathesis(
        url,
        key,
        tmp_path,
        paths=TASK_ROUTES,
        config=(
            f'[parameters]\n"path.task_id" = "{keep}"\n\n'
            f'[[operations]]\ninclude-method = "DELETE"\nparameters = {{ "path.task_id" = "{delete}" }}\n'
        ),
        max_examples=10,
        time_budget=TIME_BUDGET,
    )
    assert tested >= 7, report


def test_values_postgres_cannot_store_or_a_schedule_past_any_date_are_a_422_not_a_500(
    target: tuple[str, str, list[str]], db_url: str
) -> None:
    url, key, _ = target
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    bodies = [
        b'{"task_type": "schedule", "config": {"interval_minutes": 60}, "name": "a\\u0000b"}',
        b'{"task_type": "schedule", "config": {"message": "\\u0000"}}',
        b'{"task_type": "schedule", "config": {"interval_minutes": Infinity}}',
        b'{"task_type": "schedule", "config": {"interval_minutes": NaN}}',
        b'{"task_type": "schedule", "config": {"interval_minutes": 1e300}}',
        b'{"task_type": "web_monitor", "config": {"urls": ["http://127.0.0.1:1/"], "keywords": "sale"}}',
        b"\xff\xfe{",  # not UTF-8
    ]
    before = sql(db_url, "SELECT count(*) AS n FROM user_tasks")
    answers = [httpx.post(url + "/api/v1/tasks", content=body, headers=headers, timeout=10) for body in bodies]
    assert [a.status_code for a in answers] == [422] * len(bodies), [a.text for a in answers]
    assert {a.json()["error"]["code"] for a in answers} == {"invalid_request"}
    assert sql(db_url, "SELECT count(*) AS n FROM user_tasks") == before
