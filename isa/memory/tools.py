"""MCP capabilities of the memory domain: 13 memory tools, 9 knowledge tools and the memory:// resources."""

from __future__ import annotations

from isa.memory import knowledge_tools, memory_tools
from isa.memory.caps import capabilities

__all__ = ["capabilities", "knowledge_tools", "memory_tools"]
