"""The `[commerce]` settings section: one Shopify store (Storefront API) and the order webhook."""

from __future__ import annotations

from pydantic import Field

from isa.core.settings import Section


class ShopifySettings(Section):
    # "shop.myshopify.com" (or the store's custom domain); empty: every commerce tool answers not_configured.
    store_domain: str = ""
    # Secrets come from the environment only (ISA_COMMERCE__SHOPIFY__STOREFRONT_TOKEN, ...__WEBHOOK_SECRET).
    storefront_token: str = ""
    webhook_secret: str = ""
    # A quarterly Storefront API version; Shopify supports each for 12 months and then falls forward.
    api_version: str = Field("2026-04", pattern=r"^(\d{4}-(01|04|07|10)|unstable)$")
    # Empty: https://{store_domain}. Tests point this at a fake on 127.0.0.1.
    api_base: str = ""
    timeout_seconds: float = Field(10.0, gt=0, le=120)
    # Throttled answers (HTTP 429/430, THROTTLED) are retried this often, each wait at most max_retry_wait_seconds.
    max_retries: int = Field(3, ge=0, le=10)
    max_retry_wait_seconds: float = Field(5.0, ge=0, le=60)
    page_size: int = Field(10, ge=1, le=50)
    # inventory/stock_alerts: a variant with fewer units than this (when the store shares counts) is "low".
    low_stock_threshold: int = Field(5, ge=0)

    @property
    def configured(self) -> bool:
        return bool(self.store_domain.strip() and self.storefront_token)

    @property
    def endpoint(self) -> str:
        base = (self.api_base or f"https://{self.store_domain.strip()}").rstrip("/")
        return f"{base}/api/{self.api_version}/graphql.json"


class CommerceSettings(Section):
    shopify: ShopifySettings = ShopifySettings()
