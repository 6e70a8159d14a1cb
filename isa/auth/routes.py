"""HTTP: exchange an API key for a short-lived access token; the development-only token endpoint."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from isa.auth import store
from isa.auth.principal import Principal, expand_scopes, minimal_scopes
from isa.auth.schemas import DevTokenRequest, TokenRequest, TokenResponse
from isa.auth.service import KEY_PREFIX, AuthService, unauthorized
from isa.auth.tokens import mint_access_token
from isa.core.errors import ApiError
from isa.core.http import json_body
from isa.core.logging import get_logger

log = get_logger(__name__)
M = TypeVar("M", bound=BaseModel)
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _service(request: Request) -> AuthService:
    return request.app.state.isa.get("auth", AuthService)  # type: ignore[no-any-return]


def _presented_api_key(request: Request) -> str | None:
    """The API key from `Authorization: Bearer isa_...` or `X-API-Key` (never the query string)."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip().startswith(KEY_PREFIX):
        return value.strip()
    key = request.headers.get("x-api-key", "").strip()
    return key or None


def _token_response(token: str, expires_in: int, scope: str) -> JSONResponse:
    body = TokenResponse(access_token=token, expires_in=expires_in, scope=scope)
    return JSONResponse(body.model_dump(), headers=_NO_STORE)


async def _key_holder(request: Request, service: AuthService, missing: str) -> Principal:
    """The principal of the presented API key (attempts rate-limited first); 401 `missing` when none is presented."""
    key = _presented_api_key(request)
    await service.check_auth_attempt(request, key)
    if key is None:
        raise unauthorized(missing, "invalid_request")
    return await service.principal_for_api_key(key)


async def exchange_token(request: Request) -> JSONResponse:
    """POST /api/v1/auth/token: a valid API key in, an access token with at most its scopes out."""
    service = _service(request)
    principal = await _key_holder(request, service, "present an API key as Bearer or X-API-Key")
    wanted = (await json_body(request, TokenRequest, empty_ok=True)).scopes()
    issued = service.issue_access_token(principal, wanted)
    log.info("access_token_issued", user_id=principal.user_id, key_id=principal.key_id, scope=issued.scope)
    return _token_response(issued.token, issued.expires_in, issued.scope)


async def dev_token(request: Request) -> JSONResponse:
    """POST /api/v1/auth/dev-token (development only): an admin API key mints a token for any user."""
    service = _service(request)
    admin = await _key_holder(request, service, "an admin API key is required")
    admin.require("admin")
    body = await json_body(request, DevTokenRequest, empty_ok=True)
    if not service.settings.isa_tokens_enabled:
        raise ApiError(503, "not_configured", "isa access tokens are not enabled (AUTH.TOKEN_SECRET)")
    from isa.users.signup import billing_settings, grant_signup_credits  # isa.users imports isa.auth

    async with service.db.transaction() as conn:
        await store.ensure_user(conn, body.user_id, None, None)
        await grant_signup_credits(conn, body.user_id, billing_settings(request.app.state.isa.settings))
    scopes = minimal_scopes(expand_scopes(body.scopes()))
    token, lifetime = mint_access_token(service.settings, body.user_id, scopes, None, body.minutes)
    log.warning("dev_token_issued", user_id=body.user_id, by=admin.user_id, scope=" ".join(scopes))
    return _token_response(token, lifetime, " ".join(scopes))


def routes(dev_endpoint: bool) -> list[Route]:
    out = [Route("/api/v1/auth/token", exchange_token, methods=["POST"])]
    if dev_endpoint:
        out.append(Route("/api/v1/auth/dev-token", dev_token, methods=["POST"]))
    return out
