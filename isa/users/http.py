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

from isa.core.errors import ApiError
from isa.core.logging import get_logger
from isa.core.openapi import ATTRIBUTE, Operation

log = get_logger(__name__)

M = TypeVar("M", bound=BaseModel)
Endpoint = Callable[[Request], Awaitable[Response]]


def envelope(data: Any, status: int = 200) -> JSONResponse:
    """The original user service's success shape: {"success": true, "data": ..., "timestamp": ...}."""
    if isinstance(data, BaseModel):
        data = data.model_dump(mode="json")
    elif isinstance(data, list):
        data = [d.model_dump(mode="json") if isinstance(d, BaseModel) else d for d in data]
    body = {"success": True, "data": data, "timestamp": datetime.now(UTC).isoformat()}
    return JSONResponse(body, status_code=status)


def api(operation: Operation) -> Callable[[Endpoint], Endpoint]:
    """Describe an endpoint for /openapi.json and turn database input errors into 4xx, never 500."""

    def decorate(endpoint: Endpoint) -> Endpoint:
        @functools.wraps(endpoint)
        async def wrapper(request: Request) -> Response:
            try:
                return await endpoint(request)
            except psycopg.errors.ForeignKeyViolation:
                raise ApiError(404, "not_found", "a referenced object does not exist") from None
            except psycopg.errors.UniqueViolation:
                raise ApiError(409, "conflict", "this conflicts with an existing object") from None
            except (psycopg.errors.CheckViolation, psycopg.errors.DataError) as exc:
                log.info("rejected_by_database", error=type(exc).__name__)
                raise ApiError(422, "invalid_request", "a value is out of the allowed range") from None

        setattr(wrapper, ATTRIBUTE, operation)
        return wrapper

    return decorate
