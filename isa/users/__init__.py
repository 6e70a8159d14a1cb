"""The user service: accounts, credits, plans and Stripe billing, usage records and sessions."""

from __future__ import annotations

from starlette.routing import Route

from isa.core.builder import AppBuilder
from isa.core.openapi import openapi_json
from isa.users import billing_routes, routes
from isa.users.billing import BillingService
from isa.users.service import UsersService
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
    builder.add_routes(*routes.ROUTES, *session_routes.ROUTES, *billing_routes.ROUTES)
    builder.add_routes(Route("/openapi.json", openapi_json, methods=["GET"], include_in_schema=False))
