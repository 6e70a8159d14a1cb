"""JWT access tokens: verify Auth0 (RS256 via JWKS), Supabase (HS256) and isa's own (HS256); mint isa's own.

Each accepted issuer is pinned to one algorithm and one key source, chosen by configuration and the
token's `iss`, never by the token's header: `alg: none`, HS256-with-the-RSA-public-key, and keys named
by the token (`jku`, `x5u`, `jwk`, `x5c`) cannot work. Only access tokens pass: ID tokens (`nonce`,
`at_hash`, another `aud`) and refresh tokens (`token_use`/`typ` other than access) are refused.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt

from isa.auth.jwks import InvalidToken, JwksCache, KeysUnavailable
from isa.auth.principal import SCOPES, expand_scopes
from isa.auth.settings import AuthSettings, IssuerKind

__all__ = ["InvalidToken", "KeysUnavailable", "TokenVerifier", "VerifiedToken", "mint_access_token", "user_id_for"]

# Header parameters that make a verifier fetch or trust key material chosen by the sender.
_FORBIDDEN_HEADERS = frozenset({"jku", "x5u", "jwk", "x5c", "crit", "b64"})
_ACCESS_HEADER_TYPES = frozenset({"jwt", "at+jwt", "application/at+jwt"})
_ID_TOKEN_CLAIMS = ("nonce", "at_hash", "c_hash")
_REQUIRED = ["exp", "iss", "aud", "sub"]
_ALGORITHM = {"isa": "HS256", "supabase": "HS256", "auth0": "RS256"}
_AUTH0_SUB = re.compile(r"^[A-Za-z0-9_.-]+\|")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# users.user_id is 1-255 characters; control characters never become an id.
_SAFE_SUB = re.compile(r"^[^\x00-\x1f\x7f]{1,255}$")
_MAX_USER_ID = 255

_MESSAGES: list[tuple[type[Exception], str]] = [
    (jwt.ExpiredSignatureError, "token expired"),
    (jwt.ImmatureSignatureError, "token not yet valid"),
    (jwt.InvalidAudienceError, "token is not for this audience"),
    (jwt.InvalidIssuerError, "token issuer not accepted"),
    (jwt.InvalidAlgorithmError, "token algorithm not accepted"),
    (jwt.InvalidSignatureError, "token signature invalid"),
]


@dataclass(frozen=True)
class VerifiedToken:
    kind: IssuerKind
    user_id: str
    scopes: frozenset[str]
    key_id: str | None = None
    email: str | None = None
    # OAuth access tokens (isa's authorization server): the RFC 8707 resource and the grant they belong to.
    resource: str | None = None
    grant_id: str | None = None


def user_id_for(kind: IssuerKind, sub: str) -> str:
    """The isa user id of a token subject; the forms of the three issuers can never collide.

    isa tokens carry the isa user id itself. Auth0 subjects keep their `connection|id` form (the
    original system's user ids) and Supabase subjects their UUID; any other subject gets the
    issuer kind as a prefix (`auth0:...`, `supabase:...`).
    """
    if kind == "isa":
        return sub
    if kind == "auth0":
        return sub if _AUTH0_SUB.match(sub) else f"auth0:{sub}"
    return sub if _UUID.match(sub) else f"supabase:{sub}"


def _scope_names(claims: dict[str, Any]) -> set[str]:
    names: set[str] = set()
    scope = claims.get("scope")
    if isinstance(scope, str):
        names |= set(scope.split())
    permissions = claims.get("permissions")
    if isinstance(permissions, list):
        names |= {p for p in permissions if isinstance(p, str)}
    return names & set(SCOPES)


def _refuse_non_access(header: dict[str, Any], claims: dict[str, Any]) -> None:
    typ = header.get("typ")
    if typ is not None and (not isinstance(typ, str) or typ.lower() not in _ACCESS_HEADER_TYPES):
        raise InvalidToken("not an access token")
    use = claims.get("token_use", "access")
    claim_typ = claims.get("typ", "access")
    if use != "access" or not isinstance(claim_typ, str) or claim_typ.lower() not in ("access", "bearer"):
        raise InvalidToken("not an access token")
    if any(name in claims for name in _ID_TOKEN_CLAIMS):
        raise InvalidToken("ID tokens are not access tokens")


class TokenVerifier:
    """Verifies a JWT against the issuers the settings accept."""

    def __init__(self, settings: AuthSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        a0 = settings.auth0
        self.jwks: JwksCache | None = None
        if settings.accepts("auth0"):
            self.jwks = JwksCache(
                a0.effective_jwks_url,
                ttl_seconds=a0.jwks_ttl_seconds,
                min_refresh_seconds=a0.jwks_min_refresh_seconds,
                timeout_seconds=a0.jwks_timeout_seconds,
                max_bytes=a0.jwks_max_bytes,
                clock=clock,
            )

    def _kind_for(self, issuer: Any) -> IssuerKind:
        s = self.settings
        if s.isa_tokens_enabled and issuer == s.issuer:
            return "isa"
        if s.accepts("auth0") and issuer == s.auth0.issuer:
            return "auth0"
        if s.accepts("supabase") and issuer == s.supabase.issuer:
            return "supabase"
        raise InvalidToken("token issuer not accepted")

    async def verify(self, token: str) -> VerifiedToken:
        """The token's subject and scopes, or InvalidToken / KeysUnavailable."""
        if len(token) > self.settings.max_token_bytes:
            raise InvalidToken("token too large")
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except (jwt.PyJWTError, ValueError):
            raise InvalidToken("malformed token") from None
        forbidden = sorted(_FORBIDDEN_HEADERS & header.keys())
        if forbidden:
            raise InvalidToken(f"token header {forbidden[0]!r} is not accepted")
        kind = self._kind_for(unverified.get("iss"))
        algorithm = _ALGORITHM[kind]
        if header.get("alg") != algorithm:
            raise InvalidToken("token algorithm not accepted")
        key: Any
        if kind == "auth0":
            kid = header.get("kid")
            if not isinstance(kid, str) or self.jwks is None:
                raise InvalidToken("token names no signing key")
            key = await self.jwks.key_for(kid)
        else:
            secret = self.settings.token_secret if kind == "isa" else self.settings.supabase_jwt_secret
            key = secret.get_secret_value()
        claims = self._decode(token, kind, key, algorithm)
        _refuse_non_access(header, claims)
        return self._verified(kind, claims)

    def _decode(self, token: str, kind: IssuerKind, key: Any, algorithm: str) -> dict[str, Any]:
        s = self.settings
        audience, issuer = {
            "isa": (s.audience, s.issuer),
            "auth0": (s.auth0.audience, s.auth0.issuer),
            "supabase": ("authenticated", s.supabase.issuer),
        }[kind]
        try:
            return jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=audience,
                issuer=issuer,
                leeway=s.leeway_seconds,
                options={"require": _REQUIRED, "enforce_minimum_key_length": True},
            )
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidToken(f"token has no {exc.claim!r} claim") from None
        except jwt.PyJWTError as exc:
            message = next((m for kind_, m in _MESSAGES if isinstance(exc, kind_)), "invalid token")
            raise InvalidToken(message) from None

    def _verified(self, kind: IssuerKind, claims: dict[str, Any]) -> VerifiedToken:
        sub = claims["sub"]
        if not isinstance(sub, str) or not _SAFE_SUB.match(sub) or len(user_id_for(kind, sub)) > _MAX_USER_ID:
            raise InvalidToken("token subject not accepted")
        email = claims.get("email") if isinstance(claims.get("email"), str) else None
        if kind == "isa":
            if claims.get("token_use") != "access":
                raise InvalidToken("not an access token")
            key_id = claims.get("key_id")
            scopes = expand_scopes(_scope_names(claims))
            grant_id = claims.get("grant_id")
            audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
            resource = next((a for a in audiences if isinstance(a, str) and a != self.settings.audience), None)
            return VerifiedToken(
                kind,
                sub,
                scopes,
                key_id if isinstance(key_id, str) else None,
                resource=resource,
                grant_id=grant_id if isinstance(grant_id, str) else None,
            )
        if kind == "supabase":
            if claims.get("role") != "authenticated":
                raise InvalidToken("supabase token is not a signed-in user's")
            if claims.get("is_anonymous") is True and not self.settings.supabase.allow_anonymous:
                raise InvalidToken("anonymous supabase users are not accepted")
            scopes = expand_scopes(self.settings.supabase.scopes)
            return VerifiedToken(kind, user_id_for(kind, sub), scopes, None, email)
        granted = _scope_names(claims) or set(self.settings.auth0.default_scopes)
        return VerifiedToken(kind, user_id_for(kind, sub), expand_scopes(granted), None, email)


