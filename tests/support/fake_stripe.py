"""A local fake of the Stripe API and of Stripe's webhook deliveries, speaking Stripe's wire formats.

- `POST /v1/checkout/sessions` takes a form-encoded body with Stripe's bracket notation
  (`line_items[0][price_data][unit_amount]=2000`), demands the secret key as a Bearer token, answers
  Stripe-shaped JSON (or Stripe's error object), and records every request it got.
- `FakeStripe.pay(session_id)` plays what Stripe does after the buyer pays: it builds the events
  Stripe sends (subscription created, checkout completed, invoice paid) with metadata propagated the
  way Stripe propagates it, and `signed(event)` signs a payload the way Stripe signs deliveries.

The signing code here is written independently of isa's verifier on purpose.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.support.procs import free_port, wait_for


def stripe_signature(payload: bytes, secret: str, timestamp: int) -> str:
    """`Stripe-Signature` as Stripe sends it: t=<unix>,v1=hex(HMAC_SHA256(secret, "<t>.<payload>"))."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def parse_stripe_form(body: str) -> dict[str, Any]:
    """Undo Stripe's bracket notation into nested dicts and lists."""
    root: dict[str, Any] = {}
    for key, value in parse_qsl(body, keep_blank_values=True, strict_parsing=True):
        base, _, rest = key.partition("[")
        parts = [base] + ([p.rstrip("]") for p in ("[" + rest).split("[")[1:]] if rest else [])
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return _lists(root)


def _lists(node: Any) -> Any:
    if isinstance(node, dict):
        node = {k: _lists(v) for k, v in node.items()}
        if node and all(k.isdigit() for k in node):
            return [node[str(i)] for i in range(len(node))]
    return node


def _error(status: int, message: str, param: str | None = None, kind: str = "invalid_request_error") -> JSONResponse:
    return JSONResponse({"error": {"type": kind, "message": message, "param": param}}, status_code=status)


@dataclass
class FakeStripe:
    secret_key: str = field(default_factory=lambda: "sk_test_" + secrets.token_hex(12))
    webhook_secret: str = field(default_factory=lambda: "whsec_" + secrets.token_hex(16))
    port: int = field(default_factory=free_port)
    requests: list[dict[str, Any]] = field(default_factory=list)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    fail_with: int | None = None

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _create_session(self, request: Request) -> JSONResponse:
        raw = (await request.body()).decode()
        record = {"headers": dict(request.headers), "body": raw, "form": None}
        self.requests.append(record)
        if request.headers.get("authorization") != f"Bearer {self.secret_key}":
            return _error(401, "Invalid API Key provided", kind="invalid_request_error")
        if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return _error(400, "Stripe takes form-encoded bodies")
        if self.fail_with is not None:
            return _error(self.fail_with, "An error occurred with our connection to Stripe.", kind="api_error")
        form = parse_stripe_form(raw)
        record["form"] = form
        if form.get("mode") not in ("payment", "subscription", "setup"):
            return _error(400, "Missing required param: mode.", "mode")
        if not form.get("success_url"):
            return _error(400, "Missing required param: success_url.", "success_url")
        if not isinstance(form.get("line_items"), list):
            return _error(400, "Missing required param: line_items.", "line_items")
        session_id = "cs_test_" + secrets.token_hex(12)
        session = {
            "id": session_id,
            "object": "checkout.session",
            "mode": form["mode"],
            "status": "open",
            "payment_status": "unpaid",
            "client_reference_id": form.get("client_reference_id"),
            "customer": form.get("customer"),
            "customer_email": form.get("customer_email"),
            "metadata": form.get("metadata", {}),
            "subscription": None,
            "invoice": None,
            "url": f"{self.api_base}/c/pay/{session_id}",
            "livemode": False,
            "_form": form,
        }
        self.sessions[session_id] = session
        return JSONResponse({k: v for k, v in session.items() if not k.startswith("_")})

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v1/checkout/sessions", self._create_session, methods=["POST"])])

    # --- what Stripe sends after a payment -------------------------------------------------------

    def event(self, kind: str, obj: dict[str, Any], created: int | None = None) -> dict[str, Any]:
        return {
            "id": "evt_" + secrets.token_hex(12),
            "object": "event",
            "api_version": "2025-03-31.basil",
            "created": created or int(time.time()),
            "livemode": False,
            "type": kind,
            "data": {"object": obj},
        }

    def subscription(self, session_id: str, status: str = "active", **changes: Any) -> dict[str, Any]:
        session = self.sessions[session_id]
        form = session["_form"]
        item = form["line_items"][0]
        now = int(time.time())
        sub = {
            "id": session["subscription"] or "sub_" + secrets.token_hex(12),
            "object": "subscription",
            "customer": session["customer"] or "cus_" + secrets.token_hex(10),
            "status": status,
            # Stripe copies subscription_data[metadata] onto the subscription.
            "metadata": form.get("subscription_data", {}).get("metadata", {}),
            "cancel_at_period_end": False,
            "canceled_at": None,
            "items": {
                "object": "list",
                "data": [
                    {
                        "id": "si_" + secrets.token_hex(8),
                        "price": {"id": item.get("price") or "price_" + secrets.token_hex(8)},
                        "current_period_start": now,
                        "current_period_end": now + 30 * 86400,
                    }
                ],
            },
        }
        sub.update(changes)
        session["subscription"], session["customer"] = sub["id"], sub["customer"]
        return sub

    def invoice(self, sub: dict[str, Any], paid: bool = True) -> dict[str, Any]:
        return {
            "id": "in_" + secrets.token_hex(12),
            "object": "invoice",
            "customer": sub["customer"],
            "status": "paid" if paid else "open",
            "amount_paid": 2000 if paid else 0,
            "billing_reason": "subscription_create",
            # Basil-era invoices carry the subscription under parent.subscription_details.
            "parent": {
                "type": "subscription_details",
                "subscription_details": {"subscription": sub["id"], "metadata": sub["metadata"]},
            },
            "lines": {"object": "list", "data": [{"pricing": {"price_details": {"price": None}}}]},
        }

    def pay(self, session_id: str) -> list[dict[str, Any]]:
        """The events Stripe emits when the buyer completes Checkout for a subscription."""
        session = self.sessions[session_id]
        sub = self.subscription(session_id)
        invoice = self.invoice(sub)
        session.update(status="complete", payment_status="paid", invoice=invoice["id"])
        completed = {k: v for k, v in session.items() if not k.startswith("_")}
        return [
            self.event("customer.subscription.created", sub),
            self.event("checkout.session.completed", completed),
            self.event("invoice.payment_succeeded", invoice),
        ]

    def signed(self, event: dict[str, Any], timestamp: int | None = None) -> tuple[bytes, dict[str, str]]:
        """The body and headers of one delivery, signed with the endpoint secret."""
        payload = json.dumps(event, separators=(",", ":")).encode()
        t = int(time.time()) if timestamp is None else timestamp
        headers = {
            "Stripe-Signature": stripe_signature(payload, self.webhook_secret, t),
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        }
        return payload, headers


class RunningFake:
    """The fake served by uvicorn in a thread on 127.0.0.1."""

    def __init__(self, fake: FakeStripe) -> None:
        self.fake = fake
        config = uvicorn.Config(fake.app(), host="127.0.0.1", port=fake.port, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> FakeStripe:
        self.thread.start()
        wait_for(lambda: self.server.started, timeout=10)
        return self.fake

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
