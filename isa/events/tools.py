"""The original's six event tools and the event:// resources, always scoped to the calling user."""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError, ToolError
from pydantic import Field

from isa.core.errors import ApiError
from isa.events.service import EventService, event_out, task_out
from isa.mcp.context import current_call, request_principal
from isa.mcp.registry import Capabilities
from isa.mcp.resources import resource_service

capabilities = Capabilities("isa.events")
tool = capabilities.tool
TaskType = Literal["web_monitor", "schedule", "news_digest", "threshold_watch"]


def _service() -> tuple[str, EventService]:
    call = current_call()
    return call.principal.user_id, call.service("events", EventService)


def _uuid(value: str, what: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise ToolError(f"{what} not found") from None


async def _guard(coro: Any) -> Any:
    try:
        return await coro
    except ApiError as exc:
        raise ToolError(exc.message) from None


@tool(category="events", scope="write", keywords=["background", "task", "monitor", "schedule", "create"])
async def create_background_task(
    task_type: TaskType,
    config: dict[str, Any],
    name: str | None = None,
    description: str | None = None,
    callback_url: str | None = None,
) -> dict[str, Any]:
    """Create a durable background task: web_monitor, schedule, news_digest or threshold_watch."""
    user_id, service = _service()
    row = await _guard(
        service.create_task(
            user_id,
            task_type=task_type,
            name=name,
            description=description,
            config=config,
            callback_url=callback_url,
        )
    )
    return task_out(row)


@tool(category="events", keywords=["background", "task", "list", "monitor"])
async def list_background_tasks(
    status: Literal["active", "paused", "completed", "failed", "cancelled"] | None = None,
) -> dict[str, Any]:
    """Your background tasks with their last run, next run and last error."""
    user_id, service = _service()
    rows = await service.list_tasks(user_id, status)
    return {"tasks": [task_out(r) for r in rows], "count": len(rows)}


@tool(category="events", scope="write", keywords=["background", "task", "pause", "resume", "delete", "run"])
async def control_background_task(task_id: str, action: Literal["pause", "resume", "delete", "run"]) -> dict[str, Any]:
    """Pause, resume, delete or run now (the worker picks it up next round) one of your background tasks."""
    user_id, service = _service()
    row = await _guard(service.control_task(user_id, _uuid(task_id, "task"), action))
    return {"task_id": task_id, "action": action, "task": task_out(row) if row else None}


@tool(category="events", keywords=["event", "service", "status", "health"])
async def get_event_service_status() -> dict[str, Any]:
    """How the event service is doing for you: tasks, events waiting, failed, and where the worker runs."""
    user_id, service = _service()
    return dict(await service.status(user_id))


@tool(category="events", keywords=["event", "recent", "history"], untrusted_output=True)
async def get_recent_events(
    limit: Annotated[int, Field(ge=1, le=100)] = 10, event_type: str | None = None
) -> dict[str, Any]:
    """Your most recent events (newest first), optionally of one type."""
    user_id, service = _service()
    rows = await service.list_events(
        user_id, event_type=event_type, task_id=None, since=None, until=None, limit=limit, offset=0
    )
    return {"events": [event_out(r) for r in rows], "count": len(rows)}


@tool(category="events", scope="write", keywords=["web", "monitor", "page", "keywords", "watch"])
async def create_web_monitor_config(
    urls: Annotated[list[str], Field(min_length=1, max_length=20)],
    keywords: list[str] | None = None,
    check_interval_minutes: Annotated[int, Field(ge=1, le=10080)] = 30,
    name: str | None = None,
    callback_url: str | None = None,
) -> dict[str, Any]:
    """Watch web pages for changes (optionally only changes mentioning keywords); creates a web_monitor task."""
    config = {"urls": urls, "keywords": keywords or [], "check_interval_minutes": check_interval_minutes}
    return await create_background_task("web_monitor", config, name or "web monitor", None, callback_url)


@capabilities.resource("event://{event_id}", name="event", category="events", keywords=["event"])
async def event_resource(event_id: str, ctx: Context) -> str:
    """One of your events by id (another user's event is not found)."""
    principal = request_principal()
    if principal is None:
        raise ResourceNotFoundError("event not found")
    server: Any = ctx.mcp_server
    service = server.runner.state.get("events", EventService)
    try:
        row = await service.get_event(principal.user_id, _uuid(event_id, "event"))
    except (ApiError, ToolError):
        # An anticipated miss (unknown, malformed or another user's id): a clean "not found" to the client and
        # one INFO line, not the traceback the SDK logs at ERROR for any other exception.
        raise ResourceNotFoundError("event not found") from None
    return json.dumps(event_out(row), default=str)


# ---- the original's other event:// resources (issue #20): the caller's own tasks, through EventService only.

EXAMPLE_CONFIGS: dict[str, dict[str, Any]] = {
    "web_monitor": {"urls": ["https://example.com/pricing"], "keywords": ["price"], "check_interval_minutes": 60},
    "schedule": {"schedule_type": "daily", "time": "08:30", "timezone": "Europe/Berlin", "message": "Plan my day"},
    "news_digest": {"urls": ["https://example.com/news"], "keywords": ["ai"], "schedule_type": "daily",
                    "time": "07:00"},
    "threshold_watch": {"url": "https://example.com/api/price", "above": 100, "interval_minutes": 30},
}  # fmt: skip


def _events_ctx() -> tuple[str, EventService]:
    return resource_service("events", EventService)


def _tasks(rows: list[dict[str, Any]]) -> str:
    return json.dumps({"tasks": [task_out(r) for r in rows], "count": len(rows)}, default=str)


@capabilities.resource("event://tasks", name="event_tasks", category="events", keywords=["tasks", "background"])
async def tasks_resource() -> str:
    """Your background tasks (newest first, at most 100)."""
    user_id, service = _events_ctx()
    return _tasks(await service.list_tasks(user_id))


@capabilities.resource("event://tasks/active", name="event_tasks_active", category="events", keywords=["active"])
async def active_tasks_resource() -> str:
    """Your active background tasks."""
    user_id, service = _events_ctx()
    return _tasks(await service.list_tasks(user_id, "active"))


@capabilities.resource("event://status", name="event_status", category="events", keywords=["status", "events"])
async def status_resource() -> str:
    """The event service's state and your counts of events and tasks."""
    user_id, service = _events_ctx()
    return json.dumps(await service.status(user_id), default=str)


@capabilities.resource(
    "event://config/examples", name="event_config_examples", category="events", keywords=["examples", "config"]
)
async def config_examples_resource() -> str:
    """A valid config for each background task type, to copy into create_background_task."""
    _events_ctx()
    return json.dumps({"task_types": list(EXAMPLE_CONFIGS), "examples": EXAMPLE_CONFIGS})


@capabilities.resource(
    "event://tasks/by-type/{task_type}", name="event_tasks_by_type", category="events", keywords=["tasks", "type"]
)
async def tasks_by_type_resource(task_type: str) -> str:
    """Your background tasks of one type (web_monitor, schedule, news_digest, threshold_watch)."""
    if task_type not in EXAMPLE_CONFIGS:
        raise ResourceError(f"unknown task type {task_type!r}")
    user_id, service = _events_ctx()
    return _tasks(await service.list_tasks(user_id, task_type=task_type))
