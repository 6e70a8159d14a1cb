"""Development only: the token secret generated once and kept under ISA_DATA_DIR (mode 0600).

Without it a fresh `make run` could not mint the short tokens the agent uses to act for users, so every chat
failed with 503 agent_not_configured. Every `isa` process on the machine that shares the data folder (the
server, `isa worker`, `isa doctor`) reads the same file, so their tokens agree. Production never generates
one: a missing AUTH.TOKEN_SECRET stays a start-up error there (isa/core/settings.py validators).
"""

from __future__ import annotations

import os
import secrets
import threading
from pathlib import Path

SECRET_FILE = Path("auth") / "token_secret"
_lock = threading.Lock()
_cache: dict[Path, str] = {}


def secret_path(data_dir: Path) -> Path:
    return data_dir / SECRET_FILE


def dev_token_secret(data_dir: Path) -> str:
    """The machine's development secret: read it, or create it once (exclusive create, so processes agree)."""
    path = secret_path(data_dir)
    with _lock:
        if path in _cache:
            return _cache[path]
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            value = path.read_text().strip()
        else:
            value = secrets.token_urlsafe(48)
            with os.fdopen(fd, "w") as out:
                out.write(value + "\n")
        if len(value.encode()) < 32:  # a truncated or edited file: refuse rather than sign with a weak key
            raise ValueError(f"{path} holds no usable secret; delete it to have a new one generated")
        _cache[path] = value
        return value
