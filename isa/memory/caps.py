"""The memory domain's one `Capabilities` object, shared by its memory and knowledge tool modules."""

from __future__ import annotations

from isa.mcp.registry import Capabilities

capabilities = Capabilities("isa.memory")
