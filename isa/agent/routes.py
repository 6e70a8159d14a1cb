"""HTTP of the agent role: chat (SSE), resume, non-streamed chat, event callbacks, sessions, plans."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from isa.agent import schemas
from isa.agent.events import ChatStream, Emitter
from isa.agent.readiness import chat_model_status
from isa.agent.service import AgentService, Prepared
from isa.agent.sessions import AgentSessions
from isa.agent.store import plan_view
from isa.auth import rate_limit, require_principal
from isa.auth.principal import Principal
from isa.core.errors import ApiError, request_id_of
from isa.core.http import invalid, json_body, json_response, query_params, requires, route_table

M = TypeVar("M", bound=BaseModel)


def _service(request: Request) -> AgentService:
    service: AgentService = request.app.state.isa.get("agent", AgentService)
    return service


def _sessions(request: Request) -> AgentSessions:
    sessions: AgentSessions = request.app.state.isa.get("agent.sessions", AgentSessions)
    return sessions


async def _chat_rate(request: Request, principal: Principal) -> None:
    """The chat's own budget per caller, on top of the per-principal one every request draws on."""
    limit = _service(request).settings.chat_rate_limit_per_minute
    if limit:
        await rate_limit(request, principal, "agent-chat", limit, 60)


def _stream(service: AgentService, prepared: Prepared) -> ChatStream:
    async def worker(emit: Emitter) -> None:
        await service.execute(prepared, emit)

    return ChatStream(worker, prepared.session_id, service.settings.heartbeat_seconds, resumed=prepared.resumed)


@requires(require_principal, "write")
async def chat(request: Request, principal: Principal) -> Response:
    """POST /api/chat: one turn, streamed as SSE events ending with `data: [DONE]`."""
    await _chat_rate(request, principal)
    body = await json_body(request, schemas.ChatBody, empty_ok=True)
    service = _service(request)
    return _stream(service, await service.prepare_chat(principal, body, request_id_of(request)))


@requires(require_principal, "write")
async def resume(request: Request, principal: Principal) -> Response:
    """POST /api/chat/resume: continue the session's run that waits for a human (also after a restart)."""
    await _chat_rate(request, principal)
    body = await json_body(request, schemas.ResumeBody, empty_ok=True)
    service = _service(request)
    prepared = await service.prepare_resume(principal, body.session_id, body.resume_value, request_id_of(request))
    return _stream(service, prepared)


async def _collect(service: AgentService, prepared: Prepared) -> dict[str, Any]:
    emit = Emitter(None, prepared.session_id, prepared.resumed)
    return await service.execute(prepared, emit)


def _plain(result: dict[str, Any]) -> JSONResponse:
    status = 200 if result["error"] is None else 502
    return JSONResponse({"success": result["error"] is None, **result}, status_code=status)


@requires(require_principal, "write")
async def chat_message(request: Request, principal: Principal) -> Response:
    """POST /api/chat/message: the same turn without streaming -> {response, processing_time, model, ...}."""
    await _chat_rate(request, principal)
    body = await json_body(request, schemas.ChatBody, empty_ok=True)
    service = _service(request)
    return _plain(await _collect(service, await service.prepare_chat(principal, body, request_id_of(request))))


@requires(require_principal, "write")
async def event_callback(request: Request, principal: Principal) -> Response:
    """POST /api/chat/event_callback: a background task's event, handed to the agent as its owner."""
    await _chat_rate(request, principal)
    event = await json_body(request, schemas.EventCallbackBody, empty_ok=True)
    details = json.dumps(event.data, ensure_ascii=False, default=str)[:20_000]
    text = event.message or f"Background event '{event.event_type}'" + (
        f" of task {event.task_id}" if event.task_id else ""
    )
    chat_body = schemas.ChatBody(
        message=f"{text}\nEvent data: {details}", session_id=event.session_id, idempotency_key=event.idempotency_key
    )
    service = _service(request)
    result = await _collect(service, await service.prepare_chat(principal, chat_body, request_id_of(request)))
    return _plain({**result, "event_type": event.event_type, "task_id": event.task_id})


@requires(require_principal, "read")
async def config(request: Request, principal: Principal) -> Response:
    """GET /api/chat/config: who the caller is, where the page sends uploads and approvals, whether a model answers."""
    service = _service(request)
    return JSONResponse(
        {
            "user_id": principal.user_id,
            "scopes": sorted(principal.scopes),
            "mcp_base_url": service.settings.public_mcp_url.rstrip("/"),
            "heartbeat_seconds": service.settings.heartbeat_seconds,
            "chat_model": await chat_model_status(service.upstreams, service.settings, principal),
        },
        headers={"Cache-Control": "no-store"},
    )


@requires(require_principal, "read")
async def plan_status(request: Request, principal: Principal) -> Response:
    """GET /api/chat/plans/{plan_id}: the stored state of one of the caller's plans."""
    plan = await _sessions(request).plan(principal.user_id, request.path_params["plan_id"])
    if plan is None:
        raise ApiError(404, "plan_not_found", "no such plan")
    return json_response(plan_view(plan))


# -- sessions ---------------------------------------------------------------------------------


