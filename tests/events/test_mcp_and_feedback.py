"""The six event tools and event:// over MCP (owner-scoped), and the original's feedback contract over HTTP."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult

from isa.app import create_app
from isa.core.settings import Settings
from tests.events.conftest import Keys
from tests.support.events import FakeAgent, events_settings, fake_agent
from tests.support.mcp_servers import mcp_client, serve_asgi, sql
from tests.support.procs import wait_for


@pytest.fixture(scope="module")
def module_agent() -> Iterator[FakeAgent]:
    with fake_agent() as fake:
        yield fake


@pytest.fixture(scope="module")
def url(settings: Settings, db_url: str, keys: Keys, module_agent: FakeAgent) -> Iterator[str]:
    app = create_app(events_settings(settings, agent_url=module_agent.url), "mcp", database_url=db_url)
    with serve_asgi(app) as base:
        yield base


def data(result: CallToolResult) -> Any:
    assert not result.is_error, result
    assert result.structured_content is not None
    return result.structured_content["data"]


@pytest.mark.anyio
async def test_a_user_manages_only_their_own_background_tasks_over_mcp(url: str, keys: Keys) -> None:
    async with mcp_client(url, keys.alice) as alice:
        made = data(
            await alice.call_tool(
                "create_web_monitor_config",
                {"urls": ["https://example.org/a"], "keywords": ["launch"], "check_interval_minutes": 10},
            )
        )
        daily = data(
            await alice.call_tool(
                "create_background_task",
                {"task_type": "schedule", "config": {"schedule_type": "daily", "time": "09:00"}, "name": "daily"},
            )
        )
        bad = await alice.call_tool("create_background_task", {"task_type": "threshold_watch", "config": {}})
        paused = data(
            await alice.call_tool("control_background_task", {"task_id": daily["task_id"], "action": "pause"})
        )
        listed = data(await alice.call_tool("list_background_tasks", {}))
        status = data(await alice.call_tool("get_event_service_status", {}))
    assert made["task_type"] == "web_monitor" and made["interval_seconds"] == 600 and made["next_run"]
    assert bad.is_error
    assert paused["task"]["status"] == "paused" and paused["task"]["next_run"] is None
    assert {t["task_id"] for t in listed["tasks"]} >= {made["task_id"], daily["task_id"]}
    assert status["tasks"] >= 2 and status["agent_configured"] is True
    async with mcp_client(url, keys.bob) as bob:
        theirs = data(await bob.call_tool("list_background_tasks", {}))
        steal = await bob.call_tool("control_background_task", {"task_id": made["task_id"], "action": "delete"})
    assert made["task_id"] not in {t["task_id"] for t in theirs["tasks"]}
    assert steal.is_error and "not found" in str(steal.content)
    async with mcp_client(url, keys.alice) as alice:
        gone = data(await alice.call_tool("control_background_task", {"task_id": made["task_id"], "action": "delete"}))
        after = data(await alice.call_tool("list_background_tasks", {}))
    assert gone["task"] is None and made["task_id"] not in {t["task_id"] for t in after["tasks"]}


@pytest.mark.anyio
async def test_recent_events_and_event_resources_show_only_the_callers_events(url: str, keys: Keys) -> None:
    async with httpx.AsyncClient(base_url=url) as http:
        mine = await http.post(
            "/api/v1/events",
            json={"event_type": "mcp.seen", "data": {"n": 1}},
            headers={"Authorization": f"Bearer {keys.alice}"},
        )
    event_id = mine.json()["event_id"]
    async with mcp_client(url, keys.alice) as alice:
        recent = data(await alice.call_tool("get_recent_events", {"limit": 5, "event_type": "mcp.seen"}))
        resource = await alice.read_resource(f"event://{event_id}")
    assert [e["event_id"] for e in recent["events"]] == [event_id]
    assert json.loads(resource.contents[0].text)["data"] == {"n": 1}  # type: ignore[union-attr]
    async with mcp_client(url, keys.bob) as bob:
        assert data(await bob.call_tool("get_recent_events", {"event_type": "mcp.seen"}))["events"] == []
        with pytest.raises(MCPError):  # the same answer as for an id that does not exist
            await bob.read_resource(f"event://{event_id}")


def test_background_feedback_is_processed_now_and_a_concurrent_retry_gets_409_then_the_same_answer(
    url: str, keys: Keys, module_agent: FakeAgent, db_url: str
) -> None:
    headers = {"Authorization": f"Bearer {keys.alice}", "Idempotency-Key": "fb-1"}
    body = {"event_type": "web_content_change", "task_id": None, "data": {"url": "https://x", "user_id": "bob"}}
    module_agent.gate.clear()
    answers: list[httpx.Response] = []
    first = threading.Thread(
        target=lambda: answers.append(
            httpx.post(url + "/process_background_feedback", json=body, headers=headers, timeout=30)
        )
    )
    first.start()
    try:
        wait_for(
            lambda: any(c.get("metadata", {}).get("event_type") == "web_content_change" for c in module_agent.calls)
        )
        busy = httpx.post(url + "/event_callback", json=body, headers=headers, timeout=30)
    finally:
        module_agent.gate.set()
        first.join(30)
    assert busy.status_code == 409
    assert answers[0].status_code == 200 and answers[0].json()["status"] == "processed"
    again = httpx.post(url + "/process_background_feedback", json=body, headers=headers, timeout=30)
    assert again.json() == answers[0].json()
    rows = sql(db_url, "SELECT user_id, event_data FROM events WHERE idempotency_key = 'fb-1'")
    assert rows == [
        {"user_id": "alice", "event_data": {"url": "https://x"}}
    ]  # the owner is the caller, never data.user_id
    assert sum(1 for c in module_agent.calls if c.get("idempotency_key", "").startswith("event:")) >= 1
