"""A5 items 24, 26, 27, 28 for background tasks: user B can't see, change, run or delete A's task, over REST or MCP."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
import pytest

from isa.app import create_app
from isa.core.settings import Settings
from tests.support.auth import create_key
from tests.support.events import events_settings
from tests.support.mcp_servers import mcp_client, serve_asgi, sql

SCHEDULE = {"task_type": "schedule", "config": {"interval_minutes": 60, "message": "alice's reminder"}}


@dataclass(frozen=True)
class Node:
    url: str
    alice: str
    bob: str


@pytest.fixture(scope="module")
def node(settings: Settings, db_url: str) -> Iterator[Node]:
    alice, bob = create_key(db_url, settings, "task-alice"), create_key(db_url, settings, "task-bob")
    with serve_asgi(create_app(events_settings(settings), "mcp", database_url=db_url)) as url:
        yield Node(url, alice, bob)


def http(node: Node, key: str) -> httpx.Client:
    return httpx.Client(base_url=node.url, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def alices_task(node: Node) -> dict[str, Any]:
    with http(node, node.alice) as alice:
        response = alice.post("/api/v1/tasks", json=SCHEDULE)
    assert response.status_code == 201, response.text
    task: dict[str, Any] = response.json()
    return task


def row(db_url: str, task_id: str) -> list[dict[str, Any]]:
    return sql(
        db_url,
        "SELECT user_id, status, next_check, config, run_count, last_check FROM user_tasks WHERE id = %s",
        (task_id,),
    )


def test_a5_24_user_b_gets_404_for_user_a_task_by_id_same_as_an_unknown_id(node: Node) -> None:
    task = alices_task(node)
    with http(node, node.bob) as bob:
        theirs = bob.get(f"/api/v1/tasks/{task['task_id']}")
        unknown = bob.get(f"/api/v1/tasks/{uuid.uuid4()}")
    assert theirs.status_code == unknown.status_code == 404
    assert theirs.json()["error"]["code"] == unknown.json()["error"]["code"] == "not_found"
    assert theirs.json()["error"]["message"] == unknown.json()["error"]["message"]  # nothing tells them apart


def test_a5_26_user_b_listing_tasks_with_owner_filters_sees_only_their_own(node: Node) -> None:
    task = alices_task(node)
    with http(node, node.bob) as bob:
        own = bob.post("/api/v1/tasks", json={**SCHEDULE, "name": "bob's"}).json()
        plain = bob.get("/api/v1/tasks").json()
        smuggled = bob.get("/api/v1/tasks", params={"user_id": "task-alice"})
        owner = bob.get("/api/v1/tasks", params={"owner": "task-alice"})
    assert [t["task_id"] for t in plain["tasks"]] == [own["task_id"]]
    assert task["task_id"] not in str(plain)
    assert smuggled.status_code == owner.status_code == 422  # unknown filters are refused, never applied


@pytest.mark.parametrize(
    ("method", "suffix"),
    [("POST", "/pause"), ("POST", "/resume"), ("POST", "/run"), ("DELETE", "")],
)
def test_a5_27_user_b_cannot_pause_resume_run_or_delete_user_a_task_and_the_row_is_unchanged(
    node: Node, db_url: str, method: str, suffix: str
) -> None:
    task = alices_task(node)
    with http(node, node.alice) as alice:  # a paused task, so that a successful resume or run would show
        assert alice.post(f"/api/v1/tasks/{task['task_id']}/pause").status_code == 200
    before = row(db_url, task["task_id"])
    with http(node, node.bob) as bob:
        response = bob.request(method, f"/api/v1/tasks/{task['task_id']}{suffix}")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    assert row(db_url, task["task_id"]) == before and before[0]["status"] == "paused"


def test_a5_27_user_b_cannot_control_user_a_task_over_mcp_either(node: Node, db_url: str) -> None:
    task = alices_task(node)
    before = row(db_url, task["task_id"])

    async def attempts() -> list[Any]:
        async with mcp_client(node.url, node.bob) as bob:
            return [
                await bob.call_tool("control_background_task", {"task_id": task["task_id"], "action": action})
                for action in ("pause", "run", "delete")
            ]

    results = anyio.run(attempts)
    assert all(r.is_error and "not found" in str(r.content) for r in results)
    assert row(db_url, task["task_id"]) == before


def test_a5_28_a_task_body_naming_another_owner_or_server_fields_is_refused(node: Node, db_url: str) -> None:
    def counts() -> list[dict[str, Any]]:
        return sql(db_url, "SELECT user_id, count(*) AS n FROM user_tasks GROUP BY user_id ORDER BY user_id")

    before = counts()
    with http(node, node.bob) as bob:
        answers = [
            bob.post("/api/v1/tasks", json={**SCHEDULE, field: value})
            for field, value in (
                ("user_id", "task-alice"),
                ("status", "active"),
                ("run_count", 99),
                ("created_at", "2020-01-01T00:00:00Z"),
            )
        ]
    assert all(a.status_code == 422 and a.json()["error"]["code"] == "invalid_request" for a in answers)
    assert counts() == before
