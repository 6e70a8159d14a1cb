"""Development only: the first start of a chat node prints, once, how to sign in (like Jupyter's token link).

It makes a local user (`local`, with the sign-up credits) and an admin API key for it, and prints the chat
page's address and the key on the terminal, never through the logger. A marker under ISA_DATA_DIR makes it
happen once per data folder; later starts print nothing secret. Production never runs this.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

from isa.auth import store
from isa.auth.service import AuthService
from isa.core.builder import AppBuilder
from isa.core.logging import get_logger
from isa.roles import DEFAULT_PORTS

log = get_logger(__name__)

LOCAL_USER = "local"
MARKER = Path("auth") / "first-run-done"


def _claim(data_dir: Path) -> bool:
    """True for exactly one start per data folder (exclusive create of the marker)."""
    path = data_dir / MARKER
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        return False
    return True


def first_run_hint(
    builder: AppBuilder, out: Callable[[str], None] | None = None
) -> Callable[[], AbstractAsyncContextManager[None]]:
    """A lifespan that, on the first development start, makes the local admin key and prints how to sign in."""
    state = builder.state
    settings = builder.settings
    write = out or (lambda text: print(text, file=sys.stderr, flush=True))

    @asynccontextmanager
    async def hint() -> AsyncIterator[None]:
        if settings.env == "development" and _claim(settings.data_dir):
            from isa.users.signup import billing_settings, grant_signup_credits  # isa.users imports isa.auth

            async with state.db.transaction() as conn:
                await store.ensure_user(conn, LOCAL_USER, None, "Local admin")
                await grant_signup_credits(conn, LOCAL_USER, billing_settings(settings))
            new = await AuthService(state.db).create_api_key(LOCAL_USER, ["admin"], "first run", created_by="first-run")
            host = settings.server.host if settings.server.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
            port = settings.server.port or DEFAULT_PORTS.get(state.role, 8080)
            write(
                "\n  isa is ready. Open the chat page and sign in with this API key (shown once; keep it):\n"
                f"      http://{host}:{port}/\n"
                f"      {new.key}\n"
                "  More keys: isa keys create --user NAME --scope write\n"
            )
            log.info("first_run_key_created", user_id=LOCAL_USER, key_id=new.id)  # the id only, never the key
        yield

    return hint
