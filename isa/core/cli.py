"""What every operator command shares: the database bootstrap and how domains add their commands.

A domain adds commands by defining `add_commands(sub, load_settings)` in its `cli.py`; `isa/cli.py` finds
those modules through roles.py (like the MCP registry finds `tools.py`), so no list of domains lives here.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import anyio

from isa.core.db import Database, resolve_url
from isa.core.migrations import migrate
from isa.core.settings import Settings

T = TypeVar("T")


def run_with_database(settings: Settings, work: Callable[[Database], Awaitable[T]], *, keep_running: bool = False) -> T:
    """Migrate (when `database.auto_migrate`), open the pool, run `work`, close the pool.

    Migrations go over `database.migration_url` when it is set, as `isa serve` does: a transaction pooler in
    front of `database.url` would break the migration's session advisory lock. The same lock and statement
    timeouts as at start-up keep a command from queueing live traffic behind a schema change.
    `keep_running` leaves an embedded database up for long-running commands (`isa worker`).
    """
    url = resolve_url(settings, keep_running=keep_running)
    if settings.database.auto_migrate:
        migrate(
            settings.database.migration_url or url,
            lock_timeout_ms=settings.migrations.lock_timeout_ms,
            statement_timeout_ms=settings.migrations.statement_timeout_ms,
        )

    async def main() -> T:
        db = Database(url, settings)
        await db.open()
        try:
            return await work(db)
        finally:
            await db.close()

    return anyio.run(main)


def report(out: Any, as_json: bool, text: Callable[[], str | Iterable[str]]) -> int:
    """A command's answer: `out` as one JSON document (`--json`), or the line or lines `text` makes of it for a
    person (only called then); the exit code 0."""
    if as_json:
        print(json.dumps(out, default=str))
        return 0
    lines = text()
    for line in [lines] if isinstance(lines, str) else lines:
        print(line)
    return 0
