"""Token issuers for tests: RSA keys, a real JWKS server on loopback, JWT builders, and a listener that counts.

The JWKS server is a Starlette app under uvicorn in a thread speaking plain HTTP on 127.0.0.1, the way an
Auth0 tenant serves /.well-known/jwks.json. `ConnectionCounter` is a bare TCP listener: the proof that a
`jku`/`x5u` URL in a token is never fetched is that it records zero connections.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import jwt
import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from isa.app import create_app
from isa.auth import require_principal
from isa.core.settings import Settings
from tests.support.procs import free_port, wait_for

AUTH0_ISSUER = "https://tenant.example.test/"
AUTH0_AUDIENCE = "https://api.isa.example.test"
AUTH0_CLIENT_ID = "spa-client-id"
SUPABASE_ISSUER = "https://project.supabase.example.test/auth/v1"
TOKEN_SECRET = "test-token-secret-" + uuid.uuid4().hex
SUPABASE_SECRET = "test-supabase-secret-" + uuid.uuid4().hex


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def with_auth(settings: Settings, env: str | None = None, **auth: Any) -> Settings:
    """`settings` with keys of the [auth] section replaced (nested dicts merge), optionally another ISA_ENV."""
    raw = {**settings.raw, "auth": _merge(settings.raw.get("auth", {}), auth)}
    update: dict[str, Any] = {"raw": raw}
    if env:
        update["env"] = env
    return settings.model_copy(update=update)


def jwt_settings(settings: Settings, jwks_url: str, **auth: Any) -> Settings:
    """All three issuers accepted (Auth0 keys from `jwks_url`), no principal cache unless overridden."""
    base: dict[str, Any] = {
        "issuers": ["isa", "auth0", "supabase"],
        "token_secret": TOKEN_SECRET,
        "supabase_jwt_secret": SUPABASE_SECRET,
        "principal_cache_seconds": 0,
        "auth0": {
            "domain": AUTH0_ISSUER.removeprefix("https://").rstrip("/"),
            "audience": AUTH0_AUDIENCE,
            "jwks_url": jwks_url,
        },
        "supabase": {"issuer": SUPABASE_ISSUER},
        "rate_limit": {"auth_ip_limit": 10_000, "auth_key_limit": 10_000},
    }
    return with_auth(settings, **_merge(base, auth))


async def whoami(request: Request) -> JSONResponse:
    """A route that needs `?scope=` (default read) and tells who the caller is."""
    principal = await require_principal(request, request.query_params.get("scope", "read"))
    body = {"user_id": principal.user_id, "via": principal.via, "scopes": sorted(principal.scopes)}
    return JSONResponse({**body, "key_id": principal.key_id})


def app_with_whoami(settings: Settings, db_url: str) -> Starlette:
    app = create_app(settings, "all", database_url=db_url)
    app.router.routes.append(Route("/whoami", whoami))
    return app


@dataclass
class SigningKey:
    kid: str
    private: rsa.RSAPrivateKey = field(repr=False)

    @classmethod
    def generate(cls, kid: str | None = None) -> SigningKey:
        return cls(kid or uuid.uuid4().hex[:16], rsa.generate_private_key(public_exponent=65537, key_size=2048))

    def jwk(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key()))
        return {**data, "kid": self.kid, "use": "sig", "alg": "RS256"}

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, claims: dict[str, Any], headers: dict[str, Any] | None = None) -> str:
        return jwt.encode(claims, self.private, algorithm="RS256", headers={"kid": self.kid, **(headers or {})})


def claims(iss: str, aud: str | list[str] | None, sub: str | None = "auth0|alice", **extra: Any) -> dict[str, Any]:
    """A fresh, valid-in-time claim set; pass None to drop aud/sub, or override exp/nbf/iat in `extra`."""
    now = int(time.time())
    out: dict[str, Any] = {"iss": iss, "iat": now, "exp": now + 300}
    if aud is not None:
        out["aud"] = aud
    if sub is not None:
        out["sub"] = sub
    out.update(extra)
    return {k: v for k, v in out.items() if v is not None}


def hs256(claims_: dict[str, Any], secret: str | bytes, headers: dict[str, Any] | None = None) -> str:
    return jwt.encode(claims_, secret, algorithm="HS256", headers=headers)


def unsigned(claims_: dict[str, Any], alg: str = "none") -> str:
    """A token with `alg: none` (or any alg) and an empty signature, built by hand."""

    def b64(obj: dict[str, Any]) -> str:
        return jwt.utils.base64url_encode(json.dumps(obj).encode()).decode()

    return f"{b64({'alg': alg, 'typ': 'JWT'})}.{b64(claims_)}."


def forge_hs256_with(claims_: dict[str, Any], key_bytes: bytes, headers: dict[str, Any]) -> str:
    """HS256 over the header and claims with raw bytes as the MAC key (PyJWT refuses PEM keys, so by hand)."""
    import hashlib
    import hmac

    def b64(data: bytes) -> str:
        return jwt.utils.base64url_encode(data).decode()

    signing_input = (
        f"{b64(json.dumps({'alg': 'HS256', 'typ': 'JWT', **headers}).encode())}.{b64(json.dumps(claims_).encode())}"
    )
    mac = hmac.new(key_bytes, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


class JwksServer:
    """Serves the current key set at /.well-known/jwks.json and counts the fetches."""

    def __init__(self, keys: list[SigningKey]) -> None:
        self.keys = list(keys)
        self.fetches = 0
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/.well-known/jwks.json"

        async def jwks(request: Request) -> JSONResponse:
            self.fetches += 1
            return JSONResponse({"keys": [k.jwk() for k in self.keys]})

        app = Starlette(routes=[Route("/.well-known/jwks.json", jwks)])
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> JwksServer:
        self.thread.start()
        wait_for(lambda: self.server.started, timeout=10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


class ConnectionCounter:
    """A TCP listener on 127.0.0.1 that accepts, records and closes every connection; optionally never answers."""

    def __init__(self, hold: bool = False) -> None:
        self.hold = hold
        self.connections = 0
        self._held: list[socket.socket] = []
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.1)
        self.port = int(self._sock.getsockname()[1])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            if self.hold:
                self._held.append(conn)
            else:
                conn.close()

    def __enter__(self) -> ConnectionCounter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        for conn in self._held:
            conn.close()
        self._sock.close()


@contextmanager
def connection_counter(hold: bool = False) -> Iterator[ConnectionCounter]:
    with ConnectionCounter(hold) as counter:
        yield counter