@requires(require_principal, "write")
async def create_session(request: Request, principal: Principal) -> Response:
    if request.headers.get("content-type", "").startswith("application/json"):
        body = await json_body(request, schemas.SessionCreateBody, empty_ok=True)
    else:  # the original sent title and metadata (JSON text) as query parameters
        params = dict(request.query_params)
        try:
            params["metadata"] = json.loads(params.get("metadata") or "{}")
        except ValueError:
            raise ApiError(422, "invalid_request", "metadata must be a JSON object") from None
        body = _query_from(params)
    return JSONResponse(await _sessions(request).create(principal.user_id, body), status_code=201)


def _query_from(params: dict[str, Any]) -> schemas.SessionCreateBody:
    try:
        return schemas.SessionCreateBody.model_validate(params)
    except ValidationError as exc:
        raise invalid(exc, "query string") from None


@requires(require_principal, "read")
async def list_sessions(request: Request, principal: Principal) -> Response:
    query = query_params(request, schemas.SessionListQuery)
    return JSONResponse(await _sessions(request).list(principal.user_id, query))


@requires(require_principal, "read")
async def active_sessions(request: Request, principal: Principal) -> Response:
    """GET /api/sessions/active: the caller's active sessions (the original's route)."""
    q = query_params(request, schemas.ActiveSessionsQuery)
    query = schemas.SessionListQuery(limit=q.limit, offset=q.offset, status="active")
    return JSONResponse(await _sessions(request).list(principal.user_id, query))


@requires(require_principal, "read")
async def search_sessions(request: Request, principal: Principal) -> Response:
    """GET /api/sessions/search?query=: the caller's sessions whose title or summary mention the text."""
    q = query_params(request, schemas.SessionSearchQuery)
    query = schemas.SessionListQuery(limit=q.limit, offset=q.offset, search=q.query)
    return JSONResponse(await _sessions(request).list(principal.user_id, query))


@requires(require_principal, "read")
async def get_context(request: Request, principal: Principal) -> Response:
    return JSONResponse(await _sessions(request).context(principal.user_id, request.path_params["session_id"]))


@requires(require_principal, "write")
async def put_context(request: Request, principal: Principal) -> Response:
    body = await json_body(request, schemas.SessionContextBody)
    sessions = _sessions(request)
    return JSONResponse(await sessions.context(principal.user_id, request.path_params["session_id"], body.context))


@requires(require_principal, "write")
async def delete_context(request: Request, principal: Principal) -> Response:
    return JSONResponse(await _sessions(request).context(principal.user_id, request.path_params["session_id"], {}))


@requires(require_principal, "read")
async def session_stats(request: Request, principal: Principal) -> Response:
    return JSONResponse(await _sessions(request).stats(principal.user_id, request.path_params["session_id"]))


@requires(require_principal, "read")
async def get_session(request: Request, principal: Principal) -> Response:
    include = request.query_params.get("include_history", "true").lower() not in ("0", "false", "no")
    limit = query_params(request, schemas.MessagesQuery).limit
    out = await _sessions(request).get(principal.user_id, request.path_params["session_id"], include, limit)
    return JSONResponse(out)


@requires(require_principal, "write")
async def update_session(request: Request, principal: Principal) -> Response:
    body = await json_body(request, schemas.SessionUpdateBody, empty_ok=True)
    return JSONResponse(await _sessions(request).update(principal.user_id, request.path_params["session_id"], body))


@requires(require_principal, "write")
async def delete_session(request: Request, principal: Principal) -> Response:
    return JSONResponse(await _sessions(request).delete(principal.user_id, request.path_params["session_id"]))


@requires(require_principal, "read")
async def session_messages(request: Request, principal: Principal) -> Response:
    query = query_params(request, schemas.MessagesQuery)
    return JSONResponse(await _sessions(request).messages(principal.user_id, request.path_params["session_id"], query))


@requires(require_principal, "read")
async def export_session(request: Request, principal: Principal) -> Response:
    fmt = query_params(request, schemas.ExportQuery).format
    text, media_type, name = await _sessions(request).export(principal.user_id, request.path_params["session_id"], fmt)
    headers = {"Content-Disposition": f'attachment; filename="{name}"', "X-Content-Type-Options": "nosniff"}
    return Response(text, media_type=media_type, headers=headers)


ROUTES = route_table(
    "/api",
    {
        "POST /chat": chat,
        "POST /chat/resume": resume,
        "POST /chat/message": chat_message,
        "POST /chat/event_callback": event_callback,
        "GET /chat/config": config,
        "GET /chat/plans/{plan_id}": plan_status,
        "POST /sessions": create_session,
        "GET /sessions": list_sessions,
        # Before /{session_id}, which would otherwise take "active" and "search" as ids.
        "GET /sessions/active": active_sessions,
        "GET /sessions/search": search_sessions,
        "GET /sessions/{session_id}": get_session,
        "GET /sessions/{session_id}/stats": session_stats,
        "GET /sessions/{session_id}/context": get_context,
        "PUT /sessions/{session_id}/context": put_context,
        "DELETE /sessions/{session_id}/context": delete_context,
        "PUT /sessions/{session_id}": update_session,
        "DELETE /sessions/{session_id}": delete_session,
        "GET /sessions/{session_id}/messages": session_messages,
        "GET /sessions/{session_id}/export": export_session,
    },
)
