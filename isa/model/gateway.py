"""The provider layer: the only module that imports litellm, lazily, so other roles never pay for it.

isa/model/routing.py owns routing for every call: deployment choice, retries (the one retry layer: HTTP
and SDK clients run with max_retries=0), fallbacks across groups, cooldown of failing deployments and the
per-provider concurrency cap. Each attempt then goes to the provider directly on the OpenAI wire
(isa/model/direct.py) when the provider speaks it, or through `litellm.acompletion` & co. when it needs
translating. litellm's cost map prices both.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio

from isa.core.errors import ApiError
from isa.core.logging import get_logger
from isa.model.direct import DirectClient, DirectStream, HeldStream, direct_base
from isa.model.local import KEYLESS_PLACEHOLDER, LocalModels, probe, with_local
from isa.model.routing import Routing, Slot
from isa.model.settings import Deployment, ModelSettings

log = get_logger(__name__)

_import_lock = threading.Lock()
_litellm: Any = None


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


class ChatStream(HeldStream):
    """An open upstream stream through litellm: OpenAI chunk dicts, and the deployment that serves it."""

    direct = False

    async def chunks(self) -> AsyncIterator[dict[str, Any]]:
        async for chunk in self._upstream:
            data: dict[str, Any] = chunk.model_dump(exclude_none=True)
            yield data


AnyStream = ChatStream | DirectStream


def _tokens(usage: Any) -> tuple[int, int]:
    if usage is None:
        return 0, 0
    get = usage.get if isinstance(usage, dict) else lambda k, d=None: getattr(usage, k, d)
    prompt = get("prompt_tokens") or get("input_tokens") or 0
    completion = get("completion_tokens") or get("output_tokens") or 0
    return int(prompt), int(completion)


class Gateway:
    """The deployments whose credentials are present, one routing engine, and two ways to call a provider."""

    def __init__(self, settings: ModelSettings) -> None:
        self.settings = settings
        self.deployments: dict[str, Deployment] = {}
        self.groups: dict[str, list[Deployment]] = {}
        self.skipped: dict[str, str] = {}
        self.local = LocalModels()
        self.routing = Routing(settings, {})
        self.direct = DirectClient(settings.stream_idle_timeout_seconds)
        self._params: dict[str, dict[str, Any]] = {}  # deployment id -> litellm call parameters
        self._litellm: Any = None
        self._prices: dict[str, tuple[float, float] | None] = {}  # deployment id -> flat cost-map prices

    def start(self) -> None:
        """Import litellm (cost map, translating providers) and index the deployments (blocking: run in a thread)."""
        self._litellm = load_litellm()
        # A local OpenAI-compatible server joins first (a short probe, once per start).
        self.local = probe(self.settings)
        servable = {d.name for d in self.settings.all_deployments if d.api_key() is not None}
        s = self.settings = with_local(self.settings, self.local, servable)
        for d in s.all_deployments:
            key = d.api_key()
            if key is None:
                self.skipped[d.id] = f"environment variable {d.api_key_env} is not set"
                continue
            params: dict[str, Any] = {
                **d.extra,
                "model": d.model,
                "timeout": self.timeout(d),
                "max_retries": 0,  # the routing engine is the one retry layer
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
            self._params[d.id] = params
            base = direct_base(d)
            if base is not None:
                self.direct.add(d, base, key or KEYLESS_PLACEHOLDER)  # as litellm sends it to keyless servers
            self.deployments[d.id] = d
            self.groups.setdefault(d.name, []).append(d)
        self.routing = Routing(s, self.groups)
        direct = sorted(d.id for d in self.deployments.values() if self.direct.serves(d))
        log.info("model_gateway_ready", deployments=len(self.deployments), direct=direct, skipped=sorted(self.skipped))

    async def aclose(self) -> None:
        await self.direct.aclose()

    def timeout(self, deployment: Deployment) -> float:
        return deployment.timeout_seconds or self.settings.request_timeout_seconds

    # -- calls ---------------------------------------------------------------------------------
    @staticmethod
    def _cost(response: Any) -> float | None:
        cost = (getattr(response, "_hidden_params", None) or {}).get("response_cost")
        return float(cost) if cost is not None else None

    async def _litellm_call(self, fn: str, deployment: Deployment, **kwargs: Any) -> Any:
        with anyio.fail_after(self.timeout(deployment)):
            return await getattr(self._litellm, fn)(**self._params[deployment.id], **kwargs)

    async def chat(self, group: str, payload: dict[str, Any]) -> Served:
        async def attempt(d: Deployment, slot: Slot) -> Served:
            if self.direct.serves(d):
                body, prompt, completion = await self.direct.chat(d, payload, self.timeout(d))
                return Served(body, d, prompt, completion, None)
            response = await self._litellm_call("acompletion", d, **payload)
            prompt, completion = _tokens(getattr(response, "usage", None))
            return Served(response.model_dump(exclude_none=True), d, prompt, completion, self._cost(response))

        return await self.routing.call(group, attempt)

    async def chat_stream(self, group: str, payload: dict[str, Any]) -> AnyStream:
        async def attempt(d: Deployment, slot: Slot) -> AnyStream:
            if self.direct.serves(d):
                return await self.direct.open_stream(d, payload, self.timeout(d), slot)
            upstream = await self._litellm_call("acompletion", d, stream=True, **payload)
            return ChatStream(upstream, d, slot)

        return await self.routing.call(group, attempt, hold=True)

    async def embed(self, group: str, inputs: list[str], **params: Any) -> Served:
        async def attempt(d: Deployment, slot: Slot) -> Served:
            response = await self._litellm_call("aembedding", d, input=inputs, **params)
            prompt, _ = _tokens(getattr(response, "usage", None))
            return Served(response.model_dump(exclude_none=True), d, prompt, 0, self._cost(response))

        return await self.routing.call(group, attempt)

    async def image(self, group: str, prompt: str, **params: Any) -> Served:
        async def attempt(d: Deployment, slot: Slot) -> Served:
            response = await self._litellm_call("aimage_generation", d, prompt=prompt, **params)
            return Served(response.model_dump(exclude_none=True), d, 0, 0, self._cost(response))

        return await self.routing.call(group, attempt)

    async def transcribe(self, group: str, file: tuple[str, bytes], **params: Any) -> Served:
        async def attempt(d: Deployment, slot: Slot) -> Served:
            response = await self._litellm_call("atranscription", d, file=file, **params)
            return Served(response.model_dump(exclude_none=True), d, 0, 0, self._cost(response))

        return await self.routing.call(group, attempt)

    # -- accounting ----------------------------------------------------------------------------
    def cost(self, deployment: Deployment, prompt_tokens: int, completion_tokens: int) -> tuple[float, str]:
        """USD for a token count, from the deployment's own prices or litellm's local cost map."""
        if deployment.input_cost_per_token is not None or deployment.output_cost_per_token is not None:
            usd = prompt_tokens * (deployment.input_cost_per_token or 0) + completion_tokens * (
                deployment.output_cost_per_token or 0
            )
            return usd, "deployment_price"
        flat = self._flat_prices(deployment)
        if flat is not None:
            return prompt_tokens * flat[0] + completion_tokens * flat[1], "litellm_cost_map"
        try:
            prompt_usd, completion_usd = load_litellm().cost_per_token(
                model=deployment.model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
            )
        except Exception:  # a model the cost map doesn't know: record tokens, no price
            return 0.0, "unpriced"
        return float(prompt_usd) + float(completion_usd), "litellm_cost_map"

    def _flat_prices(self, deployment: Deployment) -> tuple[float, float] | None:
        """The cost map's per-token prices of a model priced flat (no tiers), read once: cost_per_token takes
        about 0.3-0.7 ms a call, a multiplication doesn't. None: ask cost_per_token (tiers, unknown models)."""
        if deployment.id in self._prices:
            return self._prices[deployment.id]
        prices: tuple[float, float] | None = None
        table = load_litellm().model_cost
        entry = table.get(deployment.model) or table.get(deployment.provider_model)
        if isinstance(entry, dict):
            tiered = any(("above" in k or "tier" in k) and "cost" in k for k in entry)
            inp, out = entry.get("input_cost_per_token"), entry.get("output_cost_per_token")
            if not tiered and isinstance(inp, int | float) and isinstance(out, int | float):
                prices = (float(inp), float(out))
        self._prices[deployment.id] = prices
        return prices

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
    if name.endswith("Timeout") or isinstance(exc, TimeoutError) or status == 408:
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
