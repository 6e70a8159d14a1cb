"""An Auth0 tenant's signing keys: fetched with a bounded timeout, cached with a TTL, refetched on an unknown kid."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

import anyio
import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from isa.core.logging import get_logger

log = get_logger(__name__)

MIN_RSA_BITS = 2048


class InvalidToken(Exception):
    """The token is not acceptable; the message is safe to show the caller."""


class KeysUnavailable(Exception):
    """The issuer's signing keys could not be fetched and none are cached."""


def parse_jwks(document: Any) -> dict[str, RSAPublicKey]:
    """RS256 signing keys by kid; anything else in the set (enc keys, EC, short RSA) is skipped."""
    keys: dict[str, RSAPublicKey] = {}
    entries = document.get("keys") if isinstance(document, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or entry.get("kty") != "RSA" or not isinstance(entry.get("kid"), str):
            continue
        if entry.get("use", "sig") != "sig" or entry.get("alg", "RS256") != "RS256":
            continue
        try:
            key = jwt.PyJWK(entry, algorithm="RS256").key
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
            continue
        if isinstance(key, RSAPublicKey) and key.key_size >= MIN_RSA_BITS:
            keys[entry["kid"]] = key
    return keys


@dataclass(eq=False)
class JwksCache:
    """Keys of one JWKS URL. Only this URL from settings is ever fetched, never one named in a token."""

    url: str
    _: KW_ONLY
    ttl_seconds: float
    min_refresh_seconds: float
    timeout_seconds: float
    max_bytes: int
    clock: Callable[[], float] = time.monotonic
    _keys: dict[str, RSAPublicKey] = field(default_factory=dict, init=False)
    _fetched_at: float | None = field(default=None, init=False)
    _attempted_at: float | None = field(default=None, init=False)
    _lock: anyio.Lock = field(default_factory=anyio.Lock, init=False)

    async def key_for(self, kid: str) -> RSAPublicKey:
        """The key for `kid`; an unknown kid refetches once (throttled), then fails."""
        now = self.clock()
        if self._fetched_at is None or now - self._fetched_at >= self.ttl_seconds:
            await self._refresh(now)
        key = self._keys.get(kid)
        if key is None and self._may_refetch(now):
            await self._refresh(now)
            key = self._keys.get(kid)
        if key is None:
            if not self._keys and self._fetched_at is None:
                raise KeysUnavailable("the issuer's signing keys are unavailable")
            raise InvalidToken("token signed by an unknown key")
        return key

    def _may_refetch(self, now: float) -> bool:
        return self._attempted_at is None or now - self._attempted_at >= self.min_refresh_seconds

    async def _refresh(self, decided_at: float) -> None:
        async with self._lock:
            # Another request may have refreshed while this one waited for the lock.
            if self._attempted_at is not None and self._attempted_at >= decided_at:
                return
            if self._attempted_at is not None and self.clock() - self._attempted_at < self.min_refresh_seconds:
                return
            self._attempted_at = self.clock()
            try:
                keys = parse_jwks(await self._fetch())
            except (httpx.HTTPError, TimeoutError, ValueError) as exc:
                # Keep serving the keys we have: an IdP outage must not log everyone out.
                log.warning("jwks_fetch_failed", url=self.url, error=type(exc).__name__)
                return
            self._keys = keys
            self._fetched_at = self._attempted_at
            log.info("jwks_fetched", url=self.url, keys=len(keys))

    async def _fetch(self) -> Any:
        body = bytearray()
        with anyio.fail_after(self.timeout_seconds):
            async with (
                httpx.AsyncClient(timeout=httpx.Timeout(self.timeout_seconds), follow_redirects=False) as client,
                client.stream("GET", self.url, headers={"accept": "application/json"}) as response,
            ):
                if response.status_code != 200:
                    raise ValueError(f"JWKS answered {response.status_code}")
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > self.max_bytes:
                        raise ValueError("JWKS document too large")
        return json.loads(body)
