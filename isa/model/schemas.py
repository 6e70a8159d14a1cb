"""Wire models. Unknown fields are dropped, never forwarded: a body can't set api_base or api_key."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# What a client may pass through to the provider, besides model/messages/stream.
CHAT_PASSTHROUGH = (
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "n",
    "presence_penalty",
    "frequency_penalty",
    "seed",
    "logprobs",
    "top_logprobs",
    "logit_bias",
    "user",
    "reasoning_effort",
)


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ToolFunction(_Wire):
    name: str = Field(min_length=1, max_length=256)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(_Wire):
    type: Literal["function"] = "function"
    function: ToolFunction


class StreamOptions(_Wire):
    include_usage: bool = False


class ChatRequest(_Wire):
    model: str = Field(min_length=1, max_length=200)
    messages: list[dict[str, Any]] = Field(min_length=1, max_length=2000)
    stream: bool = False
    stream_options: StreamOptions | None = None
    tools: list[Tool] | None = Field(default=None, max_length=256)
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    stop: str | list[str] | None = None
    n: int | None = Field(default=None, ge=1, le=8)
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    seed: int | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    logit_bias: dict[str, float] | None = None
    user: str | None = None
    reasoning_effort: str | None = None

    def provider_payload(self) -> dict[str, Any]:
        """messages plus the pass-through parameters that were set."""
        payload: dict[str, Any] = {"messages": [dict(m) for m in self.messages]}
        for name in CHAT_PASSTHROUGH:
            value = getattr(self, name)
            if value is not None:
                payload[name] = [t.model_dump(exclude_none=True) for t in value] if name == "tools" else value
        return payload


# OpenAI's own bound on inputs per embeddings request; total tokens are bounded by a setting.
MAX_EMBEDDING_INPUTS = 2048


class EmbeddingRequest(_Wire):
    model: str = Field(min_length=1, max_length=200)
    input: str | Annotated[list[str], Field(max_length=MAX_EMBEDDING_INPUTS)] = Field(min_length=1)
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1, le=8192)
    user: str | None = None

    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


class ImageRequest(_Wire):
    model: str = Field(default="gpt-image-1", min_length=1, max_length=200)
    prompt: str = Field(min_length=1, max_length=32_000)
    n: int = Field(default=1, ge=1, le=4)
    size: str | None = None
    quality: str | None = None
    style: str | None = None
    response_format: Literal["url", "b64_json"] | None = None
    user: str | None = None
    # Image-to-image inputs (isa.media's generate_image), passed on to the provider: URLs or data URLs.
    image: str | None = Field(default=None, max_length=20_000_000)
    target_image: str | None = Field(default=None, max_length=20_000_000)
    strength: float | None = Field(default=None, ge=0, le=1)


class InvokeRequest(_Wire):
    """The original model service's unified request (POST /api/v1/invoke)."""

    input_data: Any = None
    task: str = "chat"
    service_type: Literal["text", "vision", "audio", "image", "embedding"] = "text"
    model: str | None = None
    provider: str | None = None
    stream: bool | None = None
    tools: list[dict[str, Any]] | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
