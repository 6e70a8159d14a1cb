"""The prompt library served over MCP. It declares capabilities only (see `tools.py`); no routes."""

from __future__ import annotations

from isa.core.builder import AppBuilder


def register(builder: AppBuilder) -> None:
    """Nothing to wire: the MCP registry finds `isa.prompts.tools` by convention."""
