"""The litellm layer: the only module that imports litellm, lazily, so other roles never pay for it.

litellm's Router owns routing: load balancing inside a model group, retries (the one retry layer:
SDK clients run with max_retries=0), fallbacks across groups, cooldown of failing deployments,
per-attempt timeouts and the per-provider concurrency cap.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from isa.core.errors import ApiError
from isa.core.logging import get_logger
from isa.model.local import KEYLESS_PLACEHOLDER, LocalModels, probe, with_local
from isa.model.settings import Deployment, ModelSettings

log = get_logger(__name__)

_import_lock = threading.Lock()
_litellm: Any = None
# A provider's shared slot object lives in the Router's local cache; it must outlive the process.
_FOREVER_SECONDS = 10 * 365 * 24 * 3600


def load_litellm() -> Any:
    """Import and configure litellm once per process: local cost map, no telemetry, no downloads."""
    global _litellm
    with _import_lock:
        if _litellm is None:
            # Read at import: litellm would otherwise fetch the cost map over the network.
            os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
            os.environ.setdefault("LITELLM_TELEMETRY", "False")
            # litellm's own types trip pydantic warnings on every first use; they say nothing about us.
            warnings.filterwarnings("ignore", message=r"Item '.*' on TypedDict class", category=UserWarning)
            warnings.filterwarnings("ignore", message=r"Accessing the 'model_", module=r"litellm\.")
            import litellm

            litellm.telemetry = False
            litellm.suppress_debug_info = True
            litellm.disable_hf_tokenizer_download = True
            # No litellm callbacks are registered, so messages go nowhere; redaction would deep-copy
            # every call's logging payload for nothing (about 4 ms of CPU per call).
            litellm.turn_off_message_logging = False
            # A fallback provider may not know every OpenAI parameter; drop those instead of failing.
            litellm.drop_params = True
            _litellm = litellm
    return _litellm


@dataclass(frozen=True)
class Served:
    """A provider answer in OpenAI shape, and who served it."""

    body: dict[str, Any]
    deployment: Deployment
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None  # what litellm computed, when it did


class ChatStream:
    """An open upstream stream: OpenAI chunk dicts, and the deployment that serves it."""

    def __init__(self, upstream: Any, deployment: Deployment) -> None:
        self._upstream = upstream
        self.deployment = deployment

    async def chunks(self) -> AsyncIterator[dict[str, Any]]:
        async for chunk in self._upstream:
            data: dict[str, Any] = chunk.model_dump(exclude_none=True)
            yield data

    async def aclose(self) -> None:
        """Close the upstream response (the provider sees the connection go)."""
        await self._upstream.aclose()


def _tokens(usage: Any) -> tuple[int, int]:
    if usage is None:
        return 0, 0
    get = usage.get if isinstance(usage, dict) else lambda k, d=None: getattr(usage, k, d)
    prompt = get("prompt_tokens") or get("input_tokens") or 0
    completion = get("completion_tokens") or get("output_tokens") or 0
    return int(prompt), int(completion)


class Gateway:
    """A Router over the deployments whose credentials are present in the environment."""

    def __init__(self, settings: ModelSettings) -> None:
        self.settings = settings
        self.deployments: dict[str, Deployment] = {}
        self.groups: dict[str, list[Deployment]] = {}
        self.skipped: dict[str, str] = {}
        self.router: Any = None
        self.local = LocalModels()

    def start(self) -> None:
        """Import litellm and build the Router (blocking: run it in a thread)."""
        litellm = load_litellm()
        from litellm.router_utils.client_initalization_utils import MaxParallelRequestsLimit

        # A local OpenAI-compatible server joins before the Router is built (a short probe, once per start).
        self.local = probe(self.settings)
        servable = {d.name for d in self.settings.all_deployments if d.api_key() is not None}
        s = self.settings = with_local(self.settings, self.local, servable)
        model_list = []
        for d in s.all_deployments:
            key = d.api_key()
            if key is None:
                self.skipped[d.id] = f"environment variable {d.api_key_env} is not set"
                continue
            params: dict[str, Any] = {
                **d.extra,
                "model": d.model,
                "timeout": d.timeout_seconds or s.request_timeout_seconds,
                "stream_timeout": d.timeout_seconds or s.request_timeout_seconds,
                "max_retries": 0,
                "max_parallel_requests": d.max_parallel or s.cap_for(d.provider),
            }
            if key:
                params["api_key"] = key
            elif d.api_base:
                # A keyless OpenAI-compatible server (Ollama, llama.cpp): the client still needs some key.
                params["api_key"] = KEYLESS_PLACEHOLDER
            if d.api_base:
                params["api_base"] = d.api_base
            if d.input_cost_per_token is not None:
                params["input_cost_per_token"] = d.input_cost_per_token
            if d.output_cost_per_token is not None:
                params["output_cost_per_token"] = d.output_cost_per_token
            model_list.append({"model_name": d.name, "litellm_params": params, "model_info": {"id": d.id}})
            self.deployments[d.id] = d
            self.groups.setdefault(d.name, []).append(d)
        fallbacks = [{group: targets} for group, targets in s.fallbacks.items() if group in self.groups]
        self.router = litellm.Router(
            model_list=model_list,
            num_retries=s.num_retries,
            timeout=s.request_timeout_seconds,
            stream_timeout=s.request_timeout_seconds,
            fallbacks=fallbacks,
            max_fallbacks=s.max_fallbacks,
            allowed_fails=s.allowed_fails,
            cooldown_time=s.cooldown_seconds,
            disable_cooldowns=s.cooldown_seconds == 0,
            retry_after=0,
            routing_strategy="simple-shuffle",
        )
        # One slot pool per provider, shared by its deployments, unless a deployment sets its own.
        store = self.router.health().store
        pools: dict[str, Any] = {}
        for d in self.deployments.values():
            if d.max_parallel is not None:
                continue
            pool = pools.setdefault(
                d.provider, MaxParallelRequestsLimit(s.cap_for(d.provider), f"provider:{d.provider}", d.provider)
            )
            store.set_cache(
                key=f"{d.id}_max_parallel_requests_client", value=pool, local_only=True, ttl=_FOREVER_SECONDS
            )
        log.info("model_gateway_ready", deployments=len(self.deployments), skipped=sorted(self.skipped))

    # -- calls ---------------------------------------------------------------------------------
    def _served_by(self, response: Any) -> Deployment:
        hidden = getattr(response, "_hidden_params", None) or {}
        deployment = self.deployments.get(str(hidden.get("model_id")))
        if deployment is None:  # a group with one deployment: litellm may omit the id
            raise ApiError(502, "upstream_error", "the gateway could not tell which deployment answered")
        return deployment

    @staticmethod
    def _cost(response: Any) -> float | None:
        cost = (getattr(response, "_hidden_params", None) or {}).get("response_cost")
        return float(cost) if cost is not None else None

    async def chat(self, group: str, payload: dict[str, Any]) -> Served:
        response = await self.router.acompletion(model=group, **payload)
        prompt, completion = _tokens(getattr(response, "usage", None))
        body: dict[str, Any] = response.model_dump(exclude_none=True)
        return Served(body, self._served_by(response), prompt, completion, self._cost(response))

    async def chat_stream(self, group: str, payload: dict[str, Any]) -> ChatStream:
        upstream = await self.router.acompletion(model=group, stream=True, **payload)
        return ChatStream(upstream, self._served_by(upstream))

    async def embed(self, group: str, inputs: list[str], **params: Any) -> Served:
        response = await self.router.aembedding(model=group, input=inputs, **params)
        prompt, _ = _tokens(getattr(response, "usage", None))
        body: dict[str, Any] = response.model_dump(exclude_none=True)
        return Served(body, self._served_by(response), prompt, 0, self._cost(response))

    async def image(self, group: str, prompt: str, **params: Any) -> Served:
        response = await self.router.aimage_generation(model=group, prompt=prompt, **params)
        body: dict[str, Any] = response.model_dump(exclude_none=True)
        return Served(body, self._served_by(response), 0, 0, self._cost(response))

    async def transcribe(self, group: str, file: tuple[str, bytes], **params: Any) -> Served:
        response = await self.router.atranscription(model=group, file=file, **params)
        body: dict[str, Any] = response.model_dump(exclude_none=True)
        return Served(body, self._served_by(response), 0, 0, self._cost(response))

    # -- accounting ----------------------------------------------------------------------------
    def cost(self, deployment: Deployment, prompt_tokens: int, completion_tokens: int) -> tuple[float, str]:
        """USD for a token count, from the deployment's own prices or litellm's local cost map."""
        if deployment.input_cost_per_token is not None or deployment.output_cost_per_token is not None:
            usd = prompt_tokens * (deployment.input_cost_per_token or 0) + completion_tokens * (
                deployment.output_cost_per_token or 0
            )
            return usd, "deployment_price"
        try:
            prompt_usd, completion_usd = load_litellm().cost_per_token(
                model=deployment.model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
            )
        except Exception:  # a model the cost map doesn't know: record tokens, no price
            return 0.0, "unpriced"
        return float(prompt_usd) + float(completion_usd), "litellm_cost_map"

    def count_tokens(self, deployment: Deployment, *, messages: Any = None, text: str = "") -> int:
        """Tokens of a prompt or a partial completion (for streams cut before the provider's usage)."""
        try:
            if messages is not None:
                return int(load_litellm().token_counter(model=deployment.provider_model, messages=messages))
            return int(load_litellm().token_counter(model=deployment.provider_model, text=text)) if text else 0
        except Exception:
            return (len(text) + 3) // 4


def upstream_error(exc: BaseException) -> ApiError:
    """A stable error for whatever litellm raised after its retries and fallbacks."""
    if isinstance(exc, ApiError):
        return exc
    name = type(exc).__name__
    status = getattr(exc, "status_code", None)
    if name == "Timeout" or isinstance(exc, TimeoutError) or status == 408:
        return ApiError(504, "upstream_timeout", "the model provider did not answer in time")
    if "No deployments available" in str(exc) or name == "RouterRateLimitError":
        return ApiError(
            503,
            "upstream_unavailable",
            "every deployment of this model is cooling down after failures; retry shortly",
            headers={"Retry-After": "5"},
        )
    if status == 429 or name == "RateLimitError":
        return ApiError(429, "upstream_rate_limited", "the model provider is rate limiting; retry shortly")
    if status in (400, 422) or name in ("BadRequestError", "ContextWindowExceededError", "UnsupportedParamsError"):
        message = str(getattr(exc, "message", "") or exc).split("\n", 1)[0][:300]
        return ApiError(400, "upstream_bad_request", f"the model provider rejected the request: {message}")
    if status in (401, 403) or name in ("AuthenticationError", "PermissionDeniedError"):
        return ApiError(502, "upstream_auth", "the gateway's credentials for this provider were refused")
    return ApiError(502, "upstream_error", "the model provider failed; the request was retried and fell back")
