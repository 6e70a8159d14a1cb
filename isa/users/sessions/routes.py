"""HTTP routes for the caller's sessions and their messages; another user's session is a 404."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from isa.auth.principal import Principal
from isa.core.http import json_body, query_params
from isa.core.openapi import Operation
from isa.users import schemas
from isa.users.http import api, envelope
from isa.users.sessions.service import SessionsService, parse_session_id

BASE = "/api/v1/users/me/sessions"
_TAGS = ("sessions",)
_SESSION_PATH = {"session_id": {"type": "string", "format": "uuid"}}


def _service(request: Request) -> SessionsService:
    service: SessionsService = request.app.state.isa.get("sessions", SessionsService)
    return service


def _session_id(request: Request) -> str:
    return parse_session_id(str(request.path_params["session_id"]))


@api(
    Operation(
        "Start a session", _TAGS, schemas.SessionCreate, None, schemas.Session, "write", status=201, errors=(404,)
    )
)
async def create_session(request: Request, principal: Principal) -> Response:
    body = await json_body(request, schemas.SessionCreate, empty_ok=True)
    return envelope(await _service(request).create(principal.user_id, body), 201)


@api(Operation("The caller's sessions", _TAGS, query=schemas.SessionQuery, response=schemas.SessionPage))
async def list_sessions(request: Request, principal: Principal) -> Response:
    query = query_params(request, schemas.SessionQuery)
    return envelope(await _service(request).list(principal.user_id, query))


@api(
    Operation(
        "A session with its first messages",
        _TAGS,
        query=schemas.MessageQuery,
        response=schemas.SessionWithMessages,
        errors=(404,),
        path_params=_SESSION_PATH,
    )
)
async def get_session(request: Request, principal: Principal) -> Response:
    query = query_params(request, schemas.MessageQuery)
    return envelope(await _service(request).get(principal.user_id, _session_id(request), query.limit))


@api(
    Operation(
        "Change a session's title, status or metadata",
        _TAGS,
        schemas.SessionUpdate,
        None,
        schemas.Session,
        "write",
        errors=(404,),
        path_params=_SESSION_PATH,
    )
)
async def update_session(request: Request, principal: Principal) -> Response:
    session_id = _session_id(request)
    body = await json_body(request, schemas.SessionUpdate, empty_ok=True)
    return envelope(await _service(request).update(principal.user_id, session_id, body))


@api(
    Operation(
        "Delete a session and its messages",
        _TAGS,
        response=schemas.Deleted,
        scope="write",
        errors=(404,),
        path_params=_SESSION_PATH,
    )
)
async def delete_session(request: Request, principal: Principal) -> Response:
    return envelope(await _service(request).delete(principal.user_id, _session_id(request)))


@api(
    Operation(
        "A session's messages in order",
        _TAGS,
        query=schemas.MessageQuery,
        response=schemas.MessagePage,
        errors=(404,),
        path_params=_SESSION_PATH,
    )
)
async def list_messages(request: Request, principal: Principal) -> Response:
    query = query_params(request, schemas.MessageQuery)
    return envelope(await _service(request).messages(principal.user_id, _session_id(request), query))


@api(
    Operation(
        "Append a message to a session",
        _TAGS,
        schemas.MessageCreate,
        None,
        schemas.Message,
        "write",
        status=201,
        errors=(404,),
        path_params=_SESSION_PATH,
    )
)
async def add_message(request: Request, principal: Principal) -> Response:
    session_id = _session_id(request)
    body = await json_body(request, schemas.MessageCreate, empty_ok=True)
    return envelope(await _service(request).add_message(principal.user_id, session_id, body), 201)


ROUTES = [
    Route(BASE, create_session, methods=["POST"]),
    Route(BASE, list_sessions, methods=["GET"]),
    Route(BASE + "/{session_id}", get_session, methods=["GET"]),
    Route(BASE + "/{session_id}", update_session, methods=["PUT"]),
    Route(BASE + "/{session_id}", delete_session, methods=["DELETE"]),
    Route(BASE + "/{session_id}/messages", list_messages, methods=["GET"]),
    Route(BASE + "/{session_id}/messages", add_message, methods=["POST"]),
]
