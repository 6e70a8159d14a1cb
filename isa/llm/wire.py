"""Reading the OpenAI chat-completions wire from the model node: one streamed call, tokens out as they come.

Shared by every caller that holds an httpx client to the model node (the agent's turns and planner; the client
and its transport, in-process or HTTP, come from `isa.llm.transport`). Every way a call can fail ends in a
ModelCallError with a stable code: the node unreachable (`model_unavailable`), silent past the idle timeout
(`model_timeout`), the stream cut before `[DONE]` (`model_stream_cut`), an error frame or status from the node
(`model_error`, or the node's own code such as `insufficient_credits`).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx


class ModelCallError(Exception):
    """A model call that failed, with a stable machine code and a message free of secrets."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


TokenSink = Callable[[str], Awaitable[None]]


@dataclass
class ModelTurn:
    """One assistant message as the model produced it."""

    content: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def message(self) -> dict[str, Any]:
        out: dict[str, Any] = {"role": "assistant", "content": self.content or None}
        if self.tool_calls:
            out["tool_calls"] = self.tool_calls
        return out


def _error_code(response: httpx.Response, body: bytes) -> ModelCallError:
    try:
        error = json.loads(body).get("error") or {}
    except (ValueError, AttributeError):
        error = {}
    code = str(error.get("code") or "model_error")
    message = str(error.get("message") or f"the model node answered {response.status_code}")
    if response.status_code >= 500 and code in ("internal_error", "model_error", "upstream_error"):
        code = "model_unavailable"
    if response.status_code == 401:
        code = "upstream_auth_failed"
    return ModelCallError(code, message)


def _merge_tool_calls(calls: dict[int, dict[str, Any]], deltas: list[dict[str, Any]]) -> None:
    for delta in deltas:
        index = int(delta.get("index", 0))
        call = calls.setdefault(index, {"id": "", "type": "function", "function": {"name": "", "arguments": ""}})
        if delta.get("id"):
            call["id"] = delta["id"]
        function = delta.get("function") or {}
        if function.get("name"):
            call["function"]["name"] += function["name"]
        if function.get("arguments"):
            call["function"]["arguments"] += function["arguments"]


async def _lines(response: httpx.Response, idle: float) -> AsyncIterator[str]:
    """The stream's lines, each within `idle` seconds of the previous one."""
    lines = response.aiter_lines().__aiter__()
    while True:
        try:
            with anyio.fail_after(idle):
                line = await lines.__anext__()
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise ModelCallError("model_timeout", f"the model node sent nothing for {idle:g} s") from None
        yield line


async def stream_chat(
    client: httpx.AsyncClient, payload: dict[str, Any], idle_timeout: float, on_token: TokenSink | None
) -> ModelTurn:
    """POST /v1/chat/completions with stream=true; calls `on_token` per content piece."""
    body = {**payload, "stream": True, "stream_options": {"include_usage": True}}
    turn = ModelTurn()
    calls: dict[int, dict[str, Any]] = {}
    text: list[str] = []
    done = False
    try:
        async with client.stream("POST", "/v1/chat/completions", json=body) as response:
            if response.status_code != 200:
                raise _error_code(response, await response.aread())
            async for line in _lines(response, idle_timeout):
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    done = True
                    break
                chunk = json.loads(data)
                if "error" in chunk:
                    error = chunk["error"] or {}
                    raise ModelCallError(str(error.get("code") or "model_error"), str(error.get("message") or "error"))
                usage = chunk.get("usage")
                if usage:
                    turn.prompt_tokens = int(usage.get("prompt_tokens") or 0)
                    turn.completion_tokens = int(usage.get("completion_tokens") or 0)
                for choice in chunk.get("choices") or ():
                    delta = choice.get("delta") or {}
                    piece = delta.get("content")
                    if piece:
                        text.append(piece)
                        if on_token is not None:
                            await on_token(piece)
                    if delta.get("tool_calls"):
                        _merge_tool_calls(calls, delta["tool_calls"])
                    if choice.get("finish_reason"):
                        turn.finish_reason = choice["finish_reason"]
    except ModelCallError:
        raise
    except httpx.ConnectError:
        raise ModelCallError("model_unavailable", "the model node can't be reached") from None
    except httpx.TimeoutException:
        raise ModelCallError("model_timeout", "the model node did not answer in time") from None
    except (httpx.HTTPError, ValueError) as exc:
        raise ModelCallError("model_stream_cut", f"the model stream broke off ({type(exc).__name__})") from None
    if not done:
        raise ModelCallError("model_stream_cut", "the model stream ended before it was complete")
    turn.content = "".join(text)
    turn.tool_calls = [c for _, c in sorted(calls.items()) if c["function"]["name"]]
    return turn


async def complete(client: httpx.AsyncClient, payload: dict[str, Any], limit_seconds: float) -> str:
    """The text of one non-streamed chat completion, within `limit_seconds`."""
    try:
        with anyio.fail_after(limit_seconds):
            response = await client.post("/v1/chat/completions", json={**payload, "stream": False})
    except TimeoutError:
        raise ModelCallError("model_timeout", "the model node did not answer in time") from None
    except httpx.ConnectError:
        raise ModelCallError("model_unavailable", "the model node can't be reached") from None
    except httpx.HTTPError as exc:
        raise ModelCallError("model_unavailable", f"the model call failed ({type(exc).__name__})") from None
    if response.status_code != 200:
        raise _error_code(response, response.content)
    try:
        return str((response.json().get("choices") or [{}])[0].get("message", {}).get("content") or "")
    except (ValueError, AttributeError, IndexError):
        raise ModelCallError("model_error", "the model node's answer is not a chat completion") from None
