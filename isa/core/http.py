"""Reading request bodies and query strings into pydantic models, with the one 422 shape every route uses."""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, StringConstraints, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from isa.core.errors import ApiError
from isa.core.openapi import Operation, described

M = TypeVar("M", bound=BaseModel)

# Deeper than any real request needs, well below what exhausts the validator's or the serializer's stack
# (pydantic refuses to serialize past about 250 levels: a 500 once an accepted body is dumped again).
MAX_JSON_DEPTH = 64


def input_problem(value: Any, max_depth: int = MAX_JSON_DEPTH, *, text: bool = True) -> str | None:
    """Why parsed JSON can't be taken as input (nested too deep, a NUL or a lone surrogate in text), or None.

    Postgres text and jsonb can't hold NUL, and a lone surrogate can't be encoded: both would fail only when the
    value reaches the database. One iterative walk (no recursion, so depth itself can't crash it). `text=False`
    checks depth only (for a caller that reports bad text per item, as the events batch does).
    """
    if isinstance(value, str):
        return text_problem(value) if text else None
    stack: list[tuple[Any, int]] = [(value, 1)] if isinstance(value, dict | list) else []
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            return f"the request is nested too deeply (at most {max_depth} levels)"
        items = node.values() if isinstance(node, dict) else node
        if isinstance(node, dict) and text:
            for key in node:
                problem = text_problem(key)
                if problem:
                    return problem
        for item in items:  # numbers, booleans and null need no look (a million-element array stays cheap)
            if isinstance(item, str):
                problem = text_problem(item) if text else None
                if problem:
                    return problem
            elif isinstance(item, dict | list):
                stack.append((item, depth + 1))
    return None


def text_problem(text: str) -> str | None:
    """Why `text` can't be stored (a NUL character or a lone surrogate), or None."""
    if "\x00" in text:
        return "text must not contain NUL characters"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "text must be valid unicode (no lone surrogates)"
    return None


def load_json(raw: bytes, empty_ok: bool = False, *, text: bool = True) -> Any:
    """`raw` parsed as JSON input (an empty body is {} when `empty_ok`); 422 when it is not JSON or not storable."""
    try:
        data = json.loads(raw) if raw.strip() or not empty_ok else {}
    except ValueError:  # JSONDecodeError and UnicodeDecodeError are both ValueErrors
        raise ApiError(422, "invalid_request", "the body must be JSON") from None
    problem = input_problem(data, text=text) if _worth_a_look(raw) else None
    if problem:
        raise ApiError(422, "invalid_request", problem)
    return data


def _worth_a_look(raw: bytes) -> bool:
    """Whether parsed `raw` could hold a problem: NUL and surrogates arrive only as \\u escapes, and nesting
    past the bound needs that many brackets. Most bodies are cleared here at C speed, without a walk."""
    lowered = raw.lower() if b"\\u" in raw else b""
    return b"\\u0000" in lowered or b"\\ud" in lowered or raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH


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


async def json_body(request: Request, model: type[M], empty_ok: bool = False, *, text: bool = True) -> M:
    """The JSON body as `model`; 422 when it is not JSON (or not UTF-8) or does not validate."""
    return parse_json(await request.body(), model, empty_ok, text=text)


def parse_json(raw: bytes, model: type[M], empty_ok: bool = False, *, text: bool = True) -> M:
    """`raw` as `model` (an empty body is {} when `empty_ok`); 422 when it is not JSON or does not validate."""
    data = load_json(raw, empty_ok, text=text)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid(exc) from None


def bounded(max_length: int) -> StringConstraints:
    """A text field's bounds: stripped, not empty, at most `max_length` characters (`Annotated[str, bounded(120)]`)."""
    return StringConstraints(strip_whitespace=True, min_length=1, max_length=max_length)


def query_params(request: Request, model: type[M]) -> M:
    """The query string as `model`; 422 when it does not validate or a value holds a NUL."""
    for key, value in request.query_params.multi_items():
        problem = text_problem(key) or text_problem(value)
        if problem:
            raise ApiError(422, "invalid_request", f"query string: {problem}")
    try:
        return model.model_validate(dict(request.query_params))
    except ValidationError as exc:
        raise invalid(exc, "query string") from None


def route_table(prefix: str, table: Mapping[str, Callable[..., Any]]) -> list[Route]:
    """A domain's HTTP surface as one table: {"GET /{id}": endpoint} under `prefix` ("POST": the prefix itself).

    Each key is a method and an optional path below the prefix; the order of the table is the matching order.
    """
    routes = []
    for key, endpoint in table.items():
        method, _, path = key.partition(" ")
        routes.append(Route(prefix + path, endpoint, methods=[method]))
    return routes


Caller = TypeVar("Caller")
SCOPE_ATTRIBUTE = "__isa_scope__"
Endpoint = Callable[[Request], Awaitable[Response]]


def requires(
    authenticate: Callable[[Request, str], Awaitable[Caller]], scope: str
) -> Callable[[Callable[[Request, Caller], Awaitable[Response]]], Endpoint]:
    """Starlette's `requires`, for isa's scopes: the endpoint is handed the caller `authenticate` checked for `scope`.

    `authenticate` is the auth domain's `require_principal` (core knows no domain, so the route module passes it):
    `@requires(require_principal, "write")` above `async def create(request, principal)`. The check runs before
    the handler reads anything, and the scope sits where a reader of the route table can see it.
    """

    def decorate(endpoint: Callable[[Request, Caller], Awaitable[Response]]) -> Endpoint:
        @functools.wraps(endpoint)
        async def wrapper(request: Request) -> Response:
            return await endpoint(request, await authenticate(request, scope))

        setattr(wrapper, SCOPE_ATTRIBUTE, scope)  # what the route declares, for tests that hold it to the docs
        return wrapper

    return decorate


def api(
    operation: Operation, authenticate: Callable[[Request, str], Awaitable[Caller]]
) -> Callable[[Callable[[Request, Caller], Awaitable[Response]]], Endpoint]:
    """Describe an endpoint for /openapi.json and hand it the caller checked for the operation's own scope.

    The scope the document shows is the scope that is checked: `@api(Operation("...", scope="write"),
    require_principal)` replaces a hand-written `require_principal(request, "write")` in the handler.
    """
    scope = operation.scope
    if scope is None:
        raise ValueError(f"{operation.summary!r} has no scope: describe a public endpoint with `described`")

    def decorate(endpoint: Callable[[Request, Caller], Awaitable[Response]]) -> Endpoint:
        return described(operation)(requires(authenticate, scope)(endpoint))

    return decorate
