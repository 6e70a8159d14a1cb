"""GET /openapi.json: an OpenAPI 3.1 document built from whatever routes the app registered.

Generic over domains: an endpoint described with `Operation` metadata (pydantic models for body,
query and response) gets full schemas; one whose docstring carries YAML after `---` (Starlette's
SchemaGenerator convention) gets that; any other route still appears with its summary and path
parameters, so a new domain's routes show up without touching this module.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute
from starlette.schemas import BaseSchemaGenerator

import isa

ATTRIBUTE = "__isa_openapi__"
F = TypeVar("F", bound=Callable[..., Any])
_PATH_PARAM = re.compile(r"{([^}:]+)(?::[^}]*)?}")
_REF = "#/components/schemas/{model}"


@dataclass(frozen=True)
class Operation:
    """What the document says about one endpoint."""

    summary: str
    tags: tuple[str, ...] = ()
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    # The scope the caller needs; None: public (e.g. the Stripe webhook, which is signed instead).
    scope: str | None = "read"
    status: int = 200
    errors: tuple[int, ...] = ()
    envelope: bool = True
    path_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    headers: dict[str, dict[str, Any]] = field(default_factory=dict)
    raw_body: bool = False


def described(operation: Operation) -> Callable[[F], F]:
    """Attach the /openapi.json description to an endpoint (the one place that knows where it is kept)."""

    def mark(endpoint: F) -> F:
        setattr(endpoint, ATTRIBUTE, operation)
        return endpoint

    return mark


_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "request_id"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "request_id": {"type": "string"},
                "details": {},
            },
        }
    },
}
_ERROR_TEXT = {
    400: "Bad request",
    401: "Missing or invalid credentials",
    402: "Not enough credits",
    403: "Missing scope",
    404: "Not found (or not yours)",
    409: "Conflict",
    422: "Invalid request",
    429: "Rate limited",
    502: "Upstream error",
    503: "Not configured",
    504: "Upstream timeout",
}


class _Endpoints(BaseSchemaGenerator):
    def get_schema(self, routes: list[BaseRoute]) -> dict[str, Any]:  # pragma: no cover - unused
        return {}


def _no_null(schema: dict[str, Any]) -> dict[str, Any]:
    """Query parameters can't be null: drop the `null` branch pydantic adds for optional fields."""
    variants = schema.get("anyOf")
    if isinstance(variants, list):
        kept = [v for v in variants if v != {"type": "null"}]
        rest = {k: v for k, v in schema.items() if k not in ("anyOf", "default")}
        return {**rest, **kept[0]} if len(kept) == 1 else {**rest, "anyOf": kept}
    return {k: v for k, v in schema.items() if k != "default"}


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(ref_template=_REF)
    required = set(schema.get("required", []))
    return [
        {"name": name, "in": "query", "required": name in required, "schema": _no_null(prop)}
        for name, prop in schema.get("properties", {}).items()
    ]


def _describe(op: Operation, refs: dict[Any, dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = {"summary": op.summary, "tags": list(op.tags)}
    params: list[dict[str, Any]] = []
    if op.query is not None:
        params += _query_parameters(op.query)
    for name, schema in op.headers.items():
        params.append({"name": name, "in": "header", "required": False, "schema": schema})
    spec["parameters"] = params
    if op.body is not None:
        required = bool(op.body.model_json_schema().get("required"))
        spec["requestBody"] = {
            "required": required,
            "content": {"application/json": {"schema": refs[(op.body, "validation")]}},
        }
    elif op.raw_body:
        spec["requestBody"] = {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}
    data: dict[str, Any] = refs[(op.response, "serialization")] if op.response is not None else {}
    body = (
        {
            "type": "object",
            "required": ["success", "data", "timestamp"],
            "properties": {"success": {"const": True}, "data": data, "timestamp": {"type": "string"}},
        }
        if op.envelope
        else data
    )
    responses: dict[str, Any] = {
        str(op.status): {"description": "OK", "content": {"application/json": {"schema": body}}}
    }
    statuses = set(op.errors)
    if op.scope is not None:
        statuses |= {401, 403, 429}
        spec["security"] = [{"bearerAuth": []}, {"apiKey": []}]
        spec["description"] = f"Needs the `{op.scope}` scope."
    else:
        spec["security"] = []
    if op.body is not None or op.query is not None:
        statuses.add(422)
    for status in sorted(statuses):
        responses[str(status)] = {
            "description": _ERROR_TEXT.get(status, "Error"),
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
    spec["responses"] = responses
    return spec


def _summary(func: Any) -> str:
    doc = (getattr(func, "__doc__", None) or "").strip()
    return doc.splitlines()[0] if doc else getattr(func, "__name__", "endpoint")


def build_document(routes: list[BaseRoute], title: str = "isa") -> dict[str, Any]:
    """The OpenAPI document for `routes` (the app's own, read at request time)."""
    gen = _Endpoints()
    endpoints = gen.get_endpoints(routes)
    ops = {id(e.func): op for e in endpoints if isinstance(op := getattr(e.func, ATTRIBUTE, None), Operation)}
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = []
    for op in ops.values():
        if op.body is not None:
            models.append((op.body, "validation"))
        if op.response is not None:
            models.append((op.response, "serialization"))
    refs, defs = models_json_schema(list(dict.fromkeys(models)), ref_template=_REF) if models else ({}, {})
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in endpoints:
        op = ops.get(id(endpoint.func))
        if op is not None:
            spec = _describe(op, refs)
        elif "---" in (endpoint.func.__doc__ or ""):
            spec = gen.parse_docstring(endpoint.func)
        else:
            spec = {"summary": _summary(endpoint.func), "responses": {"default": {"description": "See the docs."}}}
        declared = {p.get("name") for p in spec.get("parameters", []) if p.get("in") == "path"}
        extra = op.path_params if op is not None else {}
        for name in _PATH_PARAM.findall(endpoint.path):
            if name not in declared:
                schema = extra.get(name, {"type": "string"})
                spec.setdefault("parameters", []).append(
                    {"name": name, "in": "path", "required": True, "schema": schema}
                )
        paths.setdefault(endpoint.path, {})[endpoint.http_method] = spec
    schemas = {**defs.get("$defs", {}), "Error": _ERROR}
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": isa.__version__},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
    }


async def openapi_json(request: Request) -> Response:
    """The OpenAPI description of this node's routes."""
    return JSONResponse(build_document(list(request.app.routes), title=f"isa ({request.app.state.isa.role})"))
