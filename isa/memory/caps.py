"""The memory domain's one `Capabilities` object, shared by its tool and resource modules."""

from __future__ import annotations

from isa.mcp.registry import Capabilities

capabilities = Capabilities("isa.memory")
