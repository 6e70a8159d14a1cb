"""A fake LLM provider that speaks the OpenAI wire format on loopback, scripted per model name.

Start it with `FakeOpenAI().start()` (a uvicorn server in a thread) or the `fake_openai` fixture style:

    fake = FakeOpenAI().start()
    fake.script("gpt-x", Reply(tool_calls=[call("search", {"q": "cats"})]), Reply(text="Cats are great."))
    ... point a client at fake.base_url (".../v1") ...
    fake.requests_for("gpt-x")[1].body["messages"]  # what the second call sent
    fake.stop()

Each model name has a queue of scripted replies; a reply with `times=N` answers N calls. When a model's
queue is empty the fake answers with a default reply ("fake reply to: <last user text>"), so tests only
script what they care about. The same scripting is available over HTTP for other processes:
`POST /_fake/script {"model": "m", "replies": [{...Reply fields...}]}`, `POST /_fake/reset`,
`GET /_fake/requests`.

Replies can be plain text, tool calls, errors (any status, N times), slow (delay before answering),
streams cut in the middle (`cut_after` chunks, then the connection drops), or streams that stall.
Every request is recorded with its headers and JSON body; streams closed by the client are counted.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import struct
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.support.procs import free_port, port_open, wait_for

# A 1x1 transparent PNG, for image generations (one that decodes: isa.media checks every image it stores).
PNG_1X1 = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360606060000000050001a5f64540"
        "0000000049454e44ae426082"
    )
).decode()


@dataclass
class ToolCall:
    name: str
    arguments: dict[str, Any]
    id: str = field(default_factory=lambda: "call_" + uuid.uuid4().hex[:12])


def call(name: str, arguments: dict[str, Any] | None = None) -> ToolCall:
    """A tool call the fake model makes."""
    return ToolCall(name, arguments or {})


@dataclass
class Reply:
    """One scripted answer. Unset fields fall back to a sensible default for the endpoint."""

    text: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    status: int = 200  # != 200: answer with an OpenAI error body
    error_message: str = "scripted failure"
    times: int = 1  # how many calls this reply answers
    delay: float = 0.0  # seconds before the response starts
    chunk_delay: float = 0.0  # seconds between stream chunks
    chunks: int = 3  # how many content pieces a stream splits the text into
    cut_after: int | None = None  # stream: drop the connection after this many chunks
    stall_after: int | None = None  # stream: stop sending (but keep the connection) after this many chunks
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    image_format: str | None = None  # images: "b64_json" or "url" whatever the request asked (providers differ)

    @classmethod
    def error(cls, status: int, times: int = 1, message: str = "scripted failure") -> Reply:
        return cls(status=status, times=times, error_message=message)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Reply:
        calls = [
            ToolCall(c["name"], c.get("arguments", {}), c.get("id") or call("x").id) for c in data.get("tool_calls", [])
        ]
        return cls(**{**{k: v for k, v in data.items() if k != "tool_calls"}, "tool_calls": calls})


@dataclass
class Recorded:
    method: str
    path: str
    model: str | None
    headers: dict[str, str]
    body: dict[str, Any]
    at: float
    finished_at: float | None = None  # when a non-streamed answer was ready (streams: None)


def _tokens(text: str) -> int:
    return max(1, len(text.split()))


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def fake_vector(text: str, dims: int = 8) -> list[float]:
    """A deterministic unit vector for `text` (so tests can compare what they got)."""
    digest = hashlib.sha256(text.encode()).digest()
    raw = [(digest[i % len(digest)] - 127.5) / 127.5 for i in range(dims)]
    norm = sum(v * v for v in raw) ** 0.5 or 1.0
    return [v / norm for v in raw]


class FakeOpenAI:
    """The fake provider: scripts, recorded requests, counters, and the server thread."""

    def __init__(self, host: str = "127.0.0.1", port: int | None = None, models: list[str] | None = None) -> None:
        self.host = host
        self.port = port or free_port()
        self.models = models  # what GET /v1/models lists (a local server's own names); None: the scripted names
        self._lock = threading.Lock()
        self._scripts: dict[str, deque[Reply]] = {}
        self.requests: list[Recorded] = []
        self.client_disconnects = 0  # streams the client closed before the end
        self.completed_streams = 0
        self.image_downloads = 0  # GETs of /images/{name} (the "url" image answers)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/embeddings", self._embeddings, methods=["POST"]),
                Route("/v1/images/generations", self._images, methods=["POST"]),
                Route("/v1/audio/transcriptions", self._transcriptions, methods=["POST"]),
                Route("/images/{name}", self._image_file, methods=["GET"]),  # where "url" image answers point
                Route("/v1/models", self._models, methods=["GET"]),
                Route("/_fake/script", self._http_script, methods=["POST"]),
                Route("/_fake/reset", self._http_reset, methods=["POST"]),
                Route("/_fake/requests", self._http_requests, methods=["GET"]),
            ]
        )

    # -- scripting ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """What an OpenAI client takes as base_url."""
        return self.url + "/v1"

    def script(self, model: str, *replies: Reply) -> None:
        """Queue replies for `model` ("*" answers any model without its own queue)."""
        with self._lock:
            self._scripts.setdefault(model, deque()).extend(replies)

    def reset(self) -> None:
        with self._lock:
            self._scripts.clear()
            self.requests.clear()
            self.client_disconnects = 0
            self.completed_streams = 0

    def requests_for(self, model: str | None = None, path: str | None = None) -> list[Recorded]:
        with self._lock:
            return [
                r for r in self.requests if (model is None or r.model == model) and (path is None or r.path == path)
            ]

    def count(self, model: str | None = None, path: str | None = None) -> int:
        return len(self.requests_for(model, path))

    def pending(self, model: str) -> int:
        """Scripted calls not yet answered for `model`."""
        with self._lock:
            return sum(r.times for r in self._scripts.get(model, ()))

    def _next(self, model: str | None) -> Reply | None:
        with self._lock:
            for key in (model or "", "*"):
                queue = self._scripts.get(key)
                if queue:
                    reply = queue[0]
                    if reply.times <= 1:
                        queue.popleft()
                        return reply
                    queue[0] = Reply(**{**reply.__dict__, "times": reply.times - 1})
                    return reply
        return None

    async def _record(self, request: Request) -> tuple[dict[str, Any], Reply | None]:
        """Record the request, take its scripted reply and wait out the reply's delay."""
        if request.headers.get("content-type", "").startswith("multipart/"):
            form = await request.form()
            body: dict[str, Any] = {k: v for k, v in form.items() if isinstance(v, str)}
            body["_files"] = [k for k, v in form.items() if not isinstance(v, str)]
        else:
            body = json.loads(await request.body() or b"{}")
        model = body.get("model")
        recorded = Recorded(request.method, request.url.path, model, dict(request.headers), body, time.time())
        with self._lock:
            self.requests.append(recorded)
        reply = self._next(model)
        if reply is not None and reply.delay:
            await asyncio.sleep(reply.delay)
        if not body.get("stream"):
            recorded.finished_at = time.time()
        return body, reply

    @staticmethod
    def _error(reply: Reply) -> Response:
        kind = {429: "rate_limit_error", 401: "authentication_error", 400: "invalid_request_error"}.get(
            reply.status, "server_error"
        )
        body = {"error": {"message": reply.error_message, "type": kind, "code": str(reply.status), "param": None}}
        return JSONResponse(body, status_code=reply.status, headers=reply.headers)

    # -- endpoints ----------------------------------------------------------------------------
    async def _chat(self, request: Request) -> Response:
        body, reply = await self._record(request)
        reply = reply or Reply()
        if reply.status != 200:
            return self._error(reply)
        messages = body.get("messages", [])
        text = reply.text if reply.text is not None else ("" if reply.tool_calls else None)
        if text is None:
            text = "fake reply to: " + _last_user_text(messages)
        prompt_tokens = reply.prompt_tokens or sum(_tokens(json.dumps(m.get("content"))) for m in messages)
        completion_tokens = reply.completion_tokens or (_tokens(text) if text else 0) + 10 * len(reply.tool_calls)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        finish = reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")
        model = body.get("model", "fake")
        ident = "chatcmpl-" + uuid.uuid4().hex[:16]
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            gen = self._stream(ident, model, text, reply, finish, usage if include_usage else None)
            return StreamingResponse(gen, media_type="text/event-stream", headers=reply.headers)
        message: dict[str, Any] = {"role": "assistant", "content": text or None}
        if reply.tool_calls:
            message["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": json.dumps(c.arguments)}}
                for c in reply.tool_calls
            ]
        payload = {
            "id": ident,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
            "usage": usage,
        }
        return JSONResponse(payload, headers=reply.headers)

    def _pieces(self, text: str, n: int) -> list[str]:
        if not text:
            return []
        n = max(1, min(n, len(text)))
        size = -(-len(text) // n)
        return [text[i : i + size] for i in range(0, len(text), size)]

    async def _stream(
        self, ident: str, model: str, text: str, reply: Reply, finish: str, usage: dict[str, int] | None
    ) -> AsyncIterator[bytes]:
        created = int(time.time())

        def chunk(delta: dict[str, Any], finish_reason: str | None = None, **extra: Any) -> bytes:
            data = {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}] if delta is not None else [],
                **extra,
            }
            return f"data: {json.dumps(data)}\n\n".encode()

        frames = [chunk({"role": "assistant", "content": ""})]
        frames += [chunk({"content": piece}) for piece in self._pieces(text, reply.chunks)]
        for i, c in enumerate(reply.tool_calls):
            frames.append(
                chunk(
                    {
                        "tool_calls": [
                            {
                                "index": i,
                                "id": c.id,
                                "type": "function",
                                "function": {"name": c.name, "arguments": ""},
                            }
                        ]
                    }
                )
            )
            frames.append(chunk({"tool_calls": [{"index": i, "function": {"arguments": json.dumps(c.arguments)}}]}))
        frames.append(chunk({}, finish))
        if usage is not None:
            frames.append(chunk(None, usage=usage))  # type: ignore[arg-type]
        frames.append(b"data: [DONE]\n\n")
        finished = False
        try:
            for i, frame in enumerate(frames):
                if reply.cut_after is not None and i >= reply.cut_after:
                    raise ConnectionAbortedError("scripted stream cut")  # uvicorn drops the connection
                if reply.stall_after is not None and i >= reply.stall_after:
                    await asyncio.sleep(3600)
                if i and reply.chunk_delay:
                    await asyncio.sleep(reply.chunk_delay)
                yield frame
            finished = True
            with self._lock:
                self.completed_streams += 1
        finally:
            if not finished and reply.cut_after is None:
                with self._lock:
                    self.client_disconnects += 1

    async def _embeddings(self, request: Request) -> Response:
        body, reply = await self._record(request)
        if reply is not None and reply.status != 200:
            return self._error(reply)
        inputs = body.get("input", [])
        texts = [inputs] if isinstance(inputs, str) else [str(i) for i in inputs]
        dims = int(body.get("dimensions") or 8)
        data = []
        for i, text in enumerate(texts):
            vector = fake_vector(text, dims)
            if body.get("encoding_format") == "base64":
                encoded: Any = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()
            else:
                encoded = vector
            data.append({"object": "embedding", "index": i, "embedding": encoded})
        tokens = sum(_tokens(t) for t in texts)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return JSONResponse({"object": "list", "data": data, "model": body.get("model"), "usage": usage})

    async def _images(self, request: Request) -> Response:
        body, reply = await self._record(request)
        if reply is not None and reply.status != 200:
            return self._error(reply)
        n = int(body.get("n") or 1)
        if (reply.image_format if reply and reply.image_format else body.get("response_format")) == "b64_json":
            data = [{"b64_json": PNG_1X1, "revised_prompt": body.get("prompt")} for _ in range(n)]
        else:
            data = [{"url": f"{self.url}/images/{uuid.uuid4().hex}.png"} for _ in range(n)]
        return JSONResponse({"created": int(time.time()), "data": data})

    async def _image_file(self, request: Request) -> Response:
        self.image_downloads += 1
        return Response(base64.b64decode(PNG_1X1), media_type="image/png")

    async def _transcriptions(self, request: Request) -> Response:
        body, reply = await self._record(request)
        if reply is not None and reply.status != 200:
            return self._error(reply)
        text = reply.text if reply and reply.text is not None else "fake transcript"
        if body.get("response_format") == "text":
            return Response(text, media_type="text/plain")
        return JSONResponse({"text": text, "usage": {"type": "duration", "seconds": 3}})

    async def _models(self, request: Request) -> Response:
        with self._lock:
            names = self.models or sorted(k for k in self._scripts if k != "*") or ["fake-model"]
        return JSONResponse(
            {"object": "list", "data": [{"id": n, "object": "model", "owned_by": "fake"} for n in names]}
        )

    async def _http_script(self, request: Request) -> Response:
        data = await request.json()
        self.script(data["model"], *(Reply.from_dict(r) for r in data.get("replies", [])))
        return JSONResponse({"ok": True, "pending": self.pending(data["model"])})

    async def _http_reset(self, request: Request) -> Response:
        self.reset()
        return JSONResponse({"ok": True})

    async def _http_requests(self, request: Request) -> Response:
        with self._lock:
            rows = [asdict(r) for r in self.requests]
        return JSONResponse({"requests": rows, "client_disconnects": self.client_disconnects})

    # -- server -------------------------------------------------------------------------------
    def start(self) -> FakeOpenAI:
        config = uvicorn.Config(
            self.app, host=self.host, port=self.port, log_level="warning", access_log=False, lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name=f"fake-openai-{self.port}", daemon=True)
        self._thread.start()
        wait_for(lambda: port_open(self.port), timeout=10)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def replies(*items: Reply | Iterable[Reply]) -> list[Reply]:
    """Flatten replies and lists of replies (handy when building a conversation script)."""
    out: list[Reply] = []
    for item in items:
        out.extend([item] if isinstance(item, Reply) else item)
    return out


