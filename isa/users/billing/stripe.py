"""Stripe's wire protocol, the parts we use: form-encoded API calls and webhook signatures."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from isa.core.errors import ApiError
from isa.core.logging import get_logger
from isa.users.settings import StripeSettings

log = get_logger(__name__)

SIGNATURE_SCHEME = "v1"


class SignatureError(Exception):
    """The Stripe-Signature header does not prove the payload came from Stripe (recently)."""


def form_encode(params: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Stripe's form encoding: nested objects as a[b]=, lists as a[0]=, booleans as true/false."""
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        name = f"{prefix}[{key}]" if prefix else str(key)
        pairs.extend(_encode_value(name, value))
    return pairs


def _encode_value(name: str, value: Any) -> list[tuple[str, str]]:
    if value is None:
        return []
    if isinstance(value, Mapping):
        return form_encode(value, name)
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        out: list[tuple[str, str]] = []
        for index, item in enumerate(value):
            out.extend(_encode_value(f"{name}[{index}]", item))
        return out
    if isinstance(value, bool):
        return [(name, "true" if value else "false")]
    return [(name, str(value))]


def compute_signature(payload: bytes, secret: str, timestamp: int) -> str:
    """HMAC-SHA256 over "{timestamp}.{payload}" with the endpoint's signing secret, hex encoded."""
    signed = f"{timestamp}.".encode() + payload
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def verify_signature(payload: bytes, header: str | None, secret: str, tolerance: int, now: float | None = None) -> int:
    """Check a Stripe-Signature header the way Stripe's libraries do; return its timestamp.

    The header is `t=<unix>,v1=<hex>[,v1=<hex>...][,v0=...]`: any v1 may match (Stripe sends two
    while a secret is being rolled); other schemes are ignored; a timestamp older than `tolerance`
    seconds is refused so a captured delivery can't be replayed later.
    """
    if not header:
        raise SignatureError("missing Stripe-Signature header")
    timestamp: int | None = None
    signatures: list[str] = []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise SignatureError("unreadable timestamp") from None
        elif key == SIGNATURE_SCHEME:
            signatures.append(value)
    if timestamp is None:
        raise SignatureError("no timestamp in Stripe-Signature")
    if not signatures:
        raise SignatureError("no v1 signature in Stripe-Signature")
    expected = compute_signature(payload, secret, timestamp)
    if not any(hmac.compare_digest(expected, candidate) for candidate in signatures):
        raise SignatureError("no signature matches the payload")
    current = time.time() if now is None else now
    if tolerance > 0 and timestamp < current - tolerance:
        raise SignatureError("timestamp outside the tolerance")
    return timestamp


class StripeClient:
    """The few Stripe API calls we make, over plain HTTPS with explicit timeouts and no retries."""

    def __init__(self, settings: StripeSettings) -> None:
        self.settings = settings

    @property
    def configured(self) -> bool:
        return bool(self.settings.secret_key)

    async def post(self, path: str, params: Mapping[str, Any]) -> dict[str, Any]:
        if not self.configured:
            raise ApiError(503, "billing_not_configured", "payments are not configured on this deployment")
        headers = {"Authorization": f"Bearer {self.settings.secret_key}"}
        if self.settings.api_version:
            headers["Stripe-Version"] = self.settings.api_version
        url = self.settings.api_base.rstrip("/") + path
        try:
            async with httpx.AsyncClient(timeout=self.settings.timeout_seconds, follow_redirects=False) as client:
                response = await client.post(url, data=dict(form_encode(params)), headers=headers)
        except httpx.TimeoutException:
            log.warning("stripe_timeout", path=path)
            raise ApiError(504, "upstream_timeout", "the payment provider did not answer in time") from None
        except httpx.HTTPError as exc:
            log.warning("stripe_unreachable", path=path, error=type(exc).__name__)
            raise ApiError(502, "upstream_error", "the payment provider could not be reached") from None
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        if response.status_code >= 400 or not isinstance(body, dict):
            error = body.get("error", {}) if isinstance(body, dict) else {}
            log.warning(
                "stripe_error",
                path=path,
                status=response.status_code,
                type=error.get("type") if isinstance(error, dict) else None,
                code=error.get("code") if isinstance(error, dict) else None,
            )
            raise ApiError(502, "upstream_error", "the payment provider refused the request")
        return body
