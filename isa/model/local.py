"""Local OpenAI-compatible model servers: found at start-up, served under their own names, keyless.

`model.local_url` (ISA_MODEL__LOCAL_URL, e.g. a llama.cpp server, vLLM, LM Studio or Ollama elsewhere) is
asked for its models (`GET {url}/models`); with no URL, Ollama's default address is probed once with a short
timeout, so a machine running Ollama needs no setting at all and a machine without one starts as fast as
before. Each model becomes a deployment of its own name (provider "local": no price, no key). When no cloud
chat deployment has its key, the chat aliases the user did not change (`default`, `fast`, `vision`) point at
the first local chat model; an alias set explicitly always wins.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import httpx

from isa.core.logging import get_logger
from isa.model.settings import LOCAL_PROVIDER, Deployment, Mode, ModelSettings, default_aliases

log = get_logger(__name__)

OLLAMA_URL = "http://127.0.0.1:11434/v1"
# OpenAI-compatible servers without auth still need *a* key on the client side (litellm's OpenAI client refuses
# an empty one with "Missing credentials"); this placeholder is never a secret.
KEYLESS_PLACEHOLDER = "sk-no-key-required"
# What a user is told when no chat model can be reached (the chat page, `isa doctor`).
NO_CHAT_MODEL_FIX = (
    "Start a local model server (Ollama is found by itself: `ollama serve`, then `ollama pull llama3.2:1b`), "
    "or set ISA_MODEL__LOCAL_URL=http://HOST:PORT/v1 for any OpenAI-compatible server (llama.cpp, vLLM, "
    "LM Studio), or export OPENAI_API_KEY (or ANTHROPIC_API_KEY, GEMINI_API_KEY); then restart isa."
)
_EMBEDDING_NAME = re.compile(r"embed|bge-|\be5-|minilm|nomic-|mxbai|gte-|arctic-embed|rerank", re.I)
_NOT_CHAT = re.compile(r"whisper|tts|dall-e|stable-diffusion|flux", re.I)


@dataclass(frozen=True)
class LocalModels:
    """What a local server offered: its URL and its chat and embedding model names, in its order."""

    url: str = ""
    chat: list[str] = field(default_factory=list)
    embedding: list[str] = field(default_factory=list)
    error: str = ""  # why nothing was found at an explicitly configured URL

    @property
    def found(self) -> bool:
        return bool(self.chat or self.embedding)


def mode_of(name: str) -> str | None:
    """chat, embedding, or None for a model this gateway can't serve from a chat server (speech, images)."""
    if _EMBEDDING_NAME.search(name):
        return "embedding"
    if _NOT_CHAT.search(name):
        return None
    return "chat"


def probe(settings: ModelSettings) -> LocalModels:
    """Ask the configured local server (or Ollama's default address) for its models; never raises."""
    url = (settings.local_url or (OLLAMA_URL if settings.local_probe else "")).rstrip("/")
    if not url:
        return LocalModels()
    timeout = settings.local_timeout_seconds if settings.local_url else settings.local_probe_timeout_seconds
    try:
        response = httpx.get(url + "/models", timeout=timeout, trust_env=False, follow_redirects=False)
        response.raise_for_status()
        data = response.json().get("data") or []
        names = [str(item["id"]) for item in data if isinstance(item, dict) and item.get("id")]
    except (httpx.HTTPError, ValueError, AttributeError, KeyError, TypeError) as exc:
        if settings.local_url:
            log.warning("local_models_unreachable", url=url, error=type(exc).__name__)
            return LocalModels(url, error=f"{url}/models did not answer ({type(exc).__name__})")
        return LocalModels()  # no Ollama here: the usual case, not worth a warning
    chat = [n for n in names if mode_of(n) == "chat"]
    embedding = [n for n in names if mode_of(n) == "embedding"]
    return LocalModels(url, chat, embedding)


def local_deployments(found: LocalModels, taken: set[str]) -> list[Deployment]:
    """One keyless deployment per local model whose name no configured deployment uses already."""
    out = []
    groups: tuple[tuple[Mode, list[str]], ...] = (("chat", found.chat), ("embedding", found.embedding))
    for mode, names in groups:
        for name in names:
            if name in taken:
                continue
            out.append(
                Deployment(
                    name=name,
                    model=f"openai/{name}",
                    provider=LOCAL_PROVIDER,
                    mode=mode,
                    api_base=found.url,
                )
            )
    return out


def chat_aliases(settings: ModelSettings, servable: set[str], found: LocalModels) -> dict[str, str]:
    """The aliases with untouched chat aliases moved to the first local chat model, when no cloud chat works.

    An alias counts as untouched when it still names what the built-in default names; such an alias whose
    group has no servable deployment follows the local model. Everything else stays as configured.
    """
    if not found.chat:
        return dict(settings.aliases)
    cloud_chat = any(
        d.mode == "chat" and d.name in servable and d.provider != LOCAL_PROVIDER for d in settings.all_deployments
    )
    if cloud_chat:
        return dict(settings.aliases)
    builtin = default_aliases()
    chat_groups = {d.name for d in settings.all_deployments if d.mode == "chat"}
    aliases = dict(settings.aliases)
    for alias, target in settings.aliases.items():
        if builtin.get(alias) == target and target in chat_groups and target not in servable:
            aliases[alias] = found.chat[0]
    return aliases


def with_local(settings: ModelSettings, found: LocalModels, servable: set[str]) -> ModelSettings:
    """The settings plus the local deployments, and the chat aliases pointed at them where nothing else serves."""
    if not found.found:
        return settings
    extra = local_deployments(found, {d.name for d in settings.all_deployments})
    merged = settings.model_copy(update={"deployments": [*settings.deployments, *extra]})
    aliases = chat_aliases(merged, servable | {d.name for d in extra}, found)
    return merged.model_copy(update={"aliases": aliases})
