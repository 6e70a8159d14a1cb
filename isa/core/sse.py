"""Server-sent events: the response base every SSE endpoint shares (model streams, the agent's chat).

What they share is the wire (headers for proxies, no content-length, `data:` frames) and the rule that a
client going away cancels the work at once instead of leaving it to the garbage collector. What they send
stays theirs (`isa.model.streaming.EventStream`, `isa.agent.events.ChatStream`).
"""

from __future__ import annotations

from collections.abc import Mapping

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

# no-cache: nothing in between may store a stream; x-accel-buffering: nginx must pass each frame on at once.
SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


def data_frame(text: str) -> bytes:
    """One `data:` frame."""
    return f"data: {text}\n\n".encode()


class SseResponse(Response):
    """A `text/event-stream` response whose subclass writes the body itself in `__call__`."""

    media_type = "text/event-stream"

    def __init__(self, headers: Mapping[str, str] | None = None, status_code: int = 200) -> None:
        super().__init__(content=None, status_code=status_code, headers={**SSE_HEADERS, **(headers or {})})
        # A stream has no length: drop the content-length: 0 that Response adds for an empty body.
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]

    async def start(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})

    @staticmethod
    async def chunk(send: Send, body: bytes, *, last: bool = False) -> None:
        await send({"type": "http.response.body", "body": body, "more_body": not last})


async def cancel_on_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
    """Wait for the client's `http.disconnect`, then cancel `scope` (run it in the task group doing the work)."""
    while (await receive())["type"] != "http.disconnect":
        pass
    scope.cancel()


def shutting_down(scope: Scope) -> bool:
    """Whether the node is past SIGTERM (isa.server sets it before uvicorn starts stopping)."""
    app = scope.get("app")
    state = getattr(getattr(app, "state", None), "isa", None)
    return bool(getattr(state, "shutting_down", False))
