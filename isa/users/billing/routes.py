"""HTTP routes for plans, subscriptions, Stripe Checkout and the Stripe webhook."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from isa.core.http import route_table
from isa.core.openapi import Operation
from isa.users.billing import schemas
from isa.users.billing.service import BillingService
from isa.users.http import envelope, handler, public_api

_TAGS = ("billing",)


def _service(request: Request) -> BillingService:
    service: BillingService = request.app.state.isa.get("billing", BillingService)
    return service


@public_api(
    Operation(
        "The plans on offer (credits and prices come from settings)", _TAGS, response=schemas.PlanList, scope=None
    )
)
async def plans(request: Request) -> Response:
    return envelope(_service(request).plans())


my_subscription = handler(
    Operation("The caller's plan and subscription", _TAGS, response=schemas.CurrentSubscription, errors=(404,)),
    lambda request, principal, _: _service(request).current(principal.user_id),
)
checkout = handler(
    Operation(
        "Start a Stripe Checkout for a paid plan",
        _TAGS,
        schemas.Checkout,
        None,
        schemas.CheckoutSession,
        "write",
        status=201,
        errors=(404, 502, 503, 504),
    ),
    lambda request, principal, body: _service(request).checkout(principal.user_id, body.plan),
)


@public_api(
    Operation(
        "Stripe webhook (authenticated by the Stripe-Signature header)",
        _TAGS,
        response=schemas.WebhookResult,
        scope=None,
        errors=(400, 503),
        headers={"Stripe-Signature": {"type": "string"}},
        raw_body=True,
    )
)
async def webhook(request: Request) -> Response:
    payload = await request.body()
    result = await _service(request).handle_webhook(payload, request.headers.get("stripe-signature"))
    return envelope(result)


ROUTES = route_table(
    "",
    {
        "GET /api/v1/subscriptions/plans": plans,
        "GET /api/v1/users/me/subscription": my_subscription,
        "POST /api/v1/billing/checkout": checkout,
        "POST /api/v1/billing/webhook": webhook,
        # The original service's webhook path, so an existing Stripe endpoint configuration keeps working.
        "POST /api/v1/webhooks/stripe": webhook,
    },
)
