"""Secrets at rest: upstream headers and users' own credentials are sealed with Fernet (AES-128-CBC + HMAC).

The key comes from the environment variable the settings name (never from the settings file or the database); a
comma-separated list rotates keys: the first seals, all of them open. Without a key nothing secret is stored.
"""

from __future__ import annotations

import os

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from isa.core.errors import ApiError


class Sealer:
    def __init__(self, env_var: str) -> None:
        self.env_var = env_var

    def _fernet(self) -> MultiFernet:
        raw = os.environ.get(self.env_var, "")
        keys = [k.strip() for k in raw.split(",") if k.strip()]
        if not keys:
            raise ApiError(
                503,
                "credentials_key_missing",
                f"no encryption key is configured: set {self.env_var} (a Fernet key) to store credentials",
            )
        try:
            return MultiFernet([Fernet(k) for k in keys])
        except ValueError:
            raise ApiError(503, "credentials_key_invalid", f"{self.env_var} does not hold valid Fernet keys") from None

    def seal(self, secret: str) -> str:
        return self._fernet().encrypt(secret.encode()).decode()

    def open(self, sealed: str) -> str:
        try:
            return self._fernet().decrypt(sealed.encode()).decode()
        except InvalidToken:
            raise ApiError(
                503, "credentials_unreadable", f"a stored credential can't be opened with the key in {self.env_var}"
            ) from None
