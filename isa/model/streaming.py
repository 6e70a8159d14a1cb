"""Server-sent events that stop the upstream call when the client goes away."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Mapping
from contextlib import aclosing
from typing import Any

import anyio
from starlette.types import Receive, Scope, Send

from isa.core.sse import SseResponse, cancel_on_disconnect, data_frame


def sse(data: Any) -> bytes:
    """One `data:` frame."""
    return data_frame(data if isinstance(data, str) else json.dumps(data, separators=(",", ":")))


class EventStream(SseResponse):
    """An SSE response that owns its iterator: a client disconnect cancels it at once.

    Starlette's StreamingResponse leaves a cancelled async generator for the garbage collector;
    here the generator is closed (shielded) before the response returns, so its cleanup — closing
    the provider stream and recording usage — always runs, and runs now.
    """

    def __init__(self, frames: AsyncIterator[bytes], headers: Mapping[str, str] | None = None) -> None:
        super().__init__(headers)
        self.frames = frames

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(cancel_on_disconnect, receive, tg.cancel_scope)
                await self.start(send)
                async for frame in self.frames:
                    await self.chunk(send, frame)
                await self.chunk(send, b"", last=True)
                tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                aclose = getattr(self.frames, "aclose", None)
                if aclose is not None:
                    await aclose()


async def relay(
    chunks: AsyncGenerator[dict[str, Any], None], frame: Callable[[dict[str, Any]], Iterable[bytes]]
) -> AsyncIterator[bytes]:
    """The frames of the upstream's chunks, as `frame` writes them.

    aclosing: if the client leaves while we wait to send, the upstream closes now, not at GC.
    """
    async with aclosing(chunks):
        async for chunk in chunks:
            for out in frame(chunk):
                yield out
