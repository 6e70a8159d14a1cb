"""One tool call, start to end: resolve, scope, rate limit, approval, credits, run, envelope, audit.

Every call, whatever its outcome, leaves one audit row (who from the verified principal, the tool, the
arguments with secrets masked, duration, outcome).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import anyio
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp_types import CallToolResult
from prometheus_client import Counter, Histogram
from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from isa.auth.principal import Principal
from isa.core.builder import AppState
from isa.core.errors import ApiError, request_id_of
from isa.core.http import input_problem, jsonable, text_problem
from isa.core.logging import get_logger
from isa.mcp import context as call_context
from isa.mcp import store, views
from isa.mcp.approvals import Approvals, GatedCall, NeedsApproval
from isa.mcp.audit import AuditWriter
from isa.mcp.billing import Billing
from isa.mcp.envelope import (
    AUTHORIZATION_REQUESTED,
    ToolFailure,
    envelope,
    failure_result,
    mask_arguments,
    to_result,
)
from isa.mcp.limits import ToolLimiter
from isa.mcp.registry import Registry, SecurityLevel, ToolDecl
from isa.mcp.screen import OUTPUT_SCREEN, OutputScreen
from isa.mcp.settings import McpSettings
from isa.mcp.upstream import Upstream

log = get_logger(__name__)


@dataclass(frozen=True)
class Marker:
    """Return this from a tool to set the envelope status (e.g. `human_input_requested`)."""

    status: str
    data: Any


@dataclass(frozen=True)
class ImportedTool:
    """A tool of another MCP server, from the catalog."""

    name: str  # the name to call here (server-qualified, unique)
    server: str
    tool: str  # the tool's own name on its server
    description: str
    input_schema: dict[str, Any]
    url: str | None
    security: SecurityLevel = SecurityLevel.LOW
    cost_credits: Decimal = Decimal(0)


ImportedLookup = Callable[[str], Awaitable[ImportedTool | None]]


@dataclass(frozen=True)
class Target:
    name: str
    server: str
    security: SecurityLevel
    cost: Decimal
    rate_limit: int | None
    scope: str
    untrusted: bool
    own: ToolDecl | None = None
    imported: ImportedTool | None = None


def _http_request(context: Context[Any, Any]) -> Request | None:
    try:
        request = context.request_context.request
    except ValueError:  # called outside an MCP request (in-process use)
        return None
    return request if isinstance(request, Request) else None


def _data(value: Any) -> Any:
    """A tool's return value as envelope data (dates, decimals and ids are serialised by the SDK and to_result)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    return value


