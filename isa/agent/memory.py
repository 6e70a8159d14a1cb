"""The seam for long-term memory: recall before a turn, write back after it.

No memory domain exists yet, so the default remembers nothing and says so in the `memory_update` event. A
memory implementation (over the MCP memory tools) provides `recall` and `store` with the same signatures and is
chosen in `register`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


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
