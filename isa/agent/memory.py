"""The seam for long-term memory: recall before a turn, write back after it.

`McpMemory` (chosen in `register` when an mcp node is configured) uses the memory tools of the mcp node as the user,
through the agent's own MCP client and a short token minted for that user (never the caller's credential):
- recall: `POST /api/v1/memories/search` on the mcp node (the `search_memories` tool's service over HTTP, so no MCP
  handshake sits before the first token); at most `recall_limit` hits above `recall_min_similarity`, each one
  line of at most `recall_max_chars`, marked as remembered data. The engine puts them in a system message.
- store: `store_factual_memory` with the user's words of the turn (the mcp node extracts, LLM or rules),
  `keep_notes=false` (a question or small talk stores nothing) and the session id (its rolling summary).
  The turn's messages themselves are already written to the session by the agent's own end-of-request
  transaction, so `store_session_message` is not called (it would write the user's message twice).
Memory failing never fails the turn: recall gives nothing, store reports `status="failed"`; both are logged.
`NoMemory` remembers nothing (memory turned off, or no mcp node).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol

import anyio

from isa.agent.events import AgentError
from isa.agent.mcp_client import McpLink, SchemaCache
from isa.agent.settings import AgentMemorySettings
from isa.agent.upstream import Upstreams
from isa.auth.principal import Principal
from isa.core.logging import get_logger

log = get_logger(__name__)

_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class MemoryUpdate:
    memories_stored: int
    status: str

    def event(self) -> dict[str, object]:
        return {"memories_stored": self.memories_stored, "status": self.status}


class Memory(Protocol):
    async def recall(self, user_id: str, message: str) -> list[str]:
        """Facts worth putting in front of the model for this message."""

    async def store(self, user_id: str, session_id: str, message: str, answer: str) -> MemoryUpdate:
        """Keep what this turn taught about the user."""


class NoMemory:
    async def recall(self, user_id: str, message: str) -> list[str]:
        return []

    async def store(self, user_id: str, session_id: str, message: str, answer: str) -> MemoryUpdate:
        return MemoryUpdate(0, "disabled")


def _one_line(text: Any, limit: int) -> str:
    flat = _SPACE.sub(" ", str(text)).strip()
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def recall_line(hit: dict[str, Any], limit: int) -> str:
    """One search hit as a bounded line, labelled as remembered data (facts as subject / relation / value)."""
    if hit.get("memory_type") == "factual" and hit.get("predicate") not in (None, "note"):
        relation = str(hit["predicate"]).replace("_", " ")
        body = f"{hit.get('subject')} / {relation} / {hit.get('object_value')} ({hit.get('content')})"
    else:
        body = str(hit.get("content") or "")
    return _one_line(f"[remembered {hit.get('memory_type', 'memory')}] {body}", limit)


class McpMemory:
    """Memory over the mcp node's memory tools, called as the user."""

    def __init__(self, upstreams: Upstreams, settings: AgentMemorySettings) -> None:
        self.upstreams = upstreams
        self.settings = settings
        self.cache = SchemaCache()

    def _token(self, user_id: str) -> str:
        # The chat route required the write scope of this user; the token carries at most read+write.
        return self.upstreams.token_for(Principal(user_id, frozenset({"read", "write"}), "isa"))

    async def _call(self, user_id: str, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        limit = self.settings.memory_timeout_seconds
        with anyio.fail_after(limit + 2):  # the handshake too, not only the call
            async with McpLink(self.upstreams, self._token(user_id), "", self.cache) as link:
                outcome = await link.call_tool(tool, arguments, limit)
        if outcome.is_error or outcome.envelope is None:
            raise AgentError("memory_failed", f"{tool} failed: {outcome.text[:200]}")
        data = outcome.envelope.get("data")
        if outcome.status != "success" or not isinstance(data, dict):
            raise AgentError("memory_failed", f"{tool} answered {outcome.status}")
        return data

    async def recall(self, user_id: str, message: str) -> list[str]:
        s = self.settings
        if s.recall_limit == 0 or not message.strip():
            return []
        # Plain HTTP next to /discover, not an MCP session: a handshake would sit on the path to the first token.
        body = {"query": message[:2000], "top_k": s.recall_limit, "min_similarity": s.recall_min_similarity}
        try:
            with anyio.fail_after(s.memory_timeout_seconds):
                async with self.upstreams.client(
                    "mcp", self._token(user_id), read_timeout=s.memory_timeout_seconds
                ) as http:
                    response = await http.post("/api/v1/memories/search", json=body)
            if response.status_code != 200:
                raise AgentError("memory_failed", f"memory search answered HTTP {response.status_code}")
            data = response.json()
        except Exception as exc:  # never fail the turn: answer without memories
            log.warning("memory_recall_failed", error=type(exc).__name__, detail=str(exc)[:200])
            return []
        hits = [h for h in data.get("results", []) if isinstance(h, dict)]
        good = [h for h in hits if float(h.get("similarity", -1)) >= s.recall_min_similarity]
        return [recall_line(h, s.recall_max_chars) for h in good[: s.recall_limit]]

    async def store(self, user_id: str, session_id: str, message: str, answer: str) -> MemoryUpdate:
        if not message.strip():
            return MemoryUpdate(0, "nothing_to_store")
        arguments = {"dialog_content": message[:20_000], "keep_notes": False, "session_id": session_id}
        try:
            data = await self._call(user_id, "store_factual_memory", arguments)
        except Exception as exc:  # the answer stands; memory reports the failure
            log.warning("memory_store_failed", error=type(exc).__name__, detail=str(exc)[:200])
            return MemoryUpdate(0, "failed")
        changed = [r for r in data.get("stored", []) if isinstance(r, dict) and r.get("action") != "reinforced"]
        return MemoryUpdate(len(changed), "stored" if changed else "nothing_new")
