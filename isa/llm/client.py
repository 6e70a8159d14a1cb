"""Calling the model node as a user: one client for every domain that needs an LLM on the mcp node.

Web analysis and automation, memory extraction, knowledge answers and discovery's optional rerank all go
through here. Each call carries a short isa token minted for the calling user (never the caller's own
credential), so the model node bills and rate-limits that user. No retries here: the model node's router
owns retries and fallbacks (exactly one layer).

The transport is chosen once, at start-up (`model_client(builder)`): HTTP to `services.model_url` when it is
set, else the in-process transport into this process's own model app when the model role is served here
(role `all`). Either way the request goes through the model app's routes, auth and billing unchanged.
"""

from __future__ import annotations

from typing import Any

import httpx

from isa.auth.principal import Principal, expand_scopes, minimal_scopes
from isa.auth.settings import AuthSettings, auth_settings
from isa.auth.tokens import mint_access_token
from isa.core.builder import AppBuilder
from isa.core.logging import get_logger
from isa.core.settings import Settings
from isa.llm.transport import InProcess, StreamingASGITransport, local_node, node_target

log = get_logger(__name__)


class ModelUnavailable(Exception):
    """The model node is not configured or did not answer usefully; the message says which (no secrets)."""


class ModelClient:
    """POSTs OpenAI-wire requests to the model node with a token minted for the user.

    `local` set: the requests go to this process's own app (`model_url` is then only the Host they carry).
    """

    def __init__(
        self,
        model_url: str,
        auth: AuthSettings,
        timeout: float = 60.0,
        user_agent: str = "isa",
        *,
        local: InProcess | None = None,
    ) -> None:
        self.model_url = model_url.rstrip("/")
        self.auth = auth
        self.timeout = timeout
        self.user_agent = user_agent
        self.local = local

    @property
    def in_process(self) -> bool:
        return self.local is not None

    def _client(self) -> httpx.AsyncClient:
        transport = StreamingASGITransport(self.local) if self.local is not None else None
        return httpx.AsyncClient(timeout=self.timeout, trust_env=False, follow_redirects=False, transport=transport)

    def _headers(self, principal: Principal) -> dict[str, str]:
        scopes = minimal_scopes(expand_scopes(principal.scopes) & {"read", "write"}) or ["read"]
        token, _ = mint_access_token(self.auth, principal.user_id, scopes, None, 5)
        return {"Authorization": f"Bearer {token}", "User-Agent": self.user_agent}

    async def post(self, principal: Principal, path: str, body: dict[str, Any]) -> Any:
        """POST `body` to `path` on the model node; the decoded JSON answer, or ModelUnavailable."""
        try:
            async with self._client() as client:
                response = await client.post(self.model_url + path, json=body, headers=self._headers(principal))
        except httpx.HTTPError as exc:
            raise ModelUnavailable(f"the model node is unreachable ({type(exc).__name__})") from None
        if response.status_code != 200:
            log.warning("model_call_failed", path=path, status=response.status_code)
            raise ModelUnavailable(f"the model node answered HTTP {response.status_code}")
        try:
            return response.json()
        except ValueError:
            raise ModelUnavailable("the model node's answer is not JSON") from None

    async def chat(
        self,
        principal: Principal,
        messages: list[dict[str, Any]],
        *,
        model: str,
        **options: Any,
    ) -> dict[str, Any]:
        """One non-streaming chat completion; returns the first choice's message (content, tool_calls)."""
        answer = await self.post(principal, "/v1/chat/completions", {"model": model, "messages": messages, **options})
        try:
            message = answer["choices"][0]["message"]
        except (KeyError, IndexError, TypeError):
            raise ModelUnavailable("the model node's answer has no message") from None
        if not isinstance(message, dict):
            raise ModelUnavailable("the model node's answer has no message")
        return message

    async def complete(
        self, principal: Principal, messages: list[dict[str, Any]], *, model: str, **options: Any
    ) -> str:
        """The text of one chat completion."""
        message = await self.chat(principal, messages, model=model, **options)
        return str(message.get("content") or "")

    async def send(
        self,
        principal: Principal,
        path: str,
        *,
        json: dict[str, Any] | None = None,
        data: dict[str, str] | None = None,
        files: dict[str, tuple[str, bytes, str]] | None = None,
    ) -> httpx.Response:
        """POST JSON or multipart (audio uploads) and hand back the response whatever its status, so a caller can
        read the model node's error code (model_unavailable, insufficient_credits, ...); transport failures
        still raise ModelUnavailable."""
        try:
            async with httpx.AsyncClient(timeout=self.timeout, trust_env=False, follow_redirects=False) as client:
                return await client.post(
                    self.model_url + path, json=json, data=data, files=files, headers=self._headers(principal)
                )
        except httpx.HTTPError as exc:
            raise ModelUnavailable(f"the model node is unreachable ({type(exc).__name__})") from None


def model_client(source: AppBuilder | Settings, timeout: float = 60.0, user_agent: str = "isa") -> ModelClient | None:
    """The client for this node, or None when it can't reach a model node as a user.

    Pass the builder (in `register`): with no `services.model_url`, a process that serves the model role itself
    (role `all`) gets the in-process transport. With only Settings, HTTP to `services.model_url` or nothing.
    Needs isa tokens (auth.token_secret; generated in development, see docs/auth.md).
    """
    settings = source.settings if isinstance(source, AppBuilder) else source
    auth = auth_settings(settings)
    if not auth.isa_tokens_enabled:
        return None
    builder = source if isinstance(source, AppBuilder) else None
    target = node_target(settings, "model", builder.state.role if builder else None)
    if target is None:
        return None
    local = local_node(builder) if target.local and builder else None
    return ModelClient(target.base_url, auth, timeout, user_agent, local=local)
