"""The direct path: chat completions forwarded on the OpenAI wire with one pooled keep-alive client.

Most providers speak the OpenAI wire natively (OpenAI, Groq, Together, Fireworks, DeepSeek, Mistral,
OpenRouter, xAI, and every OpenAI-compatible server: vLLM, llama.cpp, LM Studio, Ollama's /v1, the local
model of `model.local_url`), so nothing needs translating: the gateway sends the caller's (already
filtered) body with the provider's model name, and relays the answer. litellm stays for providers that
need translation (Anthropic, Gemini, Replicate, Bedrock, Azure's own API …) and for its cost map.

Streams are relayed event by event: an event is parsed only when it carries usage (the final chunk, asked
for with `stream_options.include_usage`) or, when tool names were renamed, tool calls; everything else is a
byte copy with the model name swapped back to the caller's.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx

from isa.model.connections import pooled_transport
from isa.model.routing import Slot
from isa.model.settings import Deployment

# litellm's provider prefix -> the provider's OpenAI-wire base URL ("" = the deployment must name api_base).
OPENAI_WIRE: dict[str, str] = {
    "openai": "https://api.openai.com/v1",
    "text-completion-openai": "https://api.openai.com/v1",
    "groq": "https://api.groq.com/openai/v1",
    "together_ai": "https://api.together.xyz/v1",
    "fireworks_ai": "https://api.fireworks.ai/inference/v1",
    "deepseek": "https://api.deepseek.com/v1",
    "mistral": "https://api.mistral.ai/v1",
    "openrouter": "https://openrouter.ai/api/v1",
    "xai": "https://api.x.ai/v1",
    "hosted_vllm": "",
    "lm_studio": "",
    "llamafile": "",
}
_USAGE = re.compile(rb'"usage"\s*:\s*\{')
_MODEL = re.compile(rb'"model"\s*:\s*"(?:[^"\\]|\\.)*"')


def direct_base(deployment: Deployment) -> str | None:
    """The OpenAI-wire base URL a chat deployment is forwarded to directly, or None (litellm serves it)."""
    if deployment.engine == "litellm" or deployment.mode != "chat":
        return None
    prefix = deployment.model.split("/", 1)[0] if "/" in deployment.model else "openai"
    default = OPENAI_WIRE.get(prefix)
    if default is None and deployment.engine != "direct":
        return None
    if deployment.extra and deployment.engine != "direct":
        return None  # litellm parameters (api_version, …) only litellm understands
    base = (deployment.api_base or default or "").rstrip("/")
    return base or None


class ProviderError(Exception):
    """A provider's HTTP error answer (its message is not passed on to callers)."""

    def __init__(self, status_code: int, retry_after: float | None, reason: str = "") -> None:
        super().__init__(reason or f"provider answered {status_code}")
        self.status_code = status_code
        self.retry_after = retry_after


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers.get("retry-after", ""))
    except ValueError:
        return None


def _reason(response: httpx.Response) -> str:
    """The provider's own message of a 400 (the caller's request was wrong: they need to know why)."""
    if response.status_code not in (400, 422):
        return ""
    try:
        error = response.json().get("error")
        message = error.get("message") if isinstance(error, dict) else error
    except (ValueError, AttributeError):
        return ""
    return str(message or "")[:300]


def _tokens(usage: Any) -> tuple[int, int]:
    if not isinstance(usage, dict):
        return 0, 0
    return int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)


class HeldStream:
    """An open upstream response and the deployment slot it holds until closed (direct or through litellm)."""

    def __init__(self, upstream: Any, deployment: Deployment, slot: Slot) -> None:
        self._upstream = upstream
        self.deployment = deployment
        self._slot = slot

    async def aclose(self) -> None:
        """Close the upstream response: unless it ended, its connection is dropped (the provider sees it go)."""
        try:
            await self._upstream.aclose()
        finally:
            self._slot.release()


