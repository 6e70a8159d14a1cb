"""Accounts: the `users` rows, the credit API over them (balance, spend, history, admin recharge) and usage records.

Other domains reach accounts through the `users` service (`AppState.get("users")`) and `isa.users.usage`.
"""

from __future__ import annotations

from isa.users.accounts.service import UsersService

__all__ = ["UsersService"]
