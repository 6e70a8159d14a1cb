"""The `[model]` settings section: deployments, aliases, fallbacks, limits and credit prices."""

from __future__ import annotations

import os
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from isa.core.settings import Section

Mode = Literal["chat", "embedding", "image", "transcription"]
LOCAL_EMBEDDING_MODEL = "all-MiniLM-L6-v2"
LOCAL_PROVIDER = "local"


class Deployment(BaseModel):
    """One place a model group can be served from (a provider model behind one base URL and key)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)  # the model group clients ask for, e.g. "gpt-4.1-mini"
    model: str = Field(min_length=1)  # litellm's id: "openai/gpt-4.1-mini", "gemini/gemini-2.0-flash"
    provider: str = ""  # empty: the prefix of `model`
    id: str = ""  # reported in x-isa-deployment; empty: "<provider>/<name>"
    mode: Mode = "chat"
    api_base: str = ""
    api_key_env: str = ""  # the NAME of the environment variable holding the key; empty: no key
    timeout_seconds: float | None = None  # per attempt; empty: model.request_timeout_seconds
    max_parallel: int | None = None  # empty: the provider's cap
    input_cost_per_token: float | None = None  # USD, for models litellm's cost map doesn't know
    output_cost_per_token: float | None = None
    extra: dict[str, Any] = Field(default_factory=dict)  # more litellm params (api_version, ...)
    # How chat is called: "auto" forwards OpenAI-wire providers directly (isa/model/direct.py) and the rest
    # through litellm; "litellm" always uses litellm; "direct" forwards any api_base on the OpenAI wire.
    engine: Literal["auto", "direct", "litellm"] = "auto"

    @model_validator(mode="after")
    def _fill(self) -> Deployment:
        provider = self.provider or (self.model.split("/", 1)[0] if "/" in self.model else "openai")
        object.__setattr__(self, "provider", provider)
        object.__setattr__(self, "id", self.id or f"{provider}/{self.name}")
        forbidden = {"api_key", "api_base", "model"} & set(self.extra)
        if forbidden:
            raise ValueError(f"set {', '.join(sorted(forbidden))} with their own fields (keys only via api_key_env)")
        return self

    @property
    def provider_model(self) -> str:
        """The model name without the provider prefix (what the provider sees)."""
        return self.model.split("/", 1)[1] if "/" in self.model else self.model

    def api_key(self) -> str | None:
        """The key from the environment; None when the deployment needs one and it isn't set."""
        if not self.api_key_env:
            return ""
        value = os.environ.get(self.api_key_env, "")
        return value or None


# The shipped deployments: group name, litellm model, mode, and the environment variable that holds the key.
_SHIPPED: tuple[tuple[str, str, Mode, str], ...] = (
    ("gpt-4.1-mini", "openai/gpt-4.1-mini", "chat", "OPENAI_API_KEY"),
    ("gpt-4.1-nano", "openai/gpt-4.1-nano", "chat", "OPENAI_API_KEY"),
    ("text-embedding-3-small", "openai/text-embedding-3-small", "embedding", "OPENAI_API_KEY"),
    ("whisper-1", "openai/whisper-1", "transcription", "OPENAI_API_KEY"),
    ("gpt-image-1", "openai/gpt-image-1", "image", "OPENAI_API_KEY"),
    ("claude-sonnet-4", "anthropic/claude-sonnet-4-20250514", "chat", "ANTHROPIC_API_KEY"),
    ("gemini-2.5-flash", "gemini/gemini-2.5-flash", "chat", "GEMINI_API_KEY"),
    ("flux-schnell", "replicate/black-forest-labs/flux-schnell", "image", "REPLICATE_API_KEY"),
)


def _default_deployments() -> list[Deployment]:
    return [Deployment(name=name, model=model, mode=mode, api_key_env=key) for name, model, mode, key in _SHIPPED]


def default_aliases() -> dict[str, str]:
    """The shipped aliases; one still naming its shipped target counts as untouched (isa/model/local.py)."""
    return {
        "default": "gpt-4.1-mini",
        "fast": "gpt-4.1-nano",
        "vision": "gpt-4.1-mini",
        "embed": LOCAL_EMBEDDING_MODEL,
        "image": "gpt-image-1",
        "transcribe": "whisper-1",
    }


