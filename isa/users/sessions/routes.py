"""HTTP routes for the caller's sessions and their messages; another user's session is a 404."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from isa.auth.principal import Principal
from isa.core.http import json_body, route_table
from isa.core.openapi import Operation
from isa.users.http import Endpoint, api, envelope, handler
from isa.users.sessions import schemas
from isa.users.sessions.service import SessionsService, parse_session_id

BASE = "/api/v1/users/me/sessions"
_TAGS = ("sessions",)
_SESSION_PATH = {"session_id": {"type": "string", "format": "uuid"}}
# The routes of one session: its id in the path; an unknown session (or another user's) is a 404.
_ONE: dict[str, Any] = {"errors": (404,), "path_params": _SESSION_PATH}
_WRITE = {"scope": "write", **_ONE}


def _service(request: Request) -> SessionsService:
    service: SessionsService = request.app.state.isa.get("sessions", SessionsService)
    return service


def _session_id(request: Request) -> str:
    return parse_session_id(str(request.path_params["session_id"]))


create_session = handler(
    Operation(
        "Start a session", _TAGS, schemas.SessionCreate, None, schemas.Session, "write", status=201, errors=(404,)
    ),
    lambda request, principal, body: _service(request).create(principal.user_id, body),
)
list_sessions = handler(
    Operation("The caller's sessions", _TAGS, query=schemas.SessionQuery, response=schemas.SessionPage),
    lambda request, principal, query: _service(request).list(principal.user_id, query),
)
get_session = handler(
    Operation(
        "A session with its first messages",
        _TAGS,
        query=schemas.MessageQuery,
        response=schemas.SessionWithMessages,
        **_ONE,
    ),
    lambda request, principal, query: _service(request).get(principal.user_id, _session_id(request), query.limit),
)


def _into_session(operation: Operation, write: Callable[..., Awaitable[Any]]) -> Endpoint:
    """A write into one session, `write(service, user_id, session_id, body)`: the id is checked before the body."""
    body_model = operation.body
    assert body_model is not None

    @api(operation)
    async def endpoint(request: Request, principal: Principal) -> Response:
        session_id = _session_id(request)
        body = await json_body(request, body_model, empty_ok=True)
        return envelope(await write(_service(request), principal.user_id, session_id, body), operation.status)

    return endpoint


update_session = _into_session(
    Operation(
        "Change a session's title, status or metadata",
        _TAGS,
        schemas.SessionUpdate,
        None,
        schemas.Session,
        "write",
        **_ONE,
    ),
    SessionsService.update,
)
delete_session = handler(
    Operation("Delete a session and its messages", _TAGS, response=schemas.Deleted, **_WRITE),
    lambda request, principal, _: _service(request).delete(principal.user_id, _session_id(request)),
)
list_messages = handler(
    Operation("A session's messages in order", _TAGS, query=schemas.MessageQuery, response=schemas.MessagePage, **_ONE),
    lambda request, principal, query: _service(request).messages(principal.user_id, _session_id(request), query),
)


add_message = _into_session(
    Operation(
        "Append a message to a session",
        _TAGS,
        schemas.MessageCreate,
        None,
        schemas.Message,
        "write",
        status=201,
        **_ONE,
    ),
    SessionsService.add_message,
)


ROUTES = route_table(
    BASE,
    {
        "POST": create_session,
        "GET": list_sessions,
        "GET /{session_id}": get_session,
        "PUT /{session_id}": update_session,
        "DELETE /{session_id}": delete_session,
        "GET /{session_id}/messages": list_messages,
        "POST /{session_id}/messages": add_message,
    },
)
