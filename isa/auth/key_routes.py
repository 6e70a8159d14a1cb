"""HTTP: a caller manages their own API keys; an admin creates, disables and enables users.

The same operations as `isa keys ...` / `isa users ...`, over HTTP so a user needs no shell to get a key (the
portal uses these, like any other client). The caller is always the verified principal; a key id in the path
is only looked up, with the owner check in SQL.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from isa.auth import store
from isa.auth.principal import Principal, expand_scopes
from isa.auth.service import AuthService, require_principal
from isa.core.errors import ApiError
from isa.core.http import Endpoint, json_body, requires, route_table

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_TEXT = r"^[^\x00-\x1f\x7f]*$"  # printable: a key's name is shown in lists and terminals
_USER_ID = r"^[\x21-\x7e]+$"
MAX_KEYS = 100  # live keys per user: a leaked write key can't mint keys without bound


class NewKeyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(default="", max_length=100, pattern=_TEXT)
    scope: str = Field(default="read", pattern="^(read|write|admin)$")


class NewUserBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: str = Field(min_length=1, max_length=200, pattern=_USER_ID)
    email: str | None = Field(default=None, max_length=320, pattern=r"^[^\s@\x00]+@[^\s@\x00]+$")
    name: str | None = Field(default=None, max_length=200, pattern=_TEXT)


def _service(request: Request) -> AuthService:
    return request.app.state.isa.get("auth", AuthService)  # type: ignore[no-any-return]


def _key_view(row: store.ApiKeyRow) -> dict[str, Any]:
    """The key as its owner sees it: every column but the owner, times in ISO 8601."""
    fields = asdict(row).items()
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in fields if k != "user_id"}


@requires(require_principal, "read")
async def list_keys(request: Request, principal: Principal) -> JSONResponse:
    """GET /api/v1/auth/keys: the caller's keys (never a secret or its hash)."""
    rows = await _service(request).list_api_keys(principal.user_id)
    return JSONResponse({"keys": [_key_view(r) for r in rows], "current_key_id": principal.key_id})


@requires(require_principal, "write")
async def create_key(request: Request, principal: Principal) -> JSONResponse:
    """POST /api/v1/auth/keys: a new key for the caller, with at most the caller's own scope; the secret once."""
    body = await json_body(request, NewKeyBody, empty_ok=True)
    if not expand_scopes([body.scope]) <= principal.scopes:
        raise ApiError(403, "insufficient_scope", "a key can't carry more scope than the credential that makes it")
    service = _service(request)
    live = [r for r in await service.list_api_keys(principal.user_id) if r.revoked_at is None]
    if len(live) >= MAX_KEYS:
        raise ApiError(409, "too_many_keys", f"at most {MAX_KEYS} live keys per user; revoke one first")
    new = await service.create_api_key(principal.user_id, [body.scope], body.name, created_by=principal.user_id)
    out = {"key": new.key, "id": new.id, "name": body.name, "scopes": new.scopes}
    return JSONResponse(out, status_code=201, headers=_NO_STORE)


@requires(require_principal, "write")
async def revoke_key(request: Request, principal: Principal) -> JSONResponse:
    """DELETE /api/v1/auth/keys/{key_id}: revoke one of the caller's keys (404 for anyone else's)."""
    key_id = request.path_params["key_id"]
    try:
        key_id = str(uuid.UUID(key_id))
    except ValueError:
        raise ApiError(404, "not_found", "no such API key") from None
    if not await _service(request).revoke_api_key(key_id, principal.user_id):
        raise ApiError(404, "not_found", "no such live API key")
    return JSONResponse({"id": key_id, "revoked": True})


@requires(require_principal, "admin")
async def admin_create_user(request: Request, _principal: Principal) -> JSONResponse:
    """POST /api/v1/admin/users: create a user with the sign-up credits (once per user ever), like the CLI."""
    body = await json_body(request, NewUserBody)
    from isa.users.signup import billing_settings, grant_signup_credits  # isa.users imports isa.auth

    service = _service(request)
    async with service.db.transaction() as conn:
        created = await store.ensure_user(conn, body.user_id, body.email, body.name)
        await grant_signup_credits(conn, body.user_id, billing_settings(request.app.state.isa.settings))
    return JSONResponse({"user_id": body.user_id, "created": created}, status_code=201 if created else 200)


def _set_active(active: bool) -> Endpoint:
    """The admin endpoint that disables (False) or enables (True) the user in the path."""

    @requires(require_principal, "admin")
    async def set_active(request: Request, principal: Principal) -> Response:
        user_id = str(request.path_params["user_id"])
        if "\x00" in user_id or len(user_id) > 255:
            raise ApiError(404, "not_found", "no such user")
        if not active and user_id == principal.user_id:
            raise ApiError(409, "cannot_disable_self", "an admin can't disable their own account")
        if not await _service(request).set_user_active(user_id, active):
            raise ApiError(404, "not_found", "no such user")
        return JSONResponse({"user_id": user_id, "is_active": active})

    set_active.__name__ = f"admin_{'enable' if active else 'disable'}_user"
    return set_active


admin_disable_user = _set_active(False)
admin_enable_user = _set_active(True)


ROUTES = route_table(
    "/api/v1",
    {
        "GET /auth/keys": list_keys,
        "POST /auth/keys": create_key,
        "DELETE /auth/keys/{key_id}": revoke_key,
        "POST /admin/users": admin_create_user,
        "POST /admin/users/{user_id}/disable": admin_disable_user,
        "POST /admin/users/{user_id}/enable": admin_enable_user,
    },
)
