"""The original's event:// resources over real MCP: the caller's own tasks, status and example configs."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from mcp.shared.exceptions import MCPError

from isa.app import create_app
from isa.core.settings import Settings
from tests.support.auth import create_key
from tests.support.mcp_servers import mcp_client, serve_asgi
from tests.support.memory import call, read

pytestmark = pytest.mark.anyio


@dataclass(frozen=True)
class Node:
    url: str
    dana: str
    eli: str


@pytest.fixture(scope="module")
def node(settings: Settings, db_url: str) -> Iterator[Node]:
    dana = create_key(db_url, settings, "evres-dana", "write")
    eli = create_key(db_url, settings, "evres-eli", "write")
    with serve_asgi(create_app(settings, "mcp", database_url=db_url)) as url:
        yield Node(url, dana, eli)


async def test_the_five_event_resources_are_listed(node: Node) -> None:
    async with mcp_client(node.url, node.dana) as client:
        uris = {str(r.uri) for r in (await client.list_resources()).resources}
        templates = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
    assert {"event://tasks", "event://status", "event://tasks/active", "event://config/examples"} <= uris
    assert "event://tasks/by-type/{task_type}" in templates


async def test_task_resources_show_only_the_callers_tasks(node: Node) -> None:
    daily = {"schedule_type": "daily", "time": "08:30", "timezone": "UTC"}
    made = await call(node.url, node.dana, "create_background_task", {"task_type": "schedule", "config": daily})
    paused = await call(node.url, node.dana, "create_background_task", {"task_type": "schedule", "config": daily})
    await call(node.url, node.dana, "control_background_task", {"task_id": paused["task_id"], "action": "pause"})

    tasks = await read(node.url, node.dana, "event://tasks")
    assert {t["task_id"] for t in tasks["tasks"]} == {made["task_id"], paused["task_id"]}
    active = await read(node.url, node.dana, "event://tasks/active")
    assert [t["task_id"] for t in active["tasks"]] == [made["task_id"]]
    by_type = await read(node.url, node.dana, "event://tasks/by-type/schedule")
    assert by_type["count"] == 2
    assert (await read(node.url, node.dana, "event://tasks/by-type/web_monitor"))["count"] == 0
    with pytest.raises(MCPError, match="unknown task type"):
        await read(node.url, node.dana, "event://tasks/by-type/nonsense")

    assert (await read(node.url, node.eli, "event://tasks"))["tasks"] == []
    assert (await read(node.url, node.eli, "event://tasks/by-type/schedule"))["count"] == 0
    status = await read(node.url, node.dana, "event://status")
    assert status["service"] == "isa.events"


async def test_every_example_config_is_accepted_by_create_background_task(node: Node) -> None:
    examples = await read(node.url, node.eli, "event://config/examples")
    assert set(examples["task_types"]) == {"web_monitor", "schedule", "news_digest", "threshold_watch"}
    for task_type, config in examples["examples"].items():
        made = await call(node.url, node.eli, "create_background_task", {"task_type": task_type, "config": config})
        # Paused at once: the example URLs are placeholders, not something a worker should fetch.
        await call(node.url, node.eli, "control_background_task", {"task_id": made["task_id"], "action": "pause"})
    assert (await read(node.url, node.eli, "event://tasks/active"))["tasks"] == []
