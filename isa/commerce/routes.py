"""HTTP routes: Shopify's order webhook (signed, no principal) and the caller's own orders."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from isa.auth import require_principal
from isa.auth.principal import Principal
from isa.commerce import schemas
from isa.commerce.orders import OrderService
from isa.core.http import api, route_table
from isa.core.openapi import Operation, described

_TAGS = ("commerce",)
Endpoint = Callable[[Request], Awaitable[Response]]


def _orders(request: Request) -> OrderService:
    service: OrderService = request.app.state.isa.get("commerce.orders", OrderService)
    return service


@described(
    Operation(
        "Shopify order webhook (authenticated by the X-Shopify-Hmac-Sha256 header)",
        _TAGS,
        response=schemas.WebhookResult,
        scope=None,
        envelope=False,
        errors=(400, 401, 503),
        headers={"X-Shopify-Hmac-Sha256": {"type": "string"}, "X-Shopify-Topic": {"type": "string"}},
        raw_body=True,
    )
)
async def shopify_webhook(request: Request) -> Response:
    payload = await request.body()
    result = await _orders(request).handle_webhook(payload, {k.lower(): v for k, v in request.headers.items()})
    return JSONResponse(result)


@api(
    Operation("The caller's orders, newest first", _TAGS, response=schemas.OrderList, envelope=False), require_principal
)
async def my_orders(request: Request, principal: Principal) -> Response:
    return JSONResponse(await _orders(request).orders(principal.user_id))


@api(
    Operation(
        "One of the caller's orders by order number or id",
        _TAGS,
        response=schemas.OrderList,
        envelope=False,
        errors=(404,),
        path_params={"ref": {"type": "string"}},
    ),
    require_principal,
)
async def my_order(request: Request, principal: Principal) -> Response:
    return JSONResponse(await _orders(request).orders(principal.user_id, request.path_params["ref"]))


ROUTES = route_table(
    "",
    {
        "POST /api/v1/commerce/webhooks/shopify": shopify_webhook,
        "GET /api/v1/commerce/orders": my_orders,
        "GET /api/v1/commerce/orders/{ref}": my_order,
    },
)