class ModelSettings(Section):
    # Per attempt; the Router retries and falls back inside total_timeout_seconds.
    request_timeout_seconds: float = 60.0
    # A stream that sends nothing for this long gets a final error frame (never a hang).
    stream_idle_timeout_seconds: float = 60.0
    # Hard bound on one request, retries and fallbacks included (504 upstream_timeout past it).
    total_timeout_seconds: float = 180.0
    # The one retry layer: the Router's. SDK clients never retry (max_retries=0).
    num_retries: int = Field(default=2, ge=0, le=5)
    # Failures per minute a deployment may have before it is cooled down, and for how long.
    allowed_fails: int = Field(default=3, ge=0)
    cooldown_seconds: float = Field(default=30.0, ge=0)
    max_fallbacks: int = Field(default=3, ge=0)
    # Concurrent calls per provider (all its deployments together); past it an attempt fails
    # fast with a 429 and the Router retries or falls back.
    default_max_parallel: int = Field(default=64, ge=1)
    max_parallel: dict[str, int] = Field(default_factory=dict)  # provider -> cap
    aliases: dict[str, str] = Field(default_factory=default_aliases)
    fallbacks: dict[str, list[str]] = Field(
        default_factory=lambda: {"gpt-4.1-mini": ["claude-sonnet-4", "gemini-2.5-flash"]}
    )
    # Deployments from settings files and ISA_MODEL__DEPLOYMENTS are ADDED to the built-in list (one with the
    # id of a built-in deployment replaces it); builtin_deployments = false serves only the configured ones.
    deployments: list[Deployment] = Field(default_factory=list)
    builtin_deployments: bool = True
    # A local OpenAI-compatible server (llama.cpp, vLLM, LM Studio, Ollama): its models are served under their
    # own names with no key (isa/model/local.py). Empty: Ollama's default address is probed when local_probe.
    local_url: str = ""
    local_probe: bool = True
    local_probe_timeout_seconds: float = Field(default=0.3, gt=0)
    local_timeout_seconds: float = Field(default=3.0, gt=0)
    # Credits: tokens/1000 * credits_per_1k_tokens + cost_usd * credits_per_usd, at least min_credits_per_call.
    require_credits: bool = True
    credits_per_1k_tokens: Decimal = Decimal("1")
    credits_per_usd: Decimal = Decimal("0")
    min_credits_per_call: Decimal = Decimal("0.001")
    credits_per_image: Decimal = Decimal("5")
    credits_per_transcription: Decimal = Decimal("1")
    # A balance read lets calls through for this long (less what this node charged since); a refusal
    # is always re-read from the database. 0 reads the balance on every call.
    credit_cache_seconds: float = Field(default=2.0, ge=0)
    # Usage rows are queued and written in batches off the response path; a full queue makes calls wait.
    usage_queue_size: int = Field(default=10_000, ge=1)
    usage_batch_size: int = Field(default=100, ge=1)
    # How long the writer lets rows gather after the first of a batch (0: each written as soon as it comes). Off by
    # default: while rows wait, a balance read right after a call (the agent's billing event, GET balance) misses
    # that call's charge (docs/model.md).
    usage_linger_seconds: float = Field(default=0.0, ge=0, le=5)
    # On shutdown, how long the writer may take to write what is still queued.
    usage_drain_seconds: float = Field(default=30.0, ge=0)
    max_audio_bytes: int = 26_214_400
    # One embeddings request may hold at most this many estimated tokens (OpenAI's bound: 300,000); its
    # estimated credits are checked against the balance before any vector is computed.
    max_embedding_tokens: int = Field(default=300_000, ge=1)
    # Chat bodies may carry base64 images (vision content parts).
    max_request_bytes: int = 20_971_520

    @property
    def all_deployments(self) -> list[Deployment]:
        """The built-in deployments (unless turned off or replaced by id), then the configured ones."""
        if not self.builtin_deployments:
            return list(self.deployments)
        configured = {d.id for d in self.deployments}
        return [d for d in _default_deployments() if d.id not in configured] + list(self.deployments)

    @model_validator(mode="after")
    def _check(self) -> ModelSettings:
        ids = [d.id for d in self.deployments]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"model.deployments: duplicate deployment ids {duplicates}")
        return self

    def cap_for(self, provider: str) -> int:
        return self.max_parallel.get(provider, self.default_max_parallel)

    def resolve(self, name: str) -> str:
        """A model name or alias -> the model group it names (aliases may not chain)."""
        return self.aliases.get(name, name)
