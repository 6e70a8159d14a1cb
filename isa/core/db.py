"""The Postgres connection pool every domain shares (psycopg 3, async)."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import anyio
import psycopg
from psycopg.abc import QueryNoTemplate as Query
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from psycopg_pool.base import AttemptWithBackoff

from isa.core.embedded import embedded_url
from isa.core.settings import Settings

DictConnection = psycopg.AsyncConnection[dict[str, Any]]

# psycopg_pool doubles its reconnect delay without bound (1, 2, 4, 8 s ... until reconnect_timeout), so a node
# whose database was gone for T seconds stayed unready up to T seconds more after it came back. Capped, it is
# ready again within about this long: below the load balancer's 5 s health-check interval (drill B2.7).
MAX_RECONNECT_DELAY_SECONDS = 1.0


class _CappedBackoff(AttemptWithBackoff):
    def update_delay(self, now: float) -> None:
        super().update_delay(now)
        self.delay = min(self.delay, MAX_RECONNECT_DELAY_SECONDS)


class _Pool(AsyncConnectionPool[DictConnection]):
    """psycopg_pool's pool whose reconnect attempts back off to at most MAX_RECONNECT_DELAY_SECONDS."""

    async def _add_connection(self, attempt: AttemptWithBackoff | None, growing: bool = False) -> None:
        # The one place the pool starts a reconnect attempt; later retries reuse the object passed here.
        await super()._add_connection(attempt or _CappedBackoff(timeout=self.reconnect_timeout), growing)


def resolve_url(settings: Settings, *, keep_running: bool = False) -> str:
    """The configured database URL, or the embedded one (started on demand)."""
    return settings.database.url or embedded_url(settings.data_dir, keep_running=keep_running)


def migration_url(settings: Settings) -> str:
    return settings.database.migration_url or resolve_url(settings)


class Database:
    """An async pool whose connections return rows as dicts."""

    def __init__(self, url: str, settings: Settings) -> None:
        db = settings.database
        self.url = url
        kwargs: dict[str, Any] = {
            "row_factory": dict_row,
            "connect_timeout": db.connect_timeout_seconds,
            "options": f"-c statement_timeout={db.statement_timeout_ms}",
        }
        self._kwargs = dict(kwargs)
        if not db.prepared_statements:
            # Transaction poolers hand each transaction to any server connection.
            kwargs["prepare_threshold"] = None
        self.pool: AsyncConnectionPool[DictConnection] = _Pool(
            url,
            min_size=db.pool_min,
            max_size=db.pool_max,
            kwargs=kwargs,
            open=False,
            timeout=db.connect_timeout_seconds,
            name="isa",
        )

    async def open(self) -> None:
        # Don't wait for min_size connections: a node whose database is down still starts,
        # answers liveness, and reports not-ready until the database is back.
        await self.pool.open(wait=False)

    async def close(self) -> None:
        await self.pool.close()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[DictConnection]:
        async with self.pool.connection() as conn:
            yield conn

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[DictConnection]:
        async with self.pool.connection() as conn, conn.transaction():
            yield conn

    @asynccontextmanager
    async def maintenance(self, lock_timeout_ms: int = 2_000) -> AsyncIterator[DictConnection]:
        """A connection of its own, outside the pool, in autocommit (VACUUM cannot run in a transaction), that
        gives up on a lock held longer than `lock_timeout_ms` instead of queueing behind it. Never pooled, so no
        later user of the pool can get a connection left in autocommit."""
        options = f"{self._kwargs['options']} -c lock_timeout={lock_timeout_ms}"
        conn = await psycopg.AsyncConnection.connect(self.url, **{**self._kwargs, "options": options}, autocommit=True)
        try:
            yield conn
        finally:
            await conn.close()

    async def ping(self, limit: float) -> None:
        """Raise unless a trivial query answers within `limit` seconds."""
        with anyio.fail_after(limit):
            async with self.pool.connection(timeout=limit) as conn:
                await conn.execute("SELECT 1")


def vector_literal(values: Any) -> str:
    """A pgvector text literal ('[0.1,0.2]') for a sequence of floats; cast it with ::vector(n) in SQL."""
    # One %-format over the whole tuple: the same text as formatting each float with :.7g, in half the time
    # (it is on every cold /discover's path).
    floats = tuple(map(float, values))
    return "[" + _floats_format(len(floats)) % floats + "]"


@functools.cache
def _floats_format(count: int) -> str:
    return ",".join(["%.7g"] * count)


# One-query store functions: the statement and its rows in one call (stores stay a list of their SQL).
Params = Sequence[Any] | Mapping[str, Any] | None


async def fetch_one(conn: DictConnection, query: Query, params: Params = None) -> dict[str, Any] | None:
    """The first row of `query` (a dict), or None."""
    cur = await conn.execute(query, params)
    return await cur.fetchone()


async def fetch_all(conn: DictConnection, query: Query, params: Params = None) -> list[dict[str, Any]]:
    """Every row of `query`, as dicts."""
    cur = await conn.execute(query, params)
    return list(await cur.fetchall())


async def fetch_page(
    conn: DictConnection, columns: str, base: str, params: Sequence[Any], order: str, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    """One page of `SELECT columns base ORDER BY order` and the count of all rows `base` matches.

    `base` is the FROM/WHERE part with its placeholders; `params` fill them (the page adds LIMIT and OFFSET).
    """
    rows = await fetch_all(
        conn, f"SELECT {columns} {base} ORDER BY {order} LIMIT %s OFFSET %s", (*params, limit, offset)
    )
    total = await fetch_one(conn, f"SELECT count(*) AS n {base}", params)
    return rows, int(total["n"]) if total else 0
