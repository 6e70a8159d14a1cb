"""Progressive disclosure: an MCP session selects the tools it wants, and its tools/list follows (docs/mcp.md).

A selection belongs to the verified user and the session id together (rows in mcp_session_tools), so another
user presenting the same session id sees nothing of it, every replica lists the same, and a reconnect with the
same session keeps it. It goes when the session ends. Every name is checked with the runner's own rules (the tool
exists, here or imported; the caller holds its scope) when selected and again whenever the list is built.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from isa.auth.principal import Principal
from isa.core.db import Database
from isa.mcp import store
from isa.mcp.envelope import ToolFailure
from isa.mcp.runner import Target, ToolRunner

# The session id of the MCP request being served (set by the server's middleware; None when stateless).
current_session: ContextVar[str | None] = ContextVar("isa_mcp_session", default=None)


class ToolSelection:
    def __init__(self, db: Database, runner: ToolRunner, cap: int) -> None:
        self.db = db
        self.runner = runner
        self.cap = cap

    async def usable(self, principal: Principal, names: list[str]) -> tuple[list[Target], list[dict[str, str]]]:
        """The tools among `names` this caller may run, and the others with the reason."""
        ok: list[Target] = []
        refused: list[dict[str, str]] = []
        for name in dict.fromkeys(names):
            try:
                target = await self.runner.resolve(name)
            except ToolFailure as failure:
                refused.append({"name": name, "reason": failure.message})
                continue
            if target.scope not in principal.scopes:
                refused.append({"name": name, "reason": f"{name} needs the {target.scope!r} scope"})
                continue
            ok.append(target)
        return ok, refused

    @staticmethod
    def _session(session_id: str | None) -> str:
        if not session_id:
            raise ToolFailure(
                "error",
                "session_required",
                "selecting tools needs a stateful MCP session (this server runs stateless): call tools by name, "
                "or through call_tool",
            )
        return session_id

    async def select(self, principal: Principal, session_id: str | None, names: list[str]) -> dict[str, Any]:
        session = self._session(session_id)
        targets, refused = await self.usable(principal, names)
        wanted = [t.name for t in targets]
        async with self.db.transaction() as conn:
            before = await store.selected_tools(conn, principal.user_id, session)
            after = await store.select_tools(conn, principal.user_id, session, wanted, self.cap) if wanted else before
        if not set(wanted) <= set(after):
            raise ToolFailure(
                "invalid_arguments",
                "selection_full",
                f"a session selects at most {self.cap} tools; deselect some first",
            )
        return {"selected": after, "added": [n for n in after if n not in before], "refused": refused}

    async def deselect(self, principal: Principal, session_id: str | None, names: list[str] | None) -> dict[str, Any]:
        session = self._session(session_id)
        async with self.db.transaction() as conn:
            removed = await store.deselect_tools(conn, principal.user_id, session, names)
            after = await store.selected_tools(conn, principal.user_id, session)
        return {"selected": after, "removed": removed}

    async def selected(self, principal: Principal, session_id: str | None) -> list[Target]:
        """The session's selected tools this caller may still run (scopes can differ between two keys)."""
        if not session_id:
            return []
        async with self.db.connection() as conn:
            names = await store.selected_tools(conn, principal.user_id, session_id)
        targets, _ = await self.usable(principal, names) if names else ([], [])
        return targets

    async def ended(self, session_id: str) -> None:
        async with self.db.connection() as conn:
            await store.drop_session_tools(conn, session_id)
