"""Identity for every role: who is calling (tokens, API keys) and what they may do (scopes)."""

from __future__ import annotations

from isa.auth import key_routes
from isa.auth.principal import Principal
from isa.auth.ratelimit import check_rate, purger, rate_limit
from isa.auth.routes import routes
from isa.auth.service import AuthService, require_principal
from isa.auth.settings import auth_settings
from isa.core.builder import AppBuilder
from isa.roles import serves_user_service

__all__ = ["AuthService", "Principal", "check_rate", "rate_limit", "register", "require_principal"]


def register(builder: AppBuilder) -> None:
    from isa.users.signup import billing_settings  # isa.users imports isa.auth

    settings = auth_settings(builder.settings)
    builder.provide("auth", AuthService(builder.state.db, settings, billing_settings(builder.settings)))
    # The dev token endpoint exists only in development AND when explicitly switched on.
    dev_endpoint = builder.settings.env == "development" and settings.dev_token_endpoint
    builder.add_routes(*routes(dev_endpoint))
    if serves_user_service(builder.state.role):
        builder.add_routes(*key_routes.ROUTES)  # managing keys and users is the user service's, not every node's
    builder.add_lifespan(purger(builder.state.db, settings.rate_limit.purge_interval_seconds))
