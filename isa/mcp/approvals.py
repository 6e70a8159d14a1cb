"""Human approval for HIGH/CRITICAL tools: persisted requests, decided by the owner over HTTP, used once.

Nothing is ever auto-approved. A call is bound to (user, tool, hash of the exact arguments): the agent's call
creates (or finds) a pending request and gets the `authorization_requested` marker; after the owner approves
it over HTTP, the same call runs once. The API key that asked can't approve its own request, so an agent
holding only that key can't approve itself.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from typing import Any

from isa.auth.principal import Principal
from isa.core.db import Database
from isa.core.errors import ApiError
from isa.mcp import store
from isa.mcp.envelope import ToolFailure, arguments_hash, mask_arguments


@dataclass(frozen=True)
class GatedCall:
    """One call an approval is bound to: the tool, its level, the masked arguments and the hash of the exact ones."""

    tool_name: str
    security_level: str
    arguments: dict[str, Any]
    args_hash: str

    @classmethod
    def of(cls, tool_name: str, security_level: str, normalized: dict[str, Any]) -> GatedCall:
        return cls(tool_name, security_level, mask_arguments(normalized), arguments_hash(normalized))


class NeedsApproval(Exception):
    """The call waits for a human; `view` is the pending request as the client sees it."""

    def __init__(self, view: dict[str, Any]) -> None:
        super().__init__("authorization requested")
        self.view = view


def _uuid_or_none(value: str) -> str | None:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


@dataclass(eq=False)
class Approvals:
    db: Database
    ttl_seconds: int
    valid_seconds: int

    async def request(self, principal: Principal, call: GatedCall, reason: str) -> dict[str, Any]:
        """A pending request for this exact call: the live one if there is one, else a new one."""
        async with self.db.transaction() as conn:
            row = await store.find_matching_request(conn, principal.user_id, call.tool_name, call.args_hash)
            if row is None or row["status"] != "pending":
                row = await store.insert_request(
                    conn,
                    user_id=principal.user_id,
                    reason=reason,
                    requested_by_key=principal.key_id,
                    ttl_seconds=self.ttl_seconds,
                    **asdict(call),
                )
        return store.request_view(row)

    async def gate(self, principal: Principal, call: GatedCall) -> str:
        """Use an approval for this call and return its id; otherwise raise NeedsApproval or a denial."""
        async with self.db.transaction() as conn:
            row = await store.find_matching_request(conn, principal.user_id, call.tool_name, call.args_hash)
            if row is not None and row["status"] == "approved":
                if await store.use_approval(conn, str(row["id"]), principal.user_id):
                    return str(row["id"])
                row = None  # a concurrent call used it first
            if row is not None and row["status"] == "denied":
                raise ToolFailure(
                    "approval_denied",
                    "authorization_denied",
                    f"a human denied this call of {call.tool_name}",
                    details={"request_id": str(row["id"])},
                )
        reason = f"{call.tool_name} is a {call.security_level} tool and needs a human's approval"
        view = await self.request(principal, call, reason)
        raise NeedsApproval(view)

    async def decide(self, principal: Principal, request_id: str, *, approve: bool, note: str) -> dict[str, Any]:
        """Approve or deny: the owner (or an admin) may; the key that asked may not. 404 hides others' requests."""
        if _uuid_or_none(request_id) is None:
            raise ApiError(404, "not_found", "no such authorization request")
        owner = None if principal.is_admin else principal.user_id
        async with self.db.transaction() as conn:
            row = await store.decide(
                conn,
                request_id,
                owner=owner,
                approve=approve,
                decided_by=principal.user_id,
                decider_key=principal.key_id,
                note=note,
                valid_seconds=self.valid_seconds,
            )
            if row is not None:
                return store.request_view(row)
            existing = await store.get_request(conn, request_id, owner)
        if existing is None:
            raise ApiError(404, "not_found", "no such authorization request")
        if existing["status"] == "pending" and not existing["expired"]:
            raise ApiError(403, "self_approval_forbidden", "the credential that asked for this approval can't grant it")
        state = "expired" if existing["expired"] else existing["status"]
        raise ApiError(409, "already_decided", f"this request is {state}")

    async def get(self, principal: Principal, request_id: str) -> dict[str, Any]:
        if _uuid_or_none(request_id) is None:
            raise ApiError(404, "not_found", "no such authorization request")
        async with self.db.connection() as conn:
            row = await store.get_request(conn, request_id, None if principal.is_admin else principal.user_id)
        if row is None:
            raise ApiError(404, "not_found", "no such authorization request")
        return store.request_view(row)

    async def list(
        self, principal: Principal, *, everyone: bool, status: str | None, limit: int
    ) -> list[dict[str, Any]]:
        if everyone:
            principal.require("admin")
        async with self.db.connection() as conn:
            rows = await store.list_requests(
                conn, owner=None if everyone else principal.user_id, status=status, limit=limit
            )
        return [store.request_view(r) for r in rows]
