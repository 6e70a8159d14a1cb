"""Rate limits shared by every replica: Postgres holds the state, one statement per check.

Domains call `rate_limit(request, principal, bucket, limit, window_s)` for a route-specific budget
(e.g. chat or tool calls); `require_principal` already applies the generous per-principal default.
"""

from __future__ import annotations

import hashlib
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
