"""isa: one package that serves tools to AI agents (MCP server, model gateway, agent API)."""

__version__ = "0.1.0"
