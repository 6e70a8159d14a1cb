"""The chat stream's wire: SSE `data:` frames `{type, content, timestamp, session_id, ...}`, heartbeats, `[DONE]`.

`ChatStream` is the response: the run works in one task and puts events on a channel; the response task
sends them as they come and a heartbeat comment whenever nothing was sent for `heartbeat_seconds`. A client
that goes away cancels the run (its clean-up is shielded); a run cut by shutdown still ends with an `error`
event and `[DONE]`.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectSendStream
from starlette.types import Receive, Scope, Send

from isa.core.logging import get_logger
from isa.core.sse import SseResponse, cancel_on_disconnect, data_frame, shutting_down

log = get_logger(__name__)

EVENT_TYPES = (
    "start",
    "custom_stream",
    "message_stream",
    "graph_update",
    "memory_update",
    "billing",
    "end",
    "error",
    "resume_start",
    "resume_end",
)
HEARTBEAT = b": heartbeat\n\n"
DONE = b"data: [DONE]\n\n"


class AgentError(Exception):
    """Ends a run with an `error` event carrying a stable machine code."""

    def __init__(self, code: str, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after


def first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first failure inside a task group's exception group (an AgentError, a timeout, a cancellation)."""
    inner = group.exceptions[0]
    return first_error(inner) if isinstance(inner, BaseExceptionGroup) else inner


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def frame(event: dict[str, Any]) -> bytes:
    return data_frame(json.dumps(event, separators=(",", ":"), ensure_ascii=False, default=str))


class Emitter:
    """What a run calls to send an event; fills in timestamp, session id and the resume flag."""

    def __init__(self, channel: MemoryObjectSendStream[dict[str, Any]] | None, session_id: str, resumed: bool) -> None:
        self.channel = channel
        self.session_id = session_id
        self.resumed = resumed
        self.sent: list[dict[str, Any]] = []  # what a non-streamed run collects instead

    async def __call__(self, kind: str, content: Any, **extra: Any) -> None:
        event: dict[str, Any] = {
            "type": kind,
            "content": content,
            "timestamp": now_iso(),
            "session_id": self.session_id,
        }
        if self.resumed:
            event["resumed"] = True
        event.update(extra)
        if self.channel is None:
            self.sent.append(event)
            return
        # A client that went away doesn't stop the run's clean-up.
        with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
            await self.channel.send(event)

    async def progress(self, text: str, **extra: Any) -> None:
        await self(
            "custom_stream", {"type": "progress", "data": text}, stream_mode="custom", data={"progress": text}, **extra
        )


Worker = Callable[[Emitter], Awaitable[None]]


class ChatStream(SseResponse):
    """An SSE response that runs `worker` and streams what it emits, with heartbeats and a final `[DONE]`."""

    def __init__(self, worker: Worker, session_id: str, heartbeat_seconds: float, *, resumed: bool = False) -> None:
        super().__init__({"x-isa-session-id": session_id})
        self.worker = worker
        self.session_id = session_id
        self.heartbeat_seconds = heartbeat_seconds
        self.resumed = resumed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        sender, events = anyio.create_memory_object_stream[dict[str, Any]](256)
        emitter = Emitter(sender, self.session_id, self.resumed)
        finished = False
        try:
            async with anyio.create_task_group() as tg:

                async def work() -> None:
                    async with sender:
                        try:
                            await self.worker(emitter)
                        except Exception:  # the worker reports its own failures; this is the last resort
                            log.exception("chat_worker_crashed", session_id=self.session_id)
                            await emitter("error", "the request failed", code="internal_error")

                tg.start_soon(cancel_on_disconnect, receive, tg.cancel_scope)
                tg.start_soon(work)
                await self.start(send)
                async with events:
                    while True:
                        with anyio.move_on_after(self.heartbeat_seconds):
                            try:
                                event = await events.receive()
                            except anyio.EndOfStream:
                                break
                            await self.chunk(send, frame(event))
                            continue
                        await self.chunk(send, HEARTBEAT)
                await self.chunk(send, DONE, last=True)
                finished = True
                tg.cancel_scope.cancel()
        except anyio.get_cancelled_exc_class():
            if finished or not shutting_down(scope):
                raise
            # uvicorn cancels the requests still running when its graceful bound ends; the ASGI server logs any
            # exception that leaves the app as a crash. The client gets its last words and the request ends here,
            # an expected stop without a traceback (drill B2.9). Any other cancellation keeps propagating.
            finished = True
            await self._last_words(send)
        finally:
            if not finished:
                await self._last_words(send)

    async def _last_words(self, send: Send) -> None:
        """Cancelled (shutdown or a dead client): try to tell a still-listening client, then stop."""
        event = {
            "type": "error",
            "content": "the stream was interrupted (the server is shutting down or the client went away)",
            "code": "stream_interrupted",
            "timestamp": now_iso(),
            "session_id": self.session_id,
        }
        with anyio.CancelScope(shield=True), anyio.move_on_after(1):
            try:
                await self.chunk(send, frame(event) + DONE, last=True)
            except Exception:  # the connection is gone: nobody to tell
                return
