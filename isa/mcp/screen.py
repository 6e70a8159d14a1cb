"""The hook through which untrusted tool output (imported servers, web pages) is screened before a model sees it.

A domain that screens (isa.guardrails, when `guardrails.screen_untrusted` is on) provides a service named
`output_screen` implementing `OutputScreen`; the runner passes every untrusted result's data through it and puts
the report in the envelope's `guardrail` field. No such service: the data passes unchanged.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

OUTPUT_SCREEN = "output_screen"


@runtime_checkable
class OutputScreen(Protocol):
    async def screen_output(self, user_id: str, data: Any) -> tuple[Any, dict[str, Any] | None]:
        """(the data to pass on, a report of what was done or None when nothing was found)."""
        ...
