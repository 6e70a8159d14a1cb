"""Identity: turn request credentials into a Principal, and manage API keys."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.requests import Request

from isa.auth import store
from isa.auth.cache import LiveCache
from isa.auth.principal import SCOPES, Principal, expand_scopes, minimal_scopes
from isa.auth.ratelimit import LeasedLimit, check_rate, client_ip
from isa.auth.settings import AuthSettings
from isa.auth.tokens import InvalidToken, KeysUnavailable, TokenVerifier, VerifiedToken, mint_access_token
from isa.core.db import Database
from isa.core.errors import ApiError
from isa.core.logging import get_logger

if TYPE_CHECKING:
    from isa.users.settings import BillingSettings

log = get_logger(__name__)

KEY_PREFIX = "isa_"
# The stored, non-secret part of a key (api_keys.prefix): what the per-key auth limit counts by.
KEY_PREFIX_LEN = 12


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def unauthorized(message: str, error: str = "invalid_token") -> ApiError:
    """401 with an RFC 6750 challenge; `message` is ours (never token content), so it is safe to quote."""
    description = message.replace('"', "'").replace("\\", "")
    return ApiError(
        401,
        "unauthorized",
        message,
        headers={"WWW-Authenticate": f'Bearer realm="isa", error="{error}", error_description="{description}"'},
    )


@dataclass(frozen=True)
class NewKey:
    key: str  # shown once, never stored
    id: str
    user_id: str
    scopes: list[str]


@dataclass(frozen=True)
class AccessToken:
    token: str
    expires_in: int
    scope: str


class AuthService:
    def __init__(
        self, db: Database, settings: AuthSettings | None = None, billing: BillingSettings | None = None
    ) -> None:
        self.db = db
        self.settings = settings or AuthSettings()
        self.billing = billing  # set: a JWT user seen for the first time gets the sign-up credits
        self.verifier = TokenVerifier(self.settings)
        self.live = LiveCache(self.settings.principal_cache_seconds, self.settings.principal_cache_size)
        # API keys found valid, by hash, for principal_cache_seconds (the documented revocation bound):
        # a warm key costs a dict lookup instead of a query per request.
        self._keys: OrderedDict[str, tuple[float, Principal]] = OrderedDict()
        self.principal_limit = LeasedLimit(db)

    async def create_api_key(self, user_id: str, scopes: list[str], name: str = "", created_by: str = "") -> NewKey:
        unknown = set(scopes) - set(SCOPES)
        if unknown or not scopes:
            raise ApiError(422, "invalid_scope", f"scopes must be among {', '.join(SCOPES)}")
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        async with self.db.transaction() as conn:
            row = await store.insert_api_key(
                conn, user_id, name, key[:KEY_PREFIX_LEN], hash_key(key), sorted(set(scopes)), created_by or user_id
            )
        return NewKey(key=key, id=row.id, user_id=row.user_id, scopes=row.scopes)

    async def list_api_keys(self, user_id: str) -> list[store.ApiKeyRow]:
        async with self.db.connection() as conn:
            return await store.list_api_keys(conn, user_id)

    async def revoke_api_key(self, key_id: str, owner: str | None) -> bool:
        """Revoke a key (with `owner`, only that user's); tokens minted from it stop at once on this node."""
        async with self.db.transaction() as conn:
            revoked = await store.revoke_api_key(conn, key_id, owner)
        if revoked and owner is not None:
            self.live.forget_user(owner)
        for digest in [d for d, (_, p) in self._keys.items() if p.key_id == key_id]:
            del self._keys[digest]
        return revoked

    async def principal_for_api_key(self, key: str) -> Principal:
        digest = hash_key(key)
        hit = self._keys.get(digest)
        if hit is not None:
            if hit[0] > time.monotonic():
                return hit[1]
            del self._keys[digest]
        async with self.db.connection() as conn:
            row = await store.principal_row_for_key(conn, digest)
        if row is None:
            raise unauthorized("unknown, revoked or expired API key")
        principal = Principal(row["user_id"], expand_scopes(row["scopes"]), "api_key", str(row["id"]))
        ttl, size = self.settings.principal_cache_seconds, self.settings.principal_cache_size
        if ttl > 0 and size > 0:
            self._keys[digest] = (time.monotonic() + ttl, principal)
            while len(self._keys) > size:
                self._keys.popitem(last=False)
        return principal

    async def principal_for_bearer(self, token: str) -> Principal:
        """The principal of a bearer credential (API key or JWT access token); 401 ApiError otherwise."""
        if token.startswith(KEY_PREFIX):
            return await self.principal_for_api_key(token)
        if token.count(".") != 2:
            raise unauthorized("unsupported token")
        try:
            verified = await self.verifier.verify(token)
        except InvalidToken as exc:
            log.info("token_rejected", reason=str(exc))
            raise unauthorized(str(exc)) from None
        except KeysUnavailable:
            raise ApiError(503, "auth_unavailable", "the token issuer's keys are unavailable; retry later") from None
        if not await self._is_live(verified):
            log.info("token_rejected", reason="inactive", user_id=verified.user_id)
            raise unauthorized("user disabled or token's API key revoked")
        via = "oauth" if verified.grant_id else verified.kind
        return Principal(verified.user_id, verified.scopes, via, verified.key_id, verified.resource)

    async def _is_live(self, verified: VerifiedToken) -> bool:
        """Active user (created on first sight for external issuers), re-read at least every cache TTL."""
        cache_key = (verified.user_id, verified.key_id, verified.grant_id)
        if self.live.fresh(cache_key):
            return True
        async with self.db.transaction() as conn:
            if verified.grant_id is not None:
                from isa.auth.oauth import store as oauth_store  # the package imports this module

                live = await oauth_store.grant_live(conn, verified.grant_id, verified.user_id)
            elif verified.kind == "isa":
                live = await store.isa_token_live(conn, verified.user_id, verified.key_id)
            else:
                live, created = await store.ensure_active_user(conn, verified.user_id, verified.email)
                if created and self.billing is not None:
                    from isa.users.signup import grant_signup_credits  # isa.users imports isa.auth

                    await grant_signup_credits(conn, verified.user_id, self.billing)
        if live:
            self.live.remember(cache_key)
        return live

    async def set_user_active(self, user_id: str, active: bool) -> bool:
        """Enable or disable a user; this node forgets it at once, others within the cache TTL."""
        async with self.db.transaction() as conn:
            changed = await store.set_user_active(conn, user_id, active)
        self.live.forget_user(user_id)
        for digest in [d for d, (_, p) in self._keys.items() if p.user_id == user_id]:
            del self._keys[digest]
        return changed

    def issue_access_token(self, principal: Principal, requested: list[str] | None = None) -> AccessToken:
        """An isa access token for an API-key principal, with at most the key's scopes."""
        if not self.settings.isa_tokens_enabled:
            raise ApiError(503, "not_configured", "isa access tokens are not enabled on this deployment")
        unknown = set(requested or []) - set(SCOPES)
        if unknown:
            raise ApiError(422, "invalid_scope", f"scopes must be among {', '.join(SCOPES)}")
        wanted = expand_scopes(set(requested or []) or principal.scopes)
        if not wanted <= principal.scopes:
            raise ApiError(403, "insufficient_scope", "a token can't carry more scopes than its API key")
        scopes = minimal_scopes(wanted)
        token, lifetime = mint_access_token(self.settings, principal.user_id, scopes, principal.key_id)
        return AccessToken(token, lifetime, " ".join(scopes))

    async def check_auth_attempt(self, request: Request, api_key: str | None) -> None:
        """The strict budget of credential-exchange endpoints, per client IP and per presented key prefix."""
        rl = self.settings.rate_limit
        ip = client_ip(request, self.settings.trusted_proxy_hops)
        await check_rate(self.db, f"auth-ip:{ip}", rl.auth_ip_limit, rl.auth_window_seconds)
        if api_key:
            await check_rate(self.db, f"auth-key:{api_key[:KEY_PREFIX_LEN]}", rl.auth_key_limit, rl.auth_window_seconds)

    async def check_principal_rate(self, principal: Principal) -> None:
        """The general per-principal budget every authenticated request draws on (all replicas share it)."""
        rl = self.settings.rate_limit
        await self.principal_limit.hit(
            f"principal:{principal.user_id}", rl.principal_limit, rl.principal_window_seconds
        )

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
    await service.check_principal_rate(principal)
    principal.require(scope)
    return principal
