"""HTTP routes of background tasks (/api/v1/tasks): the MCP task tools' service calls, owner-scoped, over REST."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from isa.auth import require_principal
from isa.auth.principal import Principal
from isa.core.errors import ApiError
from isa.core.http import api, json_body, query_params, route_table
from isa.core.openapi import Operation
from isa.events.routes import _service
from isa.events.schemas import TaskIn, TaskQuery
from isa.events.service import task_out

Endpoint = Callable[[Request], Awaitable[Response]]
_NO_STORE = {"Cache-Control": "no-store"}
_TASK_ID = {"task_id": {"type": "string", "format": "uuid"}}


def _task_id(request: Request) -> str:
    return str(request.path_params["task_id"])  # the route's uuid converter already rejected anything else


@api(
    Operation("Create a background task", ("tasks",), body=TaskIn, scope="write", status=201, envelope=False),
    require_principal,
)
async def create_task(request: Request, principal: Principal) -> Response:
    """POST /api/v1/tasks: a web_monitor, schedule, news_digest or threshold_watch task; Idempotency-Key optional."""
    key = request.headers.get("idempotency-key")
    if key is not None and not 1 <= len(key) <= 255:
        raise ApiError(422, "invalid_request", "Idempotency-Key must be 1 to 255 characters")
    body = await json_body(request, TaskIn)
    row, created = await _service(request).create_task_once(principal.user_id, idempotency_key=key, **dict(body))
    # A retry with the same key and body gets the task made the first time, marked as a replay (like Stripe).
    headers = {**_NO_STORE, "Idempotent-Replayed": "false" if created else "true"} if key else _NO_STORE
    return JSONResponse(task_out(row), status_code=201, headers=headers)


@api(Operation("List your background tasks", ("tasks",), query=TaskQuery, envelope=False), require_principal)
async def list_tasks(request: Request, principal: Principal) -> Response:
    """GET /api/v1/tasks: the caller's tasks, newest first, by status and type, paged with limit/offset."""
    q = query_params(request, TaskQuery)
    rows = await _service(request).list_tasks(
        principal.user_id, q.status, limit=q.limit + 1, offset=q.offset, task_type=q.task_type
    )
    body: dict[str, Any] = {
        "tasks": [task_out(r) for r in rows[: q.limit]],
        "count": min(len(rows), q.limit),
        "limit": q.limit,
        "offset": q.offset,
        "has_more": len(rows) > q.limit,
    }
    return JSONResponse(body, headers=_NO_STORE)


@api(
    Operation("One background task", ("tasks",), errors=(404,), path_params=_TASK_ID, envelope=False), require_principal
)
async def get_task(request: Request, principal: Principal) -> Response:
    """GET /api/v1/tasks/{task_id}: status, last run, next run, run count and last error."""
    row = await _service(request).get_task(principal.user_id, _task_id(request))
    return JSONResponse(task_out(row), headers=_NO_STORE)


def _control(action: str, summary: str, errors: tuple[int, ...] = (404,)) -> Endpoint:
    async def control(request: Request, principal: Principal) -> Response:
        row = await _service(request).control_task(principal.user_id, _task_id(request), action)
        if row is None:  # deleted
            return Response(status_code=204)
        return JSONResponse(task_out(row), status_code=202 if action == "run" else 200, headers=_NO_STORE)

    control.__doc__ = summary
    control.__name__ = f"{action}_task"
    status = {"run": 202, "delete": 204}.get(action, 200)
    return api(
        Operation(
            summary, ("tasks",), scope="write", status=status, errors=errors, path_params=_TASK_ID, envelope=False
        ),
        require_principal,
    )(control)


pause_task = _control("pause", "Pause a background task (it keeps its state)")
resume_task = _control("resume", "Resume a paused background task")
delete_task = _control("delete", "Delete a background task")
run_task = _control("run", "Run a background task now (its worker picks it up next round)", (404, 409, 429))

ROUTES = route_table(
    "",
    {
        "POST /api/v1/tasks": create_task,
        "GET /api/v1/tasks": list_tasks,
        "GET /api/v1/tasks/{task_id:uuid}": get_task,
        "DELETE /api/v1/tasks/{task_id:uuid}": delete_task,
        "POST /api/v1/tasks/{task_id:uuid}/pause": pause_task,
        "POST /api/v1/tasks/{task_id:uuid}/resume": resume_task,
        "POST /api/v1/tasks/{task_id:uuid}/run": run_task,
    },
)
