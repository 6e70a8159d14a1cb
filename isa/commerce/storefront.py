"""A small client for Shopify's Storefront API: GraphQL over HTTP POST, throttling honoured, errors named.

One POST per operation to `{base}/api/{version}/graphql.json` with the `X-Shopify-Storefront-Access-Token`
header. A throttled answer (HTTP 429/430, or a GraphQL error with code THROTTLED) was not executed, so it is
safe to send again, mutations included: we wait what the answer asks (Retry-After, or the query cost against
the bucket's restore rate) when that fits in `max_retry_wait_seconds`, at most `max_retries` times. Anything
else fails at once with a stable code; the token never appears in an error or a log line.
"""

from __future__ import annotations

from typing import Any

import anyio
import httpx

from isa.commerce.settings import ShopifySettings
from isa.core.errors import CodedError
from isa.core.logging import get_logger

log = get_logger(__name__)
THROTTLED_STATUSES = (429, 430)  # 430: Shopify's bot protection ("Security Rejection") asks for the same patience


class StorefrontError(CodedError):
    """The store failed: store_timeout, store_throttled, store_error..."""


class Storefront:
    def __init__(self, settings: ShopifySettings, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.settings = settings
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(settings.timeout_seconds),
            trust_env=False,
            transport=transport,
            headers={
                "Content-Type": "application/json",
                "Accept": "application/json",
                "X-Shopify-Storefront-Access-Token": settings.storefront_token,
                "User-Agent": "isa-commerce",
            },
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def execute(
        self, document: str, variables: dict[str, Any] | None = None, *, tolerate: frozenset[str] = frozenset()
    ) -> dict[str, Any]:
        """The `data` of one operation. Errors on fields named in `tolerate` (e.g. inventory counts the token
        may not read) leave those fields null instead of failing the call."""
        payload = {"query": document, "variables": variables or {}}
        attempt = 0
        while True:
            body, wait = await self._post(payload)
            if wait is None:
                return _data(body, tolerate)
            if attempt >= self.settings.max_retries or wait > self.settings.max_retry_wait_seconds:
                log.warning("storefront_throttled", attempts=attempt + 1, wait=round(wait, 3))
                raise StorefrontError(
                    "store_throttled", "the store is rate limiting requests; try again shortly", retry_after=wait
                )
            attempt += 1
            log.info("storefront_retry", attempt=attempt, wait=round(wait, 3))
            await anyio.sleep(wait)

    async def _post(self, payload: dict[str, Any]) -> tuple[dict[str, Any], float | None]:
        """The answer's JSON, and how long to wait before sending again when it was throttled (else None)."""
        try:
            # httpx bounds each phase; this bounds the whole exchange (a store trickling bytes included).
            with anyio.fail_after(self.settings.timeout_seconds):
                response = await self._client.post(self.settings.endpoint, json=payload)
        except (TimeoutError, httpx.TimeoutException):
            raise StorefrontError(
                "store_timeout", f"the store did not answer within {self.settings.timeout_seconds:g}s"
            ) from None
        except httpx.HTTPError as exc:
            raise StorefrontError("store_unreachable", f"the store is unreachable ({type(exc).__name__})") from None
        status = response.status_code
        if status in THROTTLED_STATUSES:
            return {}, _retry_after(response.headers.get("retry-after"), self.settings.max_retry_wait_seconds)
        if status in (401, 403):
            raise StorefrontError("store_auth_failed", "the store refused the configured Storefront access token")
        if status == 404:
            raise StorefrontError("store_not_found", "no Storefront API at the configured store domain and version")
        if status != 200:
            raise StorefrontError("store_unavailable", f"the store answered HTTP {status}")
        try:
            body = response.json()
        except ValueError:
            raise StorefrontError("store_error", "the store's answer is not JSON") from None
        if not isinstance(body, dict):
            raise StorefrontError("store_error", "the store's answer is not a GraphQL response")
        errors = body.get("errors")
        if isinstance(errors, list) and any(_code(e) == "THROTTLED" for e in errors):
            return body, _cost_wait(body)
        return body, None


def _code(error: Any) -> str:
    extensions = error.get("extensions") if isinstance(error, dict) else None
    return str(extensions.get("code", "")) if isinstance(extensions, dict) else ""


def _data(body: dict[str, Any], tolerate: frozenset[str]) -> dict[str, Any]:
    errors = body.get("errors")
    if isinstance(errors, str):  # Shopify's older top-level shape: {"errors": "message"}
        errors = [{"message": errors}]
    fatal = [
        e
        for e in errors or []
        if not (isinstance(e, dict) and isinstance(e.get("path"), list) and e["path"] and e["path"][-1] in tolerate)
    ]
    data = body.get("data")
    if fatal or not isinstance(data, dict):
        messages = [str(e.get("message", "")) if isinstance(e, dict) else str(e) for e in fatal[:3]]
        raise StorefrontError("store_error", "the store rejected the request: " + ("; ".join(messages) or "no data"))
    return data


def _retry_after(header: str | None, cap: float) -> float:
    """Seconds from a Retry-After header; without one, a short pause (Shopify suggests about a second)."""
    try:
        return max(float(header), 0.0) if header else min(1.0, cap)
    except ValueError:
        return min(1.0, cap)


def _cost_wait(body: dict[str, Any]) -> float:
    """How long until the bucket holds the requested cost: (requested - available) / restore rate."""
    cost = (body.get("extensions") or {}).get("cost") if isinstance(body.get("extensions"), dict) else None
    if not isinstance(cost, dict):
        return 1.0
    status = cost.get("throttleStatus") or {}
    try:
        requested = float(cost.get("requestedQueryCost") or 0)
        available = float(status.get("currentlyAvailable") or 0)
        rate = float(status.get("restoreRate") or 0)
    except (TypeError, ValueError):
        return 1.0
    if rate <= 0:
        return 1.0
    return max(requested - available, 0.0) / rate
