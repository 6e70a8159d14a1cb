"""Rate limits shared by every replica: Postgres holds the state, one statement per check.

Domains call `rate_limit(request, principal, bucket, limit, window_s)` for a route-specific budget
(e.g. chat or tool calls); `require_principal` already applies the generous per-principal default.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from starlette.requests import Request

from isa.auth import store
from isa.auth.principal import Principal
from isa.core.builder import Lifespan
from isa.core.db import Database
from isa.core.errors import ApiError
from isa.core.logging import get_logger

log = get_logger(__name__)

_MAX_KEY = 200


def _bounded(key: str) -> str:
    # Keys embed user ids and header values; long ones are hashed so the row key stays small.
    if len(key) <= _MAX_KEY:
        return key
    return key[:64] + "#" + hashlib.sha256(key.encode()).hexdigest()


async def check_rate(db: Database, key: str, limit: int, window_s: int) -> None:
    """Count one request against `key`: at most `limit` per `window_s` seconds, else 429 with Retry-After."""
    if limit <= 0 or window_s <= 0:
        return
    async with db.connection() as conn:
        verdict = await store.rate_hit(conn, _bounded(key), limit, window_s)
    if not verdict.allowed:
        log.info("rate_limited", bucket=key.split(":", 1)[0], retry_after=verdict.retry_after)
        raise ApiError(
            429,
            "rate_limited",
            f"too many requests; retry in {verdict.retry_after} s",
            headers={"Retry-After": str(verdict.retry_after)},
        )


LEASE_SECONDS = 5.0
MAX_LEASE = 50


class LeasedLimit:
    """Per-principal budgets spent from local leases: one statement per lease, not per request.

    A node takes about 5 % of a budget at once (at most MAX_LEASE, exactly one for small limits) and spends it
    in memory. Every replica still draws on the one budget in Postgres and the total never exceeds it (a lease is
    deducted when it is taken); what a node leased but did not use within LEASE_SECONDS is lost for that window,
    which can only make the limit stricter.
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self._leases: dict[str, tuple[int, float]] = {}  # key -> (requests left, usable until)
        self._locks: dict[str, anyio.Lock] = {}

    def _spend(self, key: str, now: float) -> bool:
        lease = self._leases.get(key)
        if lease is not None and lease[0] > 0 and lease[1] > now:
            self._leases[key] = (lease[0] - 1, lease[1])
            return True
        return False

    async def hit(self, key: str, limit: int, window_s: int) -> None:
        """Count one request against `key` (at most `limit` per `window_s`), else 429 with Retry-After."""
        if limit <= 0 or window_s <= 0:
            return
        key = _bounded(key)
        if self._spend(key, time.monotonic()):
            return
        lock = self._locks.setdefault(key, anyio.Lock())
        async with lock:
            now = time.monotonic()
            if self._spend(key, now):
                return
            size = max(1, min(MAX_LEASE, limit // 20))
            async with self.db.transaction() as conn:
                granted, retry_after = await store.rate_lease(conn, key, size, float(window_s), window_s / limit)
            if granted <= 0:
                self._leases.pop(key, None)
                log.info("rate_limited", bucket=key.split(":", 1)[0], retry_after=retry_after)
                raise ApiError(
                    429,
                    "rate_limited",
                    f"too many requests; retry in {retry_after} s",
                    headers={"Retry-After": str(retry_after)},
                )
            self._leases[key] = (granted - 1, now + LEASE_SECONDS)
            if len(self._leases) > 50_000:  # forget lapsed leases now and then
                self._leases = {k: v for k, v in self._leases.items() if v[1] > now}
                self._locks = {k: v for k, v in self._locks.items() if k in self._leases}


def client_ip(request: Request, trusted_proxy_hops: int = 0) -> str:
    """The caller's address: the peer, or behind N trusted proxies the Nth X-Forwarded-For entry from the right.

    Entries further left are written by the client and can't be trusted, so with hops=0 the header is ignored.
    """
    peer = request.client.host if request.client else "unknown"
    if trusted_proxy_hops <= 0:
        return peer
    forwarded = [p.strip() for p in request.headers.get("x-forwarded-for", "").split(",") if p.strip()]
    return forwarded[-trusted_proxy_hops] if len(forwarded) >= trusted_proxy_hops else peer


async def rate_limit(request: Request, principal: Principal, bucket: str, limit: int, window_s: int) -> None:
    """A per-principal budget for one kind of request (bucket), shared across replicas."""
    await check_rate(request.app.state.isa.db, f"{bucket}:{principal.user_id}", limit, window_s)


async def _purge_forever(db: Database, interval: float) -> None:
    while True:
        await anyio.sleep(interval)
        try:
            async with db.connection() as conn:
                removed = await store.purge_rate_limits(conn)
            if removed:
                log.info("rate_limits_purged", rows=removed)
        except Exception as exc:  # a failed purge only delays the next one
            log.warning("rate_limits_purge_failed", error=type(exc).__name__)


def purger(db: Database, interval: float) -> Lifespan:
    """A lifespan that deletes expired rate-limit rows every `interval` seconds."""

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_purge_forever, db, interval)
            yield
            tg.cancel_scope.cancel()

    return lifespan
