"""Create users and API keys the way an operator does (through the service, not by writing SQL)."""

from __future__ import annotations

import anyio

from isa.auth import store
from isa.auth.service import AuthService
from isa.core.db import Database
from isa.core.settings import Settings


def create_key(db_url: str, settings: Settings, user_id: str, scope: str = "write") -> str:
    """A fresh API key for `user_id` (created if missing)."""

    async def main() -> str:
        db = Database(db_url, settings)
        await db.open()
        try:
            async with db.transaction() as conn:
                await store.ensure_user(conn, user_id, f"{user_id}@example.test", user_id)
            return (await AuthService(db).create_api_key(user_id, [scope])).key
        finally:
            await db.close()

    return anyio.run(main)
