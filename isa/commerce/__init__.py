"""Commerce: shopping through one Shopify store's Storefront API, the user's persistent cart, orders by webhook."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from isa.commerce.insights import Insights
from isa.commerce.orders import OrderService
from isa.commerce.routes import ROUTES
from isa.commerce.service import CommerceError, CommerceService
from isa.commerce.settings import CommerceSettings
from isa.commerce.storefront import Storefront
from isa.core.builder import AppBuilder

__all__ = ["CommerceError", "CommerceService", "CommerceSettings", "register"]


def register(builder: AppBuilder) -> None:
    settings = builder.settings.section("commerce", CommerceSettings)
    storefront = Storefront(settings.shopify) if settings.shopify.configured else None
    service = CommerceService(builder.state.db, settings, storefront)
    builder.provide("commerce", service)
    builder.provide("commerce.orders", OrderService(builder.state.db, settings.shopify))
    builder.provide("commerce.insights", Insights(service))
    builder.add_routes(*ROUTES)
    # Shopify's order payloads carry every line item with its tax and discount detail: allow big orders.
    builder.allow_body("/api/v1/webhooks/shopify", 5 * 1024 * 1024)

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        try:
            yield
        finally:
            await service.close()

    builder.add_lifespan(lifespan)
