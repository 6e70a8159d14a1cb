"""Reading request bodies and query strings into pydantic models, with the one 422 shape every route uses."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse

from isa.core.errors import ApiError

M = TypeVar("M", bound=BaseModel)


def jsonable(value: Any) -> Any:
    """A JSON-safe copy: what json.dumps can't write (datetimes, decimals, UUIDs, exceptions) becomes a string."""
    return json.loads(json.dumps(value, default=str))


def json_response(value: Any, status_code: int = 200, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """A JSON response for rows and dicts straight from the database (see `jsonable`)."""
    return JSONResponse(jsonable(value), status_code=status_code, headers=headers)


def invalid(exc: ValidationError, where: str = "body") -> ApiError:
    """422 invalid_request listing pydantic's errors without echoing the input (it may hold secrets)."""
    # JSON-safe: a custom validator's error may carry values json.dumps can't write.
    details = jsonable(exc.errors(include_url=False, include_context=False, include_input=False))
    return ApiError(422, "invalid_request", f"the request {where} is not valid", details=details)


async def json_body(request: Request, model: type[M], empty_ok: bool = False) -> M:
    """The JSON body as `model`; 422 when it is not JSON (or not UTF-8) or does not validate."""
    return parse_json(await request.body(), model, empty_ok)


def parse_json(raw: bytes, model: type[M], empty_ok: bool = False) -> M:
    """`raw` as `model` (an empty body is {} when `empty_ok`); 422 when it is not JSON or does not validate."""
    try:
        data = json.loads(raw) if raw.strip() or not empty_ok else {}
    except ValueError:  # JSONDecodeError and UnicodeDecodeError are both ValueErrors
        raise ApiError(422, "invalid_request", "the body must be JSON") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid(exc) from None


def query_params(request: Request, model: type[M]) -> M:
    """The query string as `model`; 422 when it does not validate."""
    try:
        return model.model_validate(dict(request.query_params))
    except ValidationError as exc:
        raise invalid(exc, "query string") from None
