"""One JSON error shape for every role: {"error": {"code", "message", "request_id"}}."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from isa.core.logging import get_logger

log = get_logger("isa.errors")

# Stable codes for the plain HTTP statuses Starlette raises itself.
_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    421: "host_not_allowed",
    422: "invalid_request",
    429: "rate_limited",
    500: "internal_error",
    502: "upstream_error",
    503: "unavailable",
    504: "upstream_timeout",
}


class ApiError(Exception):
    """Raise from a handler or service to answer with a stable error code."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        details: Any = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})
        self.details = details


class CodedError(Exception):
    """A domain's failure meant for the caller: a stable `code`, its message and, when throttled, when to retry."""

    def __init__(self, code: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after


def request_id_of(scope_or_request: Request | Mapping[str, Any]) -> str:
    scope = scope_or_request.scope if isinstance(scope_or_request, Request) else scope_or_request
    state = scope.get("state") or {}
    return str(state.get("request_id", ""))


def error_body(code: str, message: str, request_id: str, details: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message, "request_id": request_id}
    if details is not None:
        error["details"] = details
    return {"error": error}


def error_response(request_id: str, error: ApiError) -> JSONResponse:
    """The answer for `error`, raised or not: its status and headers, and the body in the one error shape."""
    body = error_body(error.code, error.message, request_id, error.details)
    return JSONResponse(body, status_code=error.status, headers=error.headers)


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(request_id_of(request), exc)


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _STATUS_CODES.get(exc.status_code, "error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    if exc.status_code == 404:
        message = "no such route on this node"
    return error_response(request_id_of(request), ApiError(exc.status_code, code, message, headers=exc.headers))


async def _database_unavailable(request: Request, exc: Exception) -> Response:
    # A lost or refused database connection (or an exhausted pool) is the deployment's trouble, not the caller's:
    # 503 with Retry-After so clients and the load balancer back off; the pool replaces broken connections.
    log.warning("database_unavailable", error=type(exc).__name__, path=request.url.path)
    message = "the database is unavailable; retry shortly"
    return error_response(
        request_id_of(request), ApiError(503, "database_unavailable", message, headers={"Retry-After": "5"})
    )


async def _too_deep(request: Request, exc: Exception) -> Response:
    # Only input nests deep enough to exhaust the interpreter's stack here (JSON bodies parsed, then validated).
    return error_response(request_id_of(request), ApiError(422, "invalid_request", "the request is nested too deeply"))


EXCEPTION_HANDLERS = {
    ApiError: _api_error,
    HTTPException: _http_exception,
    psycopg.OperationalError: _database_unavailable,
    RecursionError: _too_deep,
}