FAKE_KEY_ENV = "ISA_TEST_FAKE_PROVIDER_KEY"


def model_section(fake: FakeOpenAI, **overrides: Any) -> dict[str, Any]:
    """An isa `[model]` settings section whose deployments all live on `fake`.

    Groups: "main" (provider alpha, fake model "gpt-4o-mini") falling back to "backup" (provider beta,
    "gpt-4o"); "gem" (labelled provider gemini, so tool schemas are sanitised); "emb", "img", "stt";
    aliases default -> main, fast -> backup, vision -> main, embed -> the local MiniLM, image, transcribe. Set
    os.environ[FAKE_KEY_ENV] to any value before the app starts.
    """

    def dep(name: str, model: str, provider: str, mode: str = "chat", **extra: Any) -> dict[str, Any]:
        return {
            "name": name,
            "model": f"openai/{model}",
            "provider": provider,
            "mode": mode,
            "api_base": fake.base_url,
            "api_key_env": FAKE_KEY_ENV,
            **extra,
        }

    section: dict[str, Any] = {
        "request_timeout_seconds": 5.0,
        "stream_idle_timeout_seconds": 5.0,
        "total_timeout_seconds": 30.0,
        "num_retries": 2,
        "allowed_fails": 1,
        "cooldown_seconds": 30.0,
        "credits_per_1k_tokens": 1.0,
        "min_credits_per_call": 0.001,
        "aliases": {
            "default": "main",
            "fast": "backup",
            "vision": "main",
            "embed": "all-MiniLM-L6-v2",
            "image": "img",
            "transcribe": "stt",
        },
        "fallbacks": {"main": ["backup"]},
        "deployments": [
            dep("main", "gpt-4o-mini", "alpha"),
            dep("backup", "gpt-4o", "beta"),
            dep("gem", "gemini-2.0-flash", "gemini"),
            dep("emb", "text-embedding-3-small", "alpha", "embedding"),
            dep("img", "dall-e-3", "alpha", "image"),
            dep("stt", "whisper-1", "alpha", "transcription"),
        ],
    }
    extra_deployments = overrides.pop("extra_deployments", [])
    section["deployments"] += [dep(**d) for d in extra_deployments]
    section.update(overrides)
    return section


if __name__ == "__main__":  # python -m tests.support.fake_openai --port N: a fake in its own process
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    server = FakeOpenAI(port=args.port or None)
    config = uvicorn.Config(server.app, host="127.0.0.1", port=server.port, log_level="warning", access_log=False)
    print(f"fake provider on {server.base_url}", flush=True)
    uvicorn.Server(config).run()
