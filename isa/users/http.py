"""HTTP plumbing of the user service: the success envelope and database-error translation (parsing: isa.core.http)."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import psycopg.errors
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from isa.auth import require_principal
from isa.auth.principal import Principal
from isa.core.errors import ApiError
from isa.core.http import api as checked_api
from isa.core.http import json_body, query_params
from isa.core.logging import get_logger
from isa.core.openapi import Operation, described

log = get_logger(__name__)

M = TypeVar("M", bound=BaseModel)
Endpoint = Callable[[Request], Awaitable[Response]]
Scoped = Callable[[Request, Principal], Awaitable[Response]]
# One service call of a route: the request, the verified caller and the operation's parsed input (None: none).
Call = Callable[[Request, Principal, Any], Awaitable[Any]]


def envelope(data: Any, status: int = 200) -> JSONResponse:
    """The original user service's success shape: {"success": true, "data": ..., "timestamp": ...}."""
    if isinstance(data, BaseModel):
        data = data.model_dump(mode="json")
    elif isinstance(data, list):
        data = [d.model_dump(mode="json") if isinstance(d, BaseModel) else d for d in data]
    body = {"success": True, "data": data, "timestamp": datetime.now(UTC).isoformat()}
    return JSONResponse(body, status_code=status)


def api(operation: Operation) -> Callable[[Scoped], Endpoint]:
    """Describe an endpoint for /openapi.json and hand it the caller, checked for the operation's scope.

    isa.core.http.api with the auth domain's principal (the scope the docs show is the scope that is checked),
    plus the users service's translation of database input errors into 4xx, never 500.
    """

    def decorate(endpoint: Scoped) -> Endpoint:
        @functools.wraps(endpoint)
        async def translated(request: Request, principal: Principal) -> Response:
            return await _translated(endpoint(request, principal))

        return checked_api(operation, require_principal)(translated)

    return decorate


def handler(operation: Operation, call: Call) -> Endpoint:
    """An endpoint that is one service call: the operation's body (an empty body is {}) or query string, parsed
    with its model, goes to `call` with the caller; the result comes back in the envelope with the operation's status.
    """

    async def endpoint(request: Request, principal: Principal) -> Response:
        data: Any = None
        if operation.body is not None:
            data = await json_body(request, operation.body, empty_ok=True)
        elif operation.query is not None:
            data = query_params(request, operation.query)
        return envelope(await call(request, principal, data), operation.status)

    return api(operation)(endpoint)


def public_api(operation: Operation) -> Callable[[Endpoint], Endpoint]:
    """`api` for an endpoint without a caller (the plan list, the signed Stripe webhook)."""

    def decorate(endpoint: Endpoint) -> Endpoint:
        @functools.wraps(endpoint)
        async def wrapper(request: Request) -> Response:
            return await _translated(endpoint(request))

        return described(operation)(wrapper)

    return decorate


async def _translated(response: Awaitable[Response]) -> Response:
    try:
        return await response
    except psycopg.errors.ForeignKeyViolation:
        raise ApiError(404, "not_found", "a referenced object does not exist") from None
    except psycopg.errors.UniqueViolation:
        raise ApiError(409, "conflict", "this conflicts with an existing object") from None
    except (psycopg.errors.CheckViolation, psycopg.errors.DataError) as exc:
        log.info("rejected_by_database", error=type(exc).__name__)
        raise ApiError(422, "invalid_request", "a value is out of the allowed range") from None
