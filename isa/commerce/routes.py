"""HTTP routes: Shopify's order webhook (signed, no principal) and the caller's own orders."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from isa.auth import require_principal
from isa.commerce import schemas
from isa.commerce.orders import OrderService
from isa.core.openapi import ATTRIBUTE, Operation

_TAGS = ("commerce",)
Endpoint = Callable[[Request], Awaitable[Response]]


def _described(operation: Operation) -> Callable[[Endpoint], Endpoint]:
    def decorate(endpoint: Endpoint) -> Endpoint:
        setattr(endpoint, ATTRIBUTE, operation)
        return endpoint

    return decorate


def _orders(request: Request) -> OrderService:
    service: OrderService = request.app.state.isa.get("commerce.orders", OrderService)
    return service


@_described(
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


@_described(Operation("The caller's orders, newest first", _TAGS, response=schemas.OrderList, envelope=False))
async def my_orders(request: Request) -> Response:
    principal = await require_principal(request, "read")
    return JSONResponse(await _orders(request).orders(principal.user_id))


@_described(
    Operation(
        "One of the caller's orders by order number or id",
        _TAGS,
        response=schemas.OrderList,
        envelope=False,
        errors=(404,),
        path_params={"ref": {"type": "string"}},
    )
)
async def my_order(request: Request) -> Response:
    principal = await require_principal(request, "read")
    return JSONResponse(await _orders(request).orders(principal.user_id, request.path_params["ref"]))


ROUTES = [
    Route("/api/v1/commerce/webhooks/shopify", shopify_webhook, methods=["POST"]),
    Route("/api/v1/commerce/orders", my_orders, methods=["GET"]),
    Route("/api/v1/commerce/orders/{ref}", my_order, methods=["GET"]),
]
