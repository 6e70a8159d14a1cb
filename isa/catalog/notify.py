"""Catalog changes made by another replica or the CLI reach this process through Postgres LISTEN/NOTIFY."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
import psycopg
from psycopg import sql

from isa.core.logging import get_logger

log = get_logger(__name__)
CHANNEL = "isa_catalog_changed"
_RETRY_SECONDS = (0.5, 1, 2, 5, 10, 30)


async def listen(url: str, on_change: Callable[[], Awaitable[None]]) -> None:
    """Call `on_change()` for every NOTIFY on the channel; reconnect with backoff until cancelled."""
    failures = 0
    while True:
        try:
            conn = await psycopg.AsyncConnection.connect(url, autocommit=True, connect_timeout=5)
            async with conn:
                await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(CHANNEL)))
                failures = 0
                async for _ in conn.notifies():
                    await on_change()
        except psycopg.Error as exc:
            delay = _RETRY_SECONDS[min(failures, len(_RETRY_SECONDS) - 1)]
            failures += 1
            log.warning("catalog_listen_failed", error=type(exc).__name__, retry_in=delay)
            await anyio.sleep(delay)
