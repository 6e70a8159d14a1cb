"""HTTP routes of the MCP runtime: humans approve or deny tool calls; admins read the audit log and metrics."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from isa.auth import require_principal
from isa.core.errors import ApiError
from isa.core.http import input_problem
from isa.mcp import store
from isa.mcp.approvals import Approvals
from isa.mcp.envelope import jsonable
from isa.mcp.runner import ToolRunner

STATUSES = ("pending", "approved", "denied", "used")


class Decision(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str = Field(default="", max_length=2000)


class ListQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")
    status: str | None = Field(default=None, pattern="^(pending|approved|denied|used)$")
    limit: int = Field(default=50, ge=1, le=500)
    all: bool = False


class AuditQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")
    limit: int = Field(default=100, ge=1, le=1000)
    user_id: str | None = Field(default=None, max_length=255)
    tool_name: str | None = Field(default=None, max_length=200)


class MetricsQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")
    hours: int = Field(default=24, ge=1, le=24 * 30)


def _parse(model: type[BaseModel], data: Any) -> Any:
    problem = input_problem(data)
    if problem:
        raise ApiError(422, "invalid_request", problem)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        details = [{"loc": e["loc"], "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        raise ApiError(422, "invalid_request", "the request is not valid", details=jsonable(details)) from None


async def _decision(request: Request) -> Decision:
    raw = await request.body()
    if not raw.strip():
        return Decision()
    try:
        return _parse(Decision, await request.json())  # type: ignore[no-any-return]
    except ValueError:
        raise ApiError(400, "invalid_json", "the body is not JSON") from None


def _approvals(request: Request) -> Approvals:
    return request.app.state.isa.get("mcp.approvals", Approvals)  # type: ignore[no-any-return]


async def list_authorizations(request: Request) -> JSONResponse:
    principal = await require_principal(request, "read")
    query = _parse(ListQuery, dict(request.query_params))
    items = await _approvals(request).list(principal, everyone=query.all, status=query.status, limit=query.limit)
    return JSONResponse({"authorizations": jsonable(items)})


async def get_authorization(request: Request) -> JSONResponse:
    principal = await require_principal(request, "read")
    item = await _approvals(request).get(principal, request.path_params["request_id"])
    return JSONResponse(jsonable(item))


async def _decide(request: Request, approve: bool) -> JSONResponse:
    principal = await require_principal(request, "write")
    decision = await _decision(request)
    item = await _approvals(request).decide(
        principal, request.path_params["request_id"], approve=approve, note=decision.note
    )
    return JSONResponse(jsonable(item))


async def approve(request: Request) -> JSONResponse:
    return await _decide(request, True)


async def deny(request: Request) -> JSONResponse:
    return await _decide(request, False)


async def audit_log(request: Request) -> JSONResponse:
    await require_principal(request, "admin")
    query = _parse(AuditQuery, dict(request.query_params))
    async with request.app.state.isa.db.connection() as conn:
        rows = await store.list_audit(conn, user_id=query.user_id, tool_name=query.tool_name, limit=query.limit)
    return JSONResponse({"entries": jsonable(rows)})


async def metrics(request: Request) -> JSONResponse:
    await require_principal(request, "admin")
    query = _parse(MetricsQuery, dict(request.query_params))
    async with request.app.state.isa.db.connection() as conn:
        body = await store.metrics(conn, query.hours)
    runner: ToolRunner = request.app.state.isa.get("mcp.runner", ToolRunner)
    body["upstream_breakers"] = runner.upstream.breaker.snapshot()
    return JSONResponse(jsonable(body))


ROUTES = [
    Route("/api/v1/authorizations", list_authorizations, methods=["GET"]),
    Route("/api/v1/authorizations/{request_id}", get_authorization, methods=["GET"]),
    Route("/api/v1/authorizations/{request_id}/approve", approve, methods=["POST"]),
    Route("/api/v1/authorizations/{request_id}/deny", deny, methods=["POST"]),
    Route("/api/v1/admin/mcp/audit", audit_log, methods=["GET"]),
    Route("/api/v1/admin/mcp/metrics", metrics, methods=["GET"]),
]
