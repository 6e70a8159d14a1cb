"""End to end with real processes: a local page changes, the web_monitor task notices, the agent hears of it once.

`isa serve` mcp (the event service), model (in front of the scripted fake provider) and agent, plus one `isa worker`
(the job engine, as production runs it). The page lives on loopback and only its port is opened in the SSRF guard.
The task is created through the MCP tool as the user; time is not waited out: the task is due at once (baseline)
and `POST /api/v1/tasks/{id}/run` makes it due again after the page changed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from isa.core.settings import Settings
from tests.support.agent import FAKE_MODEL, new_user
from tests.support.deployment import Deployment, deploy_with_worker
from tests.support.events import Page, fake_page
from tests.support.fake_openai import FakeOpenAI, Reply
from tests.support.mcp_servers import mcp_client, sql
from tests.support.procs import wait_for

ANSWER = "The widget price dropped to 7 EUR; worth a look."


@dataclass
class World:
    nodes: Deployment
    page: Page
    fake: FakeOpenAI


@pytest.fixture(scope="module")
def world(data_dir: Path, db_url: str) -> Iterator[World]:
    with FakeOpenAI() as fake, fake_page() as page:
        port = page.url.split(":")[2].split("/")[0]
        events = {
            "ISA_EVENTS__EGRESS_ALLOW_HOSTS": f"127.0.0.1:{port}",  # the page's port only, not all of loopback
            "ISA_EVENTS__POLL_INTERVAL_SECONDS": "0.2",
            "ISA_EVENTS__MIN_INTERVAL_SECONDS": "1",  # so a run-now is allowed a second after the baseline
            "ISA_EVENTS__BACKOFF_BASE_SECONDS": "1",
        }
        with deploy_with_worker(data_dir, db_url, fake, mcp_env=events) as nodes:
            yield World(nodes, page, fake)


def call_tool(url: str, key: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    async def main() -> dict[str, Any]:
        async with mcp_client(url, key) as client:
            result = await client.call_tool(name, arguments)
        assert not result.is_error and result.structured_content is not None, result
        data: dict[str, Any] = result.structured_content["data"]
        return data

    return anyio.run(main)


def api(world: World, key: str) -> httpx.Client:
    return httpx.Client(base_url=world.nodes.mcp.url, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def task_when(http: httpx.Client, task_id: str, run_count: int) -> dict[str, Any] | None:
    task: dict[str, Any] = http.get(f"/api/v1/tasks/{task_id}").json()
    return task if task["run_count"] >= run_count else None


def mentions(fake: FakeOpenAI, marker: str) -> int:
    """Chat completions the provider received whose messages carry `marker`."""
    return sum(1 for r in fake.requests_for(FAKE_MODEL) if marker in str(r.body.get("messages")))


def test_a_page_change_becomes_one_event_the_owners_agent_answers_once_and_only_the_owner_sees_it(
    world: World, settings: Settings, db_url: str
) -> None:
    owner, key = new_user(db_url, settings, credits=100)
    _, other_key = new_user(db_url, settings, credits=100)
    marker = f"marker-{uuid.uuid4().hex[:8]}"
    world.page.body = "<h1>Widget</h1><p>Widget costs 10 EUR</p>"
    world.fake.script(FAKE_MODEL, Reply(text=ANSWER))
    task = call_tool(
        world.nodes.mcp.url,
        key,
        "create_background_task",
        {"task_type": "web_monitor", "config": {"urls": [world.page.url], "check_interval_minutes": 30}, "name": "w"},
    )
    with api(world, key) as http:
        baseline = wait_for(lambda: task_when(http, task["task_id"], 1), timeout=30)
        assert baseline["last_error"] is None, world.nodes.logs()
        assert http.get("/api/v1/events", params={"task_id": task["task_id"]}).json()["events"] == []  # first sight

        world.page.body = f"<h1>Widget</h1><p>Widget now 7 EUR ({marker})</p>"
        hits = world.page.hits
        wait_for(lambda: http.post(f"/api/v1/tasks/{task['task_id']}/run").status_code == 202, timeout=10)
        processed = wait_for(
            lambda: [
                e
                for e in http.get("/api/v1/events", params={"task_id": task["task_id"]}).json()["events"]
                if e["status"] in ("processed", "failed")
            ],
            timeout=60,
        )
        assert world.page.hits > hits
        # Once more with the page unchanged: the worker runs the task (and its event queue) again, nothing new.
        wait_for(lambda: http.post(f"/api/v1/tasks/{task['task_id']}/run").status_code == 202, timeout=10)
        third = wait_for(lambda: task_when(http, task["task_id"], 3), timeout=30)
        events = http.get("/api/v1/events", params={"task_id": task["task_id"]}).json()["events"]
        one = http.get(f"/api/v1/events/{processed[0]['event_id']}").json()

    assert len(events) == 1, events
    event = events[0]
    assert event["status"] == "processed", (event, world.nodes.logs())
    assert event["event_type"] == "web_content_change" and event["source"] == "web_monitor"
    assert event["data"]["url"] == world.page.url and marker in event["data"]["excerpt"]
    assert event["agent_response"] == ANSWER and event["attempts"] == 1 and one == event
    assert third["last_error"] is None and third["run_count"] == 3
    assert len(sql(db_url, "SELECT id FROM events WHERE task_id = %s", (task["task_id"],))) == 1

    # The agent was called once, as the event's owner: its session rows belong to the owner, and the provider
    # saw the change exactly once.
    turn = sql(
        db_url,
        "SELECT user_id, role, content FROM session_messages WHERE idempotency_key LIKE %s ORDER BY seq",
        (f"event:{event['event_id']}:%",),
    )
    assert [(r["user_id"], r["role"]) for r in turn] == [(owner, "user"), (owner, "assistant")]
    assert marker in turn[0]["content"] and turn[1]["content"] == ANSWER
    assert mentions(world.fake, marker) == 1
    charged = sql(db_url, "SELECT count(*) AS n FROM user_credit_transactions WHERE user_id = %s "
                  "AND description = 'agent chat'", (owner,))  # fmt: skip
    assert charged == [{"n": 1}]

    # The owner sees the event with the answer, over MCP and REST; another user sees nothing of it.
    recent = call_tool(world.nodes.mcp.url, key, "get_recent_events", {"event_type": "web_content_change"})
    assert [(e["event_id"], e["agent_response"]) for e in recent["events"]] == [(event["event_id"], ANSWER)]
    theirs = call_tool(world.nodes.mcp.url, other_key, "get_recent_events", {"limit": 100})
    assert event["event_id"] not in str(theirs)
    with api(world, other_key) as http:
        assert event["event_id"] not in http.get("/api/v1/events", params={"limit": 500}).text
        assert http.get(f"/api/v1/events/{event['event_id']}").status_code == 404
        assert http.get(f"/api/v1/tasks/{task['task_id']}").status_code == 404


def test_a_monitor_of_another_loopback_port_is_blocked_because_only_the_pages_port_is_allowed(
    world: World, settings: Settings, db_url: str
) -> None:
    user, key = new_user(db_url, settings, credits=0)
    inside = world.nodes.mcp.url + "/health"  # loopback, but not the allowed port

    async def create() -> Any:
        async with mcp_client(world.nodes.mcp.url, key) as client:
            return await client.call_tool("create_web_monitor_config", {"urls": [inside]})

    # Refused when the task is made (issue 16, I4), before any run could try it; no task is stored.
    result = anyio.run(create)
    assert result.is_error and result.structured_content is not None, result
    assert "blocked: 127.0.0.1 is not a public address" in result.structured_content["error"]
    assert sql(db_url, "SELECT id FROM user_tasks WHERE user_id = %s", (user,)) == []
