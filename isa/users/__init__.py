"""The user service, in four sub-packages with the same rooms: `accounts` (users, usage records and the credit
API), `credits` (the ledger other domains charge through), `billing` (plans, Stripe) and `sessions`.

Public faces for other domains: `isa.users.credits`, `isa.users.sessions`, `isa.users.usage`, the services
provided here, and the wire models re-exported by `isa.users.schemas`.
"""

from __future__ import annotations

from starlette.routing import Route

from isa.core.builder import AppBuilder
from isa.core.openapi import openapi_json
from isa.users.accounts import UsersService
from isa.users.accounts import routes as account_routes
from isa.users.billing import BillingService
from isa.users.billing import routes as billing_routes
from isa.users.sessions import SessionsService
from isa.users.sessions import routes as session_routes
from isa.users.settings import billing_settings

__all__ = ["BillingService", "SessionsService", "UsersService", "register"]


def register(builder: AppBuilder) -> None:
    billing = billing_settings(builder.settings)
    db = builder.state.db
    builder.provide("users", UsersService(db, billing))
    builder.provide("sessions", SessionsService(db))
    builder.provide("billing", BillingService(db, billing))
    builder.add_routes(*account_routes.ROUTES, *session_routes.ROUTES, *billing_routes.ROUTES)
    builder.add_routes(Route("/openapi.json", openapi_json, methods=["GET"], include_in_schema=False))
