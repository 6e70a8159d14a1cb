"""Loopback fakes for event-service tests: the agent's /api/chat/message and a web page the test changes."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import jwt
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from isa.core.settings import Settings
from tests.support.mcp_servers import serve_asgi, settings_with

SECRET = "s" * 40  # isa token secret of the tests (the worker mints, the fake agent verifies)
CALLBACK_SECRET = "c" * 32


def events_settings(settings: Settings, **events: Any) -> Settings:
    values = {"egress_allow_cidrs": "127.0.0.0/8", "callback_secret": CALLBACK_SECRET, **events}
    return settings_with(settings, events=values, auth={"token_secret": SECRET})


@dataclass
class FakeAgent:
    """POST /api/chat/message speaking the agent's wire format; records who called with what."""

    url: str = ""
    calls: list[dict[str, Any]] = field(default_factory=list)
    fail_next: int = 0  # answer this many calls with 503 first
    gate: threading.Event = field(default_factory=threading.Event)  # cleared: calls block until set

    async def handle(self, request: Request) -> Response:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience="isa", issuer="isa")
        body = await request.json()
        self.calls.append({"user_id": claims["sub"], **body})
        while not self.gate.is_set():  # a thread of uvicorn's loop would block; poll without blocking the loop
            await anyio.sleep(0.02)
        if self.fail_next > 0:
            self.fail_next -= 1
            return JSONResponse({"error": "busy"}, status_code=503)
        return JSONResponse({"response": f"noted: {body['message'][:40]}", "processing_time": 0.01, "model": "fake"})


@contextmanager
def fake_agent() -> Iterator[FakeAgent]:
    fake = FakeAgent()
    fake.gate.set()
    app = Starlette(routes=[Route("/api/chat/message", fake.handle, methods=["POST"])])
    with serve_asgi(app) as url:
        fake.url = url
        yield fake


@dataclass
class Page:
    """A local web page whose body the test changes; a request can be held until `release` is set."""

    url: str = ""
    body: str = "<html><body>nothing yet</body></html>"
    hits: int = 0
    release: threading.Event = field(default_factory=threading.Event)

    async def handle(self, request: Request) -> Response:
        self.hits += 1
        while not self.release.is_set():
            await anyio.sleep(0.02)
        return PlainTextResponse(self.body, media_type="text/html")


@contextmanager
def fake_page() -> Iterator[Page]:
    fake = Page()
    fake.release.set()
    with serve_asgi(Starlette(routes=[Route("/page", fake.handle)])) as url:
        fake.url = url + "/page"
        yield fake
