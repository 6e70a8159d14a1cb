"""HTTP routes of the MCP runtime: humans approve or deny tool calls; admins read the audit log and metrics."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from isa.auth import require_principal
from isa.auth.principal import Principal
from isa.core.http import Endpoint, json_body, jsonable, query_params, requires, route_table
from isa.mcp import store
from isa.mcp.approvals import Approvals
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


def _approvals(request: Request) -> Approvals:
    return request.app.state.isa.get("mcp.approvals", Approvals)  # type: ignore[no-any-return]


@requires(require_principal, "read")
async def list_authorizations(request: Request, principal: Principal) -> JSONResponse:
    query = query_params(request, ListQuery)
    items = await _approvals(request).list(principal, everyone=query.all, status=query.status, limit=query.limit)
    return JSONResponse({"authorizations": jsonable(items)})


@requires(require_principal, "read")
async def get_authorization(request: Request, principal: Principal) -> JSONResponse:
    item = await _approvals(request).get(principal, request.path_params["request_id"])
    return JSONResponse(jsonable(item))


def _decide(approved: bool) -> Endpoint:
    """The endpoint that approves (True) or denies (False) the pending call in the path."""

    @requires(require_principal, "write")
    async def decide(request: Request, principal: Principal) -> Response:
        decision = await json_body(request, Decision, empty_ok=True)
        item = await _approvals(request).decide(
            principal, request.path_params["request_id"], approve=approved, note=decision.note
        )
        return JSONResponse(jsonable(item))

    decide.__name__ = "approve" if approved else "deny"
    return decide


approve = _decide(True)
deny = _decide(False)


@requires(require_principal, "admin")
async def audit_log(request: Request, _principal: Principal) -> JSONResponse:
    query = query_params(request, AuditQuery)
    async with request.app.state.isa.db.connection() as conn:
        rows = await store.list_audit(conn, user_id=query.user_id, tool_name=query.tool_name, limit=query.limit)
    return JSONResponse({"entries": jsonable(rows)})


@requires(require_principal, "admin")
async def metrics(request: Request, _principal: Principal) -> JSONResponse:
    query = query_params(request, MetricsQuery)
    async with request.app.state.isa.db.connection() as conn:
        body = await store.metrics(conn, query.hours)
    runner: ToolRunner = request.app.state.isa.get("mcp.runner", ToolRunner)
    body["upstream_breakers"] = runner.upstream.breaker.snapshot()
    return JSONResponse(jsonable(body))


ROUTES = route_table(
    "/api/v1",
    {
        "GET /authorizations": list_authorizations,
        "GET /authorizations/{request_id}": get_authorization,
        "POST /authorizations/{request_id}/approve": approve,
        "POST /authorizations/{request_id}/deny": deny,
        "GET /admin/mcp/audit": audit_log,
        "GET /admin/mcp/metrics": metrics,
    },
)
