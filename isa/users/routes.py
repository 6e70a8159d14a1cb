"""HTTP routes for the caller's account, credits and usage, and the admin routes that act on another user."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from isa.auth.principal import Principal
from isa.core.errors import ApiError
from isa.core.http import json_body, query_params
from isa.core.openapi import Operation
from isa.users import schemas
from isa.users.http import api, envelope
from isa.users.service import UsersService

ME = "/api/v1/users/me"
ADMIN = "/api/v1/admin/users"
_USERS = ("users",)
_CREDITS = ("credits",)
_USAGE = ("usage",)
_ADMIN = ("admin",)
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


@api(Operation("Create or return the caller's user", _USERS, schemas.EnsureUser, None, schemas.EnsuredUser, "write"))
async def ensure_user(request: Request, principal: Principal) -> Response:
    body = await json_body(request, schemas.EnsureUser, empty_ok=True)
    return envelope(await _service(request).ensure(principal.user_id, body))


@api(Operation("The caller's account", _USERS, response=schemas.User, errors=(404,)))
async def get_me(request: Request, principal: Principal) -> Response:
    return envelope(await _service(request).get(principal.user_id))


@api(
    Operation("Update the caller's profile", _USERS, schemas.UpdateProfile, None, schemas.User, "write", errors=(404,))
)
async def update_me(request: Request, principal: Principal) -> Response:
    body = await json_body(request, schemas.UpdateProfile, empty_ok=True)
    return envelope(await _service(request).update_profile(principal.user_id, body))


@api(Operation("The caller's credit balance", _CREDITS, response=schemas.Balance, errors=(404,)))
async def balance(request: Request, principal: Principal) -> Response:
    return envelope(await _service(request).balance(principal.user_id))


@api(
    Operation(
        "Spend the caller's credits", _CREDITS, schemas.Consume, None, schemas.Consumed, "write", errors=(402, 404)
    )
)
async def consume(request: Request, principal: Principal) -> Response:
    body = await json_body(request, schemas.Consume, empty_ok=True)
    return envelope(await _service(request).consume(principal.user_id, body))


@api(
    Operation("The caller's credit history", _CREDITS, query=schemas.TransactionQuery, response=schemas.TransactionPage)
)
async def transactions(request: Request, principal: Principal) -> Response:
    query = query_params(request, schemas.TransactionQuery)
    return envelope(await _service(request).transactions(principal.user_id, query))


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


@api(Operation("The caller's usage records", _USAGE, query=schemas.UsageQuery, response=schemas.UsagePage))
async def list_usage(request: Request, principal: Principal) -> Response:
    query = query_params(request, schemas.UsageQuery)
    return envelope(await _service(request).usage(principal.user_id, query))


@api(
    Operation(
        "The caller's usage by day, model, provider and event type",
        _USAGE,
        query=schemas.StatsQuery,
        response=schemas.UsageStats,
    )
)
async def usage_stats(request: Request, principal: Principal) -> Response:
    query = query_params(request, schemas.StatsQuery)
    return envelope(await _service(request).usage_stats(principal.user_id, query))


@api(Operation("List users", _ADMIN, query=schemas.Paging, response=schemas.UserList, scope="admin"))
async def admin_list_users(request: Request, principal: Principal) -> Response:
    query = query_params(request, schemas.Paging)
    users = await _service(request).list_users(query.limit, query.offset)
    return envelope(schemas.UserList(users=users, limit=query.limit, offset=query.offset))


@api(Operation("A user's account", _ADMIN, response=schemas.User, scope="admin", errors=(404,), path_params=_USER_PATH))
async def admin_get_user(request: Request, principal: Principal) -> Response:
    return envelope(await _service(request).get(_target(request)))


@api(
    Operation(
        "Add credits to a user",
        _ADMIN,
        schemas.Recharge,
        None,
        schemas.Recharged,
        "admin",
        errors=(404,),
        path_params=_USER_PATH,
    )
)
async def admin_recharge(request: Request, principal: Principal) -> Response:
    body = await json_body(request, schemas.Recharge, empty_ok=True)
    return envelope(await _service(request).recharge(_target(request), body, by=principal.user_id))


@api(
    Operation(
        "A user's credit history",
        _ADMIN,
        query=schemas.TransactionQuery,
        response=schemas.TransactionPage,
        scope="admin",
        errors=(404,),
        path_params=_USER_PATH,
    )
)
async def admin_transactions(request: Request, principal: Principal) -> Response:
    service, user_id = _service(request), _target(request)
    await service.get(user_id)
    return envelope(await service.transactions(user_id, query_params(request, schemas.TransactionQuery)))


@api(
    Operation(
        "A user's usage records",
        _ADMIN,
        query=schemas.UsageQuery,
        response=schemas.UsagePage,
        scope="admin",
        errors=(404,),
        path_params=_USER_PATH,
    )
)
async def admin_usage(request: Request, principal: Principal) -> Response:
    service, user_id = _service(request), _target(request)
    await service.get(user_id)
    return envelope(await service.usage(user_id, query_params(request, schemas.UsageQuery)))


ROUTES = [
    Route("/api/v1/users/ensure", ensure_user, methods=["POST"]),
    Route(ME, get_me, methods=["GET"]),
    Route(ME, update_me, methods=["PUT"]),
    Route(f"{ME}/credits/balance", balance, methods=["GET"]),
    Route(f"{ME}/credits/consume", consume, methods=["POST"]),
    Route(f"{ME}/credits/transactions", transactions, methods=["GET"]),
    Route(f"{ME}/usage", create_usage, methods=["POST"]),
    Route(f"{ME}/usage", list_usage, methods=["GET"]),
    Route(f"{ME}/usage/stats", usage_stats, methods=["GET"]),
    Route(ADMIN, admin_list_users, methods=["GET"]),
    Route(f"{ADMIN}/{{user_id}}", admin_get_user, methods=["GET"]),
    Route(f"{ADMIN}/{{user_id}}/credits/recharge", admin_recharge, methods=["POST"]),
    Route(f"{ADMIN}/{{user_id}}/credits/transactions", admin_transactions, methods=["GET"]),
    Route(f"{ADMIN}/{{user_id}}/usage", admin_usage, methods=["GET"]),
]
