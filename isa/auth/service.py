"""Identity: turn request credentials into a Principal, and manage API keys."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from starlette.requests import Request

from isa.auth import store
from isa.auth.principal import SCOPES, Principal, expand_scopes
from isa.core.db import Database
from isa.core.errors import ApiError

KEY_PREFIX = "isa_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def unauthorized(message: str, error: str = "invalid_token") -> ApiError:
    return ApiError(
        401,
        "unauthorized",
        message,
        headers={"WWW-Authenticate": f'Bearer realm="isa", error="{error}"'},
    )


@dataclass(frozen=True)
class NewKey:
    key: str  # shown once, never stored
    id: str
    user_id: str
    scopes: list[str]


class AuthService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create_api_key(self, user_id: str, scopes: list[str], name: str = "", created_by: str = "") -> NewKey:
        unknown = set(scopes) - set(SCOPES)
        if unknown or not scopes:
            raise ApiError(422, "invalid_scope", f"scopes must be among {', '.join(SCOPES)}")
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        async with self.db.transaction() as conn:
            row = await store.insert_api_key(
                conn, user_id, name, key[:12], hash_key(key), sorted(set(scopes)), created_by or user_id
            )
        return NewKey(key=key, id=row.id, user_id=row.user_id, scopes=row.scopes)

    async def principal_for_api_key(self, key: str) -> Principal:
        async with self.db.connection() as conn:
            row = await store.principal_row_for_key(conn, hash_key(key))
        if row is None:
            raise unauthorized("unknown, revoked or expired API key")
        return Principal(row["user_id"], expand_scopes(row["scopes"]), "api_key", str(row["id"]))

    async def principal_for_bearer(self, token: str) -> Principal:
        if token.startswith(KEY_PREFIX):
            return await self.principal_for_api_key(token)
        raise unauthorized("unsupported token")

    async def authenticate(self, request: Request) -> Principal:
        """The caller, from `Authorization: Bearer` or `X-API-Key`; query-string tokens are ignored."""
        header = request.headers.get("authorization")
        if header:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise unauthorized("use the Bearer scheme", "invalid_request")
            return await self.principal_for_bearer(token.strip())
        api_key = request.headers.get("x-api-key")
        if api_key:
            return await self.principal_for_api_key(api_key.strip())
        raise ApiError(
            401, "unauthorized", "authentication required", headers={"WWW-Authenticate": 'Bearer realm="isa"'}
        )


async def require_principal(request: Request, scope: str = "read") -> Principal:
    """The verified caller of this request, holding `scope` (401 / 403 otherwise)."""
    service: AuthService = request.app.state.isa.get("auth", AuthService)
    principal = await service.authenticate(request)
    principal.require(scope)
    return principal
