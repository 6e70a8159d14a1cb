"""HTTP routes for the caller's account, credits and usage, and the admin routes that act on another user."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from isa.auth.principal import Principal
from isa.core.errors import ApiError
from isa.core.http import json_body, query_params, route_table
from isa.core.openapi import Operation
from isa.users import wire
from isa.users.accounts import schemas
from isa.users.accounts.service import UsersService
from isa.users.credits.schemas import Balance, Consume, Consumed, Recharge, Recharged, TransactionPage, TransactionQuery
from isa.users.http import Endpoint, api, envelope, handler

ME = "/api/v1/users/me"
ADMIN = "/api/v1/admin/users"
_USERS = ("users",)
_CREDITS = ("credits",)
_USAGE = ("usage",)
_ADMIN = ("admin",)
M = TypeVar("M", bound=BaseModel)
_USER_PATH = {"user_id": {"type": "string", "minLength": 1, "maxLength": 255}}


def _service(request: Request) -> UsersService:
    service: UsersService = request.app.state.isa.get("users", UsersService)
    return service


def _target(request: Request) -> str:
    """The user an admin route acts on (a path value is only ever an id to look up, never an owner claim)."""
    user_id = str(request.path_params["user_id"])
    if "\x00" in user_id or len(user_id) > 255:
        raise ApiError(404, "user_not_found", "no such user")
    return user_id


ensure_user = handler(
    Operation("Create or return the caller's user", _USERS, schemas.EnsureUser, None, schemas.EnsuredUser, "write"),
    lambda request, principal, body: _service(request).ensure(principal.user_id, body),
)
get_me = handler(
    Operation("The caller's account", _USERS, response=schemas.User, errors=(404,)),
    lambda request, principal, _: _service(request).get(principal.user_id),
)
update_me = handler(
    Operation("Update the caller's profile", _USERS, schemas.UpdateProfile, None, schemas.User, "write", errors=(404,)),
    lambda request, principal, body: _service(request).update_profile(principal.user_id, body),
)
balance = handler(
    Operation("The caller's credit balance", _CREDITS, response=Balance, errors=(404,)),
    lambda request, principal, _: _service(request).balance(principal.user_id),
)
consume = handler(
    Operation("Spend the caller's credits", _CREDITS, Consume, None, Consumed, "write", errors=(402, 404)),
    lambda request, principal, body: _service(request).consume(principal.user_id, body),
)
transactions = handler(
    Operation(
        "The caller's credit history",
        _CREDITS,
        query=TransactionQuery,
        response=TransactionPage,
    ),
    lambda request, principal, query: _service(request).transactions(principal.user_id, query),
)


@api(
    Operation(
        "Record a usage event (and charge its credits)",
        _USAGE,
        schemas.UsageCreate,
        None,
        schemas.UsageCreated,
        "write",
        status=201,
        errors=(402, 404),
    )
)
async def create_usage(request: Request, principal: Principal) -> Response:
    body = await json_body(request, schemas.UsageCreate, empty_ok=True)
    created = await _service(request).record_usage(principal.user_id, body)
    return envelope(created, 200 if created.duplicate else 201)


list_usage = handler(
    Operation("The caller's usage records", _USAGE, query=schemas.UsageQuery, response=schemas.UsagePage),
    lambda request, principal, query: _service(request).usage(principal.user_id, query),
)
usage_stats = handler(
    Operation(
        "The caller's usage by day, model, provider and event type",
        _USAGE,
        query=schemas.StatsQuery,
        response=schemas.UsageStats,
    ),
    lambda request, principal, query: _service(request).usage_stats(principal.user_id, query),
)


@api(Operation("List users", _ADMIN, query=wire.Paging, response=schemas.UserList, scope="admin"))
async def admin_list_users(request: Request, principal: Principal) -> Response:
    query = query_params(request, wire.Paging)
    users = await _service(request).list_users(query.limit, query.offset)
    return envelope(schemas.UserList(users=users, limit=query.limit, offset=query.offset))


@api(Operation("A user's account", _ADMIN, response=schemas.User, scope="admin", errors=(404,), path_params=_USER_PATH))
async def admin_get_user(request: Request, principal: Principal) -> Response:
    return envelope(await _service(request).get(_target(request)))


@api(
    Operation(
        "Add credits to a user",
        _ADMIN,
        Recharge,
        None,
        Recharged,
        "admin",
        errors=(404,),
        path_params=_USER_PATH,
    )
)
async def admin_recharge(request: Request, principal: Principal) -> Response:
    body = await json_body(request, Recharge, empty_ok=True)
    return envelope(await _service(request).recharge(_target(request), body, by=principal.user_id))


def _of_user(summary: str, query: type[M], response: type[BaseModel], read: Callable[..., Awaitable[Any]]) -> Endpoint:
    """An admin read of one user's records: `read(service, user_id, query)`; an unknown user is a 404 first."""

    @api(
        Operation(summary, _ADMIN, query=query, response=response, scope="admin", errors=(404,), path_params=_USER_PATH)
    )
    async def endpoint(request: Request, principal: Principal) -> Response:
        service, user_id = _service(request), _target(request)
        await service.get(user_id)
        return envelope(await read(service, user_id, query_params(request, query)))

    return endpoint


admin_transactions = _of_user("A user's credit history", TransactionQuery, TransactionPage, UsersService.transactions)
admin_usage = _of_user("A user's usage records", schemas.UsageQuery, schemas.UsagePage, UsersService.usage)


ROUTES = [
    *route_table("", {"POST /api/v1/users/ensure": ensure_user}),
    *route_table(
        ME,
        {
            "GET": get_me,
            "PUT": update_me,
            "GET /credits/balance": balance,
            "POST /credits/consume": consume,
            "GET /credits/transactions": transactions,
            "POST /usage": create_usage,
            "GET /usage": list_usage,
            "GET /usage/stats": usage_stats,
        },
    ),
    *route_table(
        ADMIN,
        {
            "GET": admin_list_users,
            "GET /{user_id}": admin_get_user,
            "POST /{user_id}/credits/recharge": admin_recharge,
            "GET /{user_id}/credits/transactions": admin_transactions,
            "GET /{user_id}/usage": admin_usage,
        },
    ),
]
