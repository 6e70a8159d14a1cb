"""HTTP plumbing of the user service: the success envelope, strict parsing, and database-error translation."""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import psycopg.errors
from pydantic import BaseModel, ValidationError
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


def invalid(exc: ValidationError, where: str) -> ApiError:
    # No input echo: a rejected field may hold a secret the caller pasted by mistake.
    details = exc.errors(include_url=False, include_context=False, include_input=False)
    return ApiError(422, "invalid_request", f"the {where} is not valid", details=details)


async def body_of(request: Request, model: type[M]) -> M:
    """The JSON body as `model`; an empty body is {}; bad JSON or fields → 422."""
    raw = await request.body()
    try:
        data = json.loads(raw) if raw.strip() else {}
    except (ValueError, RecursionError):
        raise ApiError(422, "invalid_request", "the body is not valid JSON") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid(exc, "body") from None


def query_of(request: Request, model: type[M]) -> M:
    try:
        return model.model_validate(dict(request.query_params))
    except ValidationError as exc:
        raise invalid(exc, "query string") from None


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