class DirectStream(HeldStream):
    """An open upstream SSE response: raw `data:` payloads as they arrive, and who serves them."""

    def __init__(self, response: httpx.Response, deployment: Deployment, slot: Slot) -> None:
        super().__init__(response, deployment, slot)
        self._response = response
        self.direct = True

    async def events(self) -> AsyncIterator[bytes]:
        """Each event's data (after `data:`), up to and without `[DONE]`; keep-alive comments skipped."""
        buffer = b""
        done = False
        async for piece in self._response.aiter_bytes():
            if done:
                continue  # read to the end, so the connection goes back to the pool instead of being dropped
            if b"\r" in piece:
                piece = piece.replace(b"\r\n", b"\n")
            buffer += piece
            while True:
                end = buffer.find(b"\n\n")
                if end < 0:
                    break
                event, buffer = buffer[:end], buffer[end + 2 :]
                if event.startswith(b"data:") and b"\n" not in event:  # the usual one-line event: no split
                    data = event[5:].lstrip(b" ")
                else:
                    lines = [line[5:].lstrip(b" ") for line in event.split(b"\n") if line.startswith(b"data:")]
                    if not lines:
                        continue
                    data = b"\n".join(lines)
                if data == b"[DONE]":
                    done = True
                    break
                yield data

    async def chunks(self) -> AsyncIterator[dict[str, Any]]:
        """The events as OpenAI chunk dicts (for callers that re-shape them, like /api/v1/invoke)."""
        async for data in self.events():
            chunk = json.loads(data)
            if isinstance(chunk, dict):
                if "error" in chunk and not chunk.get("choices"):
                    raise ProviderError(502, None)
                yield chunk


class DirectClient:
    """One pooled HTTP client for every direct deployment (connections kept alive across calls)."""

    def __init__(self, idle_timeout: float) -> None:
        self._idle = idle_timeout
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=256, keepalive_expiry=30)
        self.client = httpx.AsyncClient(
            transport=pooled_transport(limits),
            timeout=httpx.Timeout(60.0),
            follow_redirects=False,
        )
        self._bases: dict[str, str] = {}
        self._headers: dict[str, dict[str, str]] = {}

    def add(self, deployment: Deployment, base: str, key: str) -> None:
        self._bases[deployment.id] = base + "/chat/completions"
        headers = {"content-type": "application/json", "accept": "application/json"}
        if key:
            headers["authorization"] = f"Bearer {key}"
        self._headers[deployment.id] = headers

    def serves(self, deployment: Deployment) -> bool:
        return deployment.id in self._bases

    def _body(self, deployment: Deployment, payload: dict[str, Any], stream: bool) -> bytes:
        body = {"model": deployment.provider_model, **payload}
        if stream:
            body["stream"] = True
        return json.dumps(body, separators=(",", ":")).encode()

    async def chat(
        self, deployment: Deployment, payload: dict[str, Any], seconds: float
    ) -> tuple[dict[str, Any], int, int]:
        """One non-streamed attempt (at most `seconds`): the answer's body and its prompt and completion tokens."""
        with anyio.fail_after(seconds):
            response = await self.client.post(
                self._bases[deployment.id],
                content=self._body(deployment, payload, False),
                headers=self._headers[deployment.id],
                timeout=seconds,
            )
        if response.status_code >= 400:
            raise ProviderError(response.status_code, _retry_after(response), _reason(response))
        try:
            body = json.loads(response.content)
        except ValueError:
            raise ProviderError(502, None) from None
        if not isinstance(body, dict) or "choices" not in body:
            raise ProviderError(502, None)
        prompt, completion = _tokens(body.get("usage"))
        return body, prompt, completion

    async def open_stream(
        self, deployment: Deployment, payload: dict[str, Any], seconds: float, slot: Slot
    ) -> DirectStream:
        """One streamed attempt, up to the response headers; the stream then holds the slot until it closes."""
        request = self.client.build_request(
            "POST",
            self._bases[deployment.id],
            content=self._body(deployment, payload, True),
            headers=self._headers[deployment.id],
            # read: the longest silence between two pieces of the stream (its idle timeout).
            timeout=httpx.Timeout(seconds, read=self._idle),
        )
        with anyio.fail_after(seconds):
            response = await self.client.send(request, stream=True)
        if response.status_code >= 400:
            await response.aread()
            await response.aclose()
            raise ProviderError(response.status_code, _retry_after(response), _reason(response))
        return DirectStream(response, deployment, slot)

    async def aclose(self) -> None:
        await self.client.aclose()


def rename_model(data: bytes, model: bytes) -> bytes:
    """`data` with its first `"model": "…"` member naming `model` (already JSON-encoded) instead."""
    return _MODEL.sub(model, data, count=1)


def model_member(name: str) -> bytes:
    """The `"model":"<name>"` member, escaped for use as a re.sub replacement."""
    return (b'"model":' + json.dumps(name).encode()).replace(b"\\", b"\\\\")


def has_usage(data: bytes) -> bool:
    return _USAGE.search(data) is not None
