"""Server-sent events that stop the upstream call when the client goes away."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send


def sse(data: Any) -> bytes:
    """One `data:` frame."""
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"data: {text}\n\n".encode()


class EventStream(Response):
    """An SSE response that owns its iterator: a client disconnect cancels it at once.

    Starlette's StreamingResponse leaves a cancelled async generator for the garbage collector;
    here the generator is closed (shielded) before the response returns, so its cleanup — closing
    the provider stream and recording usage — always runs, and runs now.
    """

    media_type = "text/event-stream"

    def __init__(self, frames: AsyncIterator[bytes], headers: Mapping[str, str] | None = None) -> None:
        super().__init__(
            content=None, headers={"cache-control": "no-cache", "x-accel-buffering": "no", **(headers or {})}
        )
        # A stream has no length: drop the content-length: 0 that Response adds for an empty body.
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
        self.frames = frames

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as tg:

                async def watch_disconnect() -> None:
                    while True:
                        message = await receive()
                        if message["type"] == "http.disconnect":
                            tg.cancel_scope.cancel()
                            return

                tg.start_soon(watch_disconnect)
                await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
                async for frame in self.frames:
                    await send({"type": "http.response.body", "body": frame, "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                aclose = getattr(self.frames, "aclose", None)
                if aclose is not None:
                    await aclose()
