"""Per-user, per-tool rate limits shared by every replica, without a database round trip per call.

The budget lives in Postgres, in isa.auth's GCRA table `rate_limits` (key `tool:<tool>:<user>`): `limit`
calls per `window`, bursts up to `limit`. A node takes a *lease* of several calls in one statement (about 5%
of the budget, at most 50, exactly one for small limits) and spends it locally. The total across replicas
never exceeds the budget, because a lease is deducted when it is taken; tokens a node leased but did not use
before the lease lapses are simply lost for that window, which can only make the limit stricter.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio

from isa.core.db import Database, DictConnection, fetch_one

LEASE_SECONDS = 5.0
MAX_LEASE = 50

_LEASE = "SELECT granted, retry_after FROM mcp_rate_lease(%s, %s, %s, %s)"


@dataclass
class _Lease:
    tokens: int
    until: float


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after: int


ALLOWED = Verdict(True, 0)  # one instance for every allowed call


def lease_size(limit: int) -> int:
    """Calls taken per statement: about 5 % of the budget, exactly one for small limits, at most MAX_LEASE."""
    return max(1, min(MAX_LEASE, limit // 20))


class ToolLimiter:
    """This node's leases on the shared per-user, per-tool budgets."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._leases: dict[str, _Lease] = {}
        self._locks: dict[str, anyio.Lock] = {}

    def spend(self, tool: str, user_id: str) -> bool:
        """Spend one call from this node's current lease, without awaiting; False: none left, call `hit`."""
        lease = self._leases.get(f"tool:{tool}:{user_id}")
        if lease is not None and lease.tokens > 0 and lease.until > time.monotonic():
            lease.tokens -= 1
            return True
        return False

    async def hit(self, tool: str, user_id: str, limit: int, window_seconds: int = 60) -> Verdict:
        """Spend one call of `user_id`'s budget for `tool`, leasing more from Postgres when none is left."""
        key = f"tool:{tool}:{user_id}"
        lease = self._leases.get(key)
        now = time.monotonic()
        if lease is not None and lease.tokens > 0 and lease.until > now:
            lease.tokens -= 1
            return ALLOWED
        lock = self._locks.setdefault(key, anyio.Lock())
        async with lock:
            lease = self._leases.get(key)
            now = time.monotonic()
            if lease is not None and lease.tokens > 0 and lease.until > now:
                lease.tokens -= 1
                return ALLOWED
            n = lease_size(limit)
            async with _autocommit(self.db) as conn:
                row = await fetch_one(conn, _LEASE, (key, n, float(window_seconds), window_seconds / limit))
            assert row is not None
            granted = int(row["granted"])
            if granted <= 0:
                self._leases.pop(key, None)
                return Verdict(False, int(row["retry_after"]))
            self._leases[key] = _Lease(granted - 1, now + LEASE_SECONDS)
            if len(self._leases) > 50_000:  # forget lapsed leases now and then
                self._leases = {k: v for k, v in self._leases.items() if v.until > now}
                self._locks = {k: v for k, v in self._locks.items() if k in self._leases}
            return ALLOWED


@asynccontextmanager
async def _autocommit(db: Database) -> AsyncIterator[DictConnection]:
    """A pooled connection without the implicit BEGIN/COMMIT: one round trip for a one-statement write."""
    async with db.connection() as conn:
        await conn.set_autocommit(True)
        try:
            yield conn
        finally:
            await conn.set_autocommit(False)