class ToolRunner:
    """Runs tool calls for verified callers: ours in-process, imported ones on their own server."""

    def __init__(
        self,
        state: AppState,
        settings: McpSettings,
        registry: Registry,
        approvals: Approvals,
        billing: Billing,
        upstream: Upstream,
        audit: AuditWriter,
    ) -> None:
        self.state = state
        self.audit = audit
        self.limiter = ToolLimiter(state.db)
        self.settings = settings
        self.registry = registry
        self.approvals = approvals
        self.billing = billing
        self.upstream = upstream
        self.lookup_imported: ImportedLookup | None = None
        registry_ = state.metrics.registry
        self.calls = Counter("isa_mcp_tool_calls_total", "MCP tool calls by outcome.", ["outcome"], registry=registry_)
        self.latency = Histogram("isa_mcp_tool_call_seconds", "MCP tool call duration.", registry=registry_)
        self._outcomes: dict[str, Any] = {}  # outcome -> its counter child (labels() takes a lock per lookup)
        self._own: dict[str, Target] = {}  # our tool's name -> its Target (immutable, like its declaration)

    async def resolve(self, name: str) -> Target:
        return self._own_target(name) or await self._imported_target(name)

    def _own_target(self, name: str) -> Target | None:
        """Our tool of that name (its Target built once per declaration, not per call), or None."""
        views.check_tool(name)  # on /mcp/v/{name}, only that virtual server's tools exist
        decl = self.registry.tools.get(name)
        if decl is None:
            return None
        target = self._own.get(name)
        if target is None or target.own is not decl:
            target = self._own[name] = Target(
                name=name,
                server="isa",
                security=decl.security,
                cost=decl.cost_credits,
                rate_limit=decl.rate_limit_per_minute,
                scope=decl.scope,
                untrusted=decl.untrusted_output,
                own=decl,
            )
        return target

    async def _imported_target(self, name: str) -> Target:
        imported = await self.lookup_imported(name) if self.lookup_imported is not None else None
        if imported is None:
            raise ToolFailure("unknown_tool", "unknown_tool", f"no tool named {name!r}; use discover_tools to find one")
        return Target(
            name=name,
            server=imported.server,
            security=imported.security,
            cost=imported.cost_credits,
            rate_limit=None,
            scope="write" if imported.security.needs_approval else "read",
            untrusted=True,  # another server's output is outside content
            imported=imported,
        )

    async def execute(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any], principal: Principal
    ) -> CallToolResult:
        """Run one call for `principal` and return its result; never raises for tool-level failures."""
        started = time.perf_counter()
        target: Target | None = None
        outcome, code, approval_id = "ok", None, None
        charged = Decimal(0)
        ids = call_context.message_ids()  # set per message by the server's middleware; else from the context
        if ids is None:
            request = _http_request(context)
            ids = (request_id_of(request), request.headers.get("mcp-session-id")) if request is not None else ("", None)
        request_id, session_id = ids
        # Text Postgres can't store (NUL, lone surrogates) or nesting past the bound is refused before any work,
        # and is kept out of the audit row too.
        problem = text_problem(name) or input_problem(arguments)
        try:
            if problem:
                raise ToolFailure("invalid_arguments", "invalid_arguments", f"invalid arguments: {problem}")
            # The usual call (our tool, a lease token in hand, free) awaits nothing before the tool runs.
            target = self._own_target(name) or await self._imported_target(name)
            if target.scope not in principal.scopes:
                raise ToolFailure("denied", "insufficient_scope", f"{name} needs the {target.scope!r} scope")
            limit = target.rate_limit or self.settings.default_rate_limit_per_minute
            if limit > 0 and not self.limiter.spend(target.name, principal.user_id):  # else a lease token spent
                await self._rate_limit(principal, target, limit)
            if target.security.needs_approval:
                gated = GatedCall.of(name, target.security.value, self.normalize(target, arguments))
                approval_id = await self.approvals.gate(principal, gated)
            charge = await self.billing.charge(principal.user_id, name, target.cost) if target.cost > 0 else None
            charged = target.cost
            try:
                call = call_context.ToolCall(principal, self.state, name, request_id, session_id)
                result = await self._run(target, arguments, context, call, charge)
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await self.billing.refund(principal.user_id, name, charge)
                charged = Decimal(0)
                raise
            if result.is_error:
                outcome, code = "error", "tool_error"
                await self.billing.refund(principal.user_id, name, charge)
                charged = Decimal(0)
            return result
        except NeedsApproval as pending:
            outcome = "approval_required"
            return to_result(envelope(AUTHORIZATION_REQUESTED, name, pending.view))
        except ToolFailure as failure:
            outcome, code = failure.outcome, failure.code
            return failure_result(name, failure)
        except anyio.get_cancelled_exc_class():
            outcome, code = "error", "cancelled"
            raise
        except BaseException:
            outcome, code = "error", "internal_error"
            raise
        finally:
            elapsed = time.perf_counter() - started
            counter = self._outcomes.get(outcome)
            if counter is None:
                counter = self._outcomes[outcome] = self.calls.labels(outcome)
            counter.inc()
            self.latency.observe(elapsed)
            entry = store.AuditEntry(
                user_id=principal.user_id,
                principal_via=principal.via,
                key_id=principal.key_id,
                tool_name=(repr(name) if text_problem(name) else name)[:200],
                server=target.server if target else "isa",
                security_level=(target.security if target else SecurityLevel.LOW).value,
                arguments=mask_arguments(arguments) if problem is None else {},
                outcome=outcome,
                error_code=code,
                duration_ms=elapsed * 1000,
                credits_charged=charged,
                authorization_request_id=approval_id,
                request_id=request_id,
                session_id=session_id,
                at=datetime.now(UTC),
            )
            if not self.audit.write_nowait(entry):  # the usual case: queued, no await (and no shielded scope)
                with anyio.CancelScope(shield=True):
                    await self._audit(entry)

    async def _audit(self, entry: store.AuditEntry) -> None:
        try:
            await self.audit.write(entry)
        except Exception as exc:  # the call already happened; losing its row must at least be loud
            log.error("audit_write_failed", tool=entry.tool_name, user_id=entry.user_id, error=type(exc).__name__)

    async def _rate_limit(self, principal: Principal, target: Target, limit: int) -> None:
        """Take a new lease (or wait for another task taking one); refused when the shared budget is spent."""
        verdict = await self.limiter.hit(target.name, principal.user_id, limit)
        if not verdict.allowed:
            raise ToolFailure(
                "rate_limited",
                "rate_limited",
                f"{target.name} allows {limit} calls per minute; retry in {verdict.retry_after} s",
                retry_after=verdict.retry_after,
            )

    def normalize(self, target: Target, arguments: dict[str, Any]) -> dict[str, Any]:
        """The arguments an approval is bound to: validated with defaults filled in, for our own tools."""
        if target.own is None:
            return arguments
        try:
            model = target.own.sdk.fn_metadata.arg_model.model_validate(
                target.own.sdk.fn_metadata.pre_parse_json(arguments)
            )
        except ValidationError as exc:
            fields = sorted({".".join(str(p) for p in e["loc"]) for e in exc.errors()})
            raise ToolFailure(
                "invalid_arguments", "invalid_arguments", f"invalid arguments: {', '.join(fields)}"
            ) from None
        return dict(model.model_dump(mode="json", by_alias=True))

    async def _run(
        self,
        target: Target,
        arguments: dict[str, Any],
        context: Context[Any, Any],
        call: call_context.ToolCall,
        charge: dict[str, Any] | None,
    ) -> CallToolResult:
        if target.imported is not None:
            imported = target.imported
            upstream = await self.upstream.call(
                imported.server, imported.url, imported.tool, arguments, call.principal.user_id
            )
            data: Any = (
                upstream.structured_content
                if upstream.structured_content is not None
                else [c.model_dump(mode="json", by_alias=True, exclude_none=True) for c in upstream.content]
            )
            status = "error" if upstream.is_error else "success"
            data, report = await self._screened(call.principal.user_id, data)
            body = envelope(status, target.name, data, billing=charge, untrusted=True)
            if report is not None:
                body["guardrail"] = report
            return to_result(body, is_error=bool(upstream.is_error), untrusted=True)
        assert target.own is not None
        token = call_context.bind(call)
        try:
            value = await target.own.sdk.run(arguments, context, convert_result=False)
        except ToolError as exc:
            raise _tool_failure(target.name, exc) from None
        finally:
            call_context.unbind(token)
        if isinstance(value, CallToolResult):  # call_tool: the inner call already made its own envelope
            return value
        status, data = (value.status, value.data) if isinstance(value, Marker) else ("success", value)
        untrusted = target.untrusted
        data, report = await self._screened(call.principal.user_id, _data(data)) if untrusted else (_data(data), None)
        body = envelope(status, target.name, data, billing=charge, untrusted=untrusted)
        if report is not None:
            body["guardrail"] = report
        return to_result(body, untrusted=untrusted)

    async def _screened(self, user_id: str, data: Any) -> tuple[Any, dict[str, Any] | None]:
        """Untrusted data through the deployment's output screen (isa/mcp/screen.py), when one is provided."""
        screen = self.state.services.get(OUTPUT_SCREEN)
        if not isinstance(screen, OutputScreen):
            return data, None
        return await screen.screen_output(user_id, data)


def _tool_failure(tool: str, exc: ToolError) -> ToolFailure:
    """What the caller learns about a failed tool: its own words when meant for them, else a generic error."""
    cause = exc.__cause__
    if isinstance(cause, ToolFailure):
        return cause
    if isinstance(cause, ApiError):
        return ToolFailure("error", cause.code, cause.message, details=cause.details or {})
    if isinstance(cause, ValidationError):
        fields = sorted({".".join(str(p) for p in e["loc"]) for e in cause.errors()})
        return ToolFailure("invalid_arguments", "invalid_arguments", f"invalid arguments: {', '.join(fields)}")
    if isinstance(cause, ToolError) and not isinstance(cause, UnexpectedToolError):
        return ToolFailure("error", "tool_error", str(cause))  # raised on purpose: meant for the caller
    crash = cause.__cause__ if isinstance(cause, UnexpectedToolError) and cause.__cause__ else cause or exc
    log.error("tool_crashed", tool=tool, error=type(crash).__name__, exc_info=crash)
    return ToolFailure("error", "tool_crashed", "the tool failed; quote the request id when reporting it")
