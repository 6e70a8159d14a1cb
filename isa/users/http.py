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
from isa.core.logging import get_logger
from isa.core.openapi import ATTRIBUTE, Operation

log = get_logger(__name__)

M = TypeVar("M", bound=BaseModel)
Endpoint = Callable[[Request], Awaitable[Response]]
Scoped = Callable[[Request, Principal], Awaitable[Response]]


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

    The scope the docs show is the scope that is checked (Starlette's `requires` style): the handler never
    calls require_principal itself. Database input errors become 4xx, never 500.
    """
    scope = operation.scope
    if scope is None:
        raise ValueError(f"{operation.summary!r} has no scope: use public_api")

    def decorate(endpoint: Scoped) -> Endpoint:
        @functools.wraps(endpoint)
        async def wrapper(request: Request) -> Response:
            principal = await require_principal(request, scope)
            return await _translated(endpoint(request, principal))

        setattr(wrapper, ATTRIBUTE, operation)
        return wrapper

    return decorate


def public_api(operation: Operation) -> Callable[[Endpoint], Endpoint]:
    """`api` for an endpoint without a caller (the plan list, the signed Stripe webhook)."""

    def decorate(endpoint: Endpoint) -> Endpoint:
        @functools.wraps(endpoint)
        async def wrapper(request: Request) -> Response:
            return await _translated(endpoint(request))

        setattr(wrapper, ATTRIBUTE, operation)
        return wrapper

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
