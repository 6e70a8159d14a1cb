"""Commerce: shopping through one Shopify store's Storefront API, the user's persistent cart, orders by webhook."""

from __future__ import annotations

from isa.commerce.insights import Insights
from isa.commerce.orders import OrderService
from isa.commerce.routes import ROUTES
from isa.commerce.service import CommerceError, CommerceService
from isa.commerce.settings import CommerceSettings
from isa.commerce.storefront import Storefront
from isa.core.builder import AppBuilder
from isa.core.logging import get_logger

log = get_logger(__name__)

__all__ = ["CommerceError", "CommerceService", "CommerceSettings", "register"]


def register(builder: AppBuilder) -> None:
    settings = builder.settings.section("commerce", CommerceSettings)
    shopify = settings.shopify
    storefront = Storefront(shopify) if shopify.configured else None
    if shopify.store_domain and not shopify.configured:
        log.warning(
            "commerce_not_configured", reason="store_domain is set but ISA_COMMERCE__SHOPIFY__STOREFRONT_TOKEN is not"
        )
    service = CommerceService(builder.state.db, settings, storefront)
    builder.provide("commerce", service)
    builder.provide("commerce.orders", OrderService(builder.state.db, settings.shopify))
    builder.provide("commerce.insights", Insights(service))
    builder.add_routes(*ROUTES)
    # Shopify's order payloads carry every line item with its tax and discount detail: allow big orders.
    builder.allow_body("/api/v1/commerce/webhooks/shopify", 5 * 1024 * 1024)
    builder.on_shutdown(service.close)
