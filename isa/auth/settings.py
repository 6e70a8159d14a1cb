"""The `[auth]` settings section: which token issuers are accepted, secrets, caches and rate limits."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BeforeValidator, Field, SecretStr

from isa.auth.devsecret import dev_token_secret
from isa.core.settings import ConfigError, Section, Settings

IssuerKind = Literal["isa", "auth0", "supabase"]
_LOOPBACK = ("127.0.0.1", "localhost", "::1")
MIN_SECRET_BYTES = 32
_DEFAULT_ISSUERS: list[IssuerKind] = ["isa"]


def _words(value: Any) -> Any:
    """ "isa auth0" or "isa,auth0" -> ["isa", "auth0"], duplicates dropped.

    These settings are strings in settings.toml because dynaconf's merge appends lists from the
    environment to the defaults, so a list could never be narrowed (["read"] would become
    ["write", "read"]); a string is replaced whole.
    """
    items = re.split(r"[\s,]+", value.strip()) if isinstance(value, str) else value
    return list(dict.fromkeys(i for i in items if i)) if isinstance(items, list) else items


Words = Annotated[list[str], BeforeValidator(_words)]


class Auth0Settings(Section):
    # The tenant's domain (e.g. example.eu.auth0.com); the issuer is https://{domain}/.
    domain: str = ""
    # The API identifier configured in Auth0; tokens must name it in `aud`.
    audience: str = ""
    # Empty: https://{domain}/.well-known/jwks.json. Must be https (loopback http allowed for tests).
    jwks_url: str = ""
    jwks_ttl_seconds: float = 600
    # An unknown `kid` refetches the JWKS at most this often, so random kids can't make us hammer Auth0.
    jwks_min_refresh_seconds: float = 30
    jwks_timeout_seconds: float = 5
    jwks_max_bytes: int = 262_144
    # Scopes for a token whose `scope`/`permissions` carry none of read/write/admin.
    default_scopes: Words = Field(default_factory=lambda: ["write"])

    @property
    def issuer(self) -> str:
        return f"https://{self.domain}/"

    @property
    def effective_jwks_url(self) -> str:
        return self.jwks_url or f"https://{self.domain}/.well-known/jwks.json"


class SupabaseSettings(Section):
    # The project's issuer, https://<project-ref>.supabase.co/auth/v1.
    issuer: str = ""
    # Supabase user tokens carry no scopes; every signed-in user gets these (never admin).
    scopes: Words = Field(default_factory=lambda: ["write"])
    # Supabase "anonymous sign-ins" also have role=authenticated; refuse them unless asked.
    allow_anonymous: bool = False


class RateLimitSettings(Section):
    # Every authenticated request, per principal (require_principal). 0 disables.
    principal_limit: int = 1200
    principal_window_seconds: int = 60
    # Token exchange and dev token, per client IP and per presented key prefix: stricter.
    auth_ip_limit: int = 20
    auth_key_limit: int = 10
    auth_window_seconds: int = 60
    # How often a node deletes expired rate-limit rows.
    purge_interval_seconds: float = 300


class OAuthSettings(Section):
    """This node as an OAuth 2.1 authorization server for its own /mcp (docs/oauth.md)."""

    # Where MCP clients are sent to sign in: "isa" (this node), "auth0" or "supabase" (this node stays a resource
    # server). "auto": the external issuer accepted in auth.issuers (auth0 first), else this node.
    authorization_server: Literal["auto", "isa", "auth0", "supabase"] = "auto"
    # This authorization server's public origin (its RFC 8414 issuer), e.g. https://mcp.example.com.
    # Empty: the origin of mcp.public_url when set, else the origin the request came in on.
    issuer_url: str = ""
    access_token_seconds: int = Field(default=600, ge=30, le=86_400)
    # A refresh token is single-use; each exchange returns a new one valid this long.
    refresh_token_days: int = Field(default=30, ge=1, le=365)
    code_seconds: int = Field(default=120, ge=10, le=600)
    # How long a consent page may be left open before its form is refused.
    consent_seconds: int = Field(default=600, ge=60, le=3600)
    # Registrations, token and revocation requests per client IP per minute (sign-ins use auth.rate_limit).
    ip_limit: int = Field(default=60, ge=0)
    max_redirect_uris: int = Field(default=10, ge=1, le=100)


class AuthSettings(Section):
    # Which JWT issuers are accepted besides API keys (always accepted).
    issuers: Annotated[list[IssuerKind], BeforeValidator(_words)] = Field(
        default_factory=lambda: list(_DEFAULT_ISSUERS)
    )
    # isa-issued access tokens: `iss` and `aud` this deployment writes and demands.
    issuer: str = "isa"
    audience: str = "isa"
    token_secret: SecretStr = SecretStr("")
    access_token_minutes: int = 15
    supabase_jwt_secret: SecretStr = SecretStr("")
    leeway_seconds: int = 30
    max_token_bytes: int = 8192
    # A JWT user's active flag (and an isa token's source key) is re-read at least this often.
    principal_cache_seconds: float = 30
    principal_cache_size: int = 10_000
    # POST /api/v1/auth/dev-token: only when ISA_ENV=development AND this is true.
    dev_token_endpoint: bool = False
    # Behind N proxies that append to X-Forwarded-For, the client IP is the Nth entry from the right.
    trusted_proxy_hops: int = 0
    auth0: Auth0Settings = Auth0Settings()
    supabase: SupabaseSettings = SupabaseSettings()
    rate_limit: RateLimitSettings = RateLimitSettings()
    oauth: OAuthSettings = OAuthSettings()

    def accepts(self, kind: IssuerKind) -> bool:
        return kind in self.issuers

    @property
    def isa_tokens_enabled(self) -> bool:
        return self.accepts("isa") and bool(self.token_secret.get_secret_value())

    @property
    def authorization_server(self) -> IssuerKind:
        """Which authorization server MCP clients are sent to (oauth.authorization_server, "auto" resolved)."""
        chosen = self.oauth.authorization_server
        if chosen != "auto":
            return chosen
        external: list[IssuerKind] = ["auth0", "supabase"]
        return next((kind for kind in external if self.accepts(kind)), "isa")

    def external_authorization_server(self) -> str | None:
        """The external issuer URL clients sign in with, or None when this node is the authorization server."""
        kind = self.authorization_server
        if kind == "auth0":
            return self.auth0.issuer
        if kind == "supabase":
            return self.supabase.issuer
        return None


def _check(auth: AuthSettings) -> None:
    """Refuse configurations that would silently accept too much or nothing."""
    token_secret = auth.token_secret.get_secret_value()
    supabase_secret = auth.supabase_jwt_secret.get_secret_value()
    if token_secret and len(token_secret.encode()) < MIN_SECRET_BYTES:
        raise ConfigError(f"AUTH.TOKEN_SECRET must be at least {MIN_SECRET_BYTES} bytes")
    if auth.accepts("auth0"):
        if not auth.auth0.domain or not auth.auth0.audience:
            raise ConfigError("AUTH.AUTH0.DOMAIN and AUTH.AUTH0.AUDIENCE are required when auth0 is accepted")
        url = urlsplit(auth.auth0.effective_jwks_url)
        if url.scheme != "https" and not (url.scheme == "http" and url.hostname in _LOOPBACK):
            raise ConfigError("AUTH.AUTH0.JWKS_URL must be https")
    if auth.accepts("supabase"):
        if not supabase_secret or not auth.supabase.issuer:
            raise ConfigError("AUTH.SUPABASE_JWT_SECRET and AUTH.SUPABASE.ISSUER are required to accept supabase")
        if len(supabase_secret.encode()) < MIN_SECRET_BYTES:
            raise ConfigError(f"AUTH.SUPABASE_JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes")
        if "admin" in auth.supabase.scopes:
            raise ConfigError("AUTH.SUPABASE.SCOPES may not include admin")
        if supabase_secret == token_secret:
            raise ConfigError("AUTH.TOKEN_SECRET must differ from AUTH.SUPABASE_JWT_SECRET")
    kind = auth.authorization_server
    if kind != "isa" and not auth.accepts(kind):
        raise ConfigError(f"AUTH.OAUTH.AUTHORIZATION_SERVER is {kind} but AUTH.ISSUERS does not accept {kind} tokens")
    if auth.issuer in (auth.auth0.issuer if auth.accepts("auth0") else None, auth.supabase.issuer or None):
        raise ConfigError("AUTH.ISSUER must differ from the external issuers")


def auth_settings(settings: Settings) -> AuthSettings:
    """The validated `[auth]` section; a bad one is a start-up error naming the setting."""
    auth = settings.section("auth", AuthSettings)  # a ConfigError without the input values
    if settings.env == "development" and auth.accepts("isa") and not auth.token_secret.get_secret_value():
        try:
            generated = dev_token_secret(settings.data_dir)
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"AUTH.TOKEN_SECRET is not set and none could be kept in the data folder: {exc}"
            ) from None
        auth = auth.model_copy(update={"token_secret": SecretStr(generated)})
    _check(auth)
    return auth