def mint_access_token(
    settings: AuthSettings,
    user_id: str,
    scopes: list[str],
    key_id: str | None,
    minutes: int | None = None,
    *,
    seconds: int | None = None,
    resource: str | None = None,
    oauth: dict[str, str] | None = None,
) -> tuple[str, int]:
    """A short-lived isa access token for `user_id` and its lifetime in seconds.

    With `resource` (an OAuth token), `aud` names that resource (RFC 8707) besides this deployment's own
    audience: /mcp checks the resource, the HTTP API the audience. `oauth` adds `client_id` and `grant_id`.
    """
    if not settings.isa_tokens_enabled:
        raise RuntimeError("isa access tokens are not configured (AUTH.TOKEN_SECRET)")
    lifetime = seconds or 60 * (minutes or settings.access_token_minutes)
    now = int(time.time())
    claims: dict[str, Any] = {
        **(oauth or {}),
        "iss": settings.issuer,
        "aud": [resource, settings.audience] if resource else settings.audience,
        "sub": user_id,
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
        "jti": uuid.uuid4().hex,
        "scope": " ".join(sorted(set(scopes))),
        "token_use": "access",
    }
    if key_id:
        claims["key_id"] = key_id
    secret = settings.token_secret.get_secret_value()
    token = jwt.encode(claims, secret, algorithm="HS256", headers={"typ": "at+jwt"})
    return token, lifetime
