"""Identity for every role: who is calling (tokens, API keys) and what they may do (scopes)."""

from __future__ import annotations

from isa.auth.principal import Principal
from isa.auth.service import AuthService, require_principal
from isa.core.builder import AppBuilder

__all__ = ["AuthService", "Principal", "register", "require_principal"]


def register(builder: AppBuilder) -> None:
    builder.provide("auth", AuthService(builder.state.db))
