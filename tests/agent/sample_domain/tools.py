"""Tools the agent tests call: one that never finishes in time, one that counts calls."""

from __future__ import annotations

from typing import Any

import anyio

from isa.mcp.context import current_call
from isa.mcp.registry import Capabilities

capabilities = Capabilities("tests.agent.sample_domain")


@capabilities.tool(category="test", keywords=["slow", "hang", "sleep", "wait"])
async def slow_lookup(seconds: float = 30.0) -> dict[str, Any]:
    """Look something up very slowly (sleeps the given number of seconds first)."""
    await anyio.sleep(seconds)
    return {"slept": seconds}


@capabilities.tool(category="test", keywords=["weather", "forecast", "temperature", "city"])
async def weather_forecast(city: str) -> dict[str, Any]:
    """Tomorrow's weather forecast for a city (a fixed, fake forecast for tests)."""
    return {"city": city, "forecast": "sunny", "high_c": 21, "asked_by": current_call().principal.user_id}
