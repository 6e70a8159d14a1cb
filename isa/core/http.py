"""Reading request bodies and query strings into pydantic models, with the one 422 shape every route uses."""

from __future__ import annotations

import json
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from isa.core.errors import ApiError

M = TypeVar("M", bound=BaseModel)


def invalid(exc: ValidationError, where: str = "body") -> ApiError:
    """422 invalid_request listing pydantic's errors without echoing the input (it may hold secrets)."""
    details = exc.errors(include_url=False, include_context=False, include_input=False)
    # Round-trip through JSON: a custom validator's error may carry values json.dumps can't write.
    details = json.loads(json.dumps(details, default=str))
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
