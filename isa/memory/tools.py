"""MCP capabilities of the memory domain: 13 memory tools and the memory:// resources."""

from __future__ import annotations

from isa.memory import memory_tools, resources
from isa.memory.caps import capabilities

__all__ = ["capabilities", "memory_tools", "resources"]
