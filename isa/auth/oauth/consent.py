"""The sign-in and consent page: server-rendered HTML, no script, CSRF double-submit, never framed.

The validated authorization request travels in the form as a signed, expiring blob (HMAC with a key derived
from auth.token_secret), so no table holds half-finished requests and a tampered one is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from html import escape
from typing import Any
from urllib.parse import urlsplit

from mcp.server.auth.provider import AuthorizationParams
from starlette.requests import Request
from starlette.responses import HTMLResponse

CSRF_COOKIE = "isa_oauth_csrf"
CONSENT_PATH = "/oauth/consent"

SCOPE_TEXT = {
    "read": "read your data and call read-only tools",
    "write": "act as you: call tools that change things, spend your credits",
    "admin": "administer this deployment (users, keys, catalog)",
}

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem;color:#222}"
    "h1{font-size:1.3rem}code{background:#f3f3f3;padding:0 .2rem;word-break:break-all}"
    ".warn{color:#8a4b00}.err{color:#b00020}label{display:block;margin:1rem 0 .3rem}"
    "input[type=password]{width:100%;padding:.4rem}button{margin:1rem .5rem 0 0;padding:.4rem 1rem}"
)
_STYLE_HASH = base64.b64encode(hashlib.sha256(_STYLE.encode()).digest()).decode()


def _signing_key(token_secret: str) -> bytes:
    return hmac.new(token_secret.encode(), b"isa-oauth-consent-v1", hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def seal(token_secret: str, client_id: str, params: AuthorizationParams, resource: str, seconds: int) -> str:
    body = {
        "c": client_id,
        "p": params.model_dump(mode="json"),
        "r": resource,
        "exp": int(time.time()) + seconds,
    }
    payload = _b64(json.dumps(body, separators=(",", ":")).encode())
    mac = _b64(hmac.new(_signing_key(token_secret), payload.encode(), hashlib.sha256).digest())
    return f"{payload}.{mac}"


def unseal(token_secret: str, sealed: str) -> tuple[str, AuthorizationParams, str] | None:
    """(client_id, params, resource) of a sealed request; None when tampered with, malformed or expired."""
    payload, _, mac = sealed.partition(".")
    expected = _b64(hmac.new(_signing_key(token_secret), payload.encode(), hashlib.sha256).digest())
    if not mac or not hmac.compare_digest(mac, expected):
        return None
    try:
        body: dict[str, Any] = json.loads(_unb64(payload))
        if int(body["exp"]) < time.time():
            return None
        return str(body["c"]), AuthorizationParams.model_validate(body["p"]), str(body["r"])
    except (ValueError, KeyError, TypeError):
        return None


def csrf_matches(request: Request, submitted: str) -> bool:
    cookie = request.cookies.get(CSRF_COOKIE, "")
    return bool(cookie) and bool(submitted) and hmac.compare_digest(cookie.encode(), submitted.encode())


def headers(form_target: str | None = None) -> dict[str, str]:
    """No framing, no script, styles by hash; the form may post here and (after our redirect) to the client."""
    form_action = "'self'" + (f" {form_target}" if form_target else "")
    return {
        "Content-Security-Policy": (
            f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; form-action {form_action}; "
            "frame-ancestors 'none'; base-uri 'none'"
        ),
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        # Not no-referrer: with it, browsers send `Origin: null` on the form's POST and the Origin check would fail.
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-store",
    }


def _origin(uri: str) -> str:
    parts = urlsplit(uri)
    return f"{parts.scheme}://{parts.netloc}"


def _page(title: str, body: str) -> str:
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body>{body}</body></html>"
    )


def consent_page(
    *,
    client_id: str,
    client_name: str | None,
    redirect_uri: str,
    scopes: list[str],
    resource: str,
    sealed: str,
    request: Request,
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    """The sign-in form: who asks (as the client says), where the answer goes, what it may do."""
    csrf = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)
    name = escape(client_name or "An unnamed application")
    scope_items = "".join(f"<li><b>{escape(s)}</b>: {escape(SCOPE_TEXT.get(s, s))}</li>" for s in scopes)
    problem = f'<p class="err" role="alert">{escape(error)}</p>' if error else ""
    body = (
        f"<h1>{name} wants to use isa as you</h1>{problem}"
        f'<p class="warn">The name is chosen by the application itself. Continue only if you started this.</p>'
        f"<p>Client id: <code>{escape(client_id)}</code></p>"
        f"<p>After you answer, your browser goes to <code>{escape(redirect_uri)}</code></p>"
        f"<p>For: <code>{escape(resource)}</code></p>"
        f"<p>It asks to:</p><ul>{scope_items}</ul>"
        "<p>It gets at most what your API key may do.</p>"
        f'<form method="post" action="{CONSENT_PATH}">'
        f'<input type="hidden" name="request" value="{escape(sealed)}">'
        f'<input type="hidden" name="csrf" value="{escape(csrf)}">'
        '<label for="api_key">Sign in with your isa API key</label>'
        '<input type="password" id="api_key" name="api_key" autocomplete="off" required>'
        '<button type="submit" name="decision" value="allow">Allow</button>'
        '<button type="submit" name="decision" value="deny" formnovalidate>Deny</button>'
        "</form>"
    )
    response = HTMLResponse(_page("Sign in to isa", body), status_code=status, headers=headers(_origin(redirect_uri)))
    secure = request.url.scheme == "https"
    response.set_cookie(CSRF_COOKIE, csrf, max_age=3600, path="/oauth", httponly=True, samesite="strict", secure=secure)
    return response


def error_page(status: int, error: str, description: str) -> HTMLResponse:
    """An authorization request we won't send back to its redirect URI (unknown client or URI): shown here."""
    body = (
        "<h1>This sign-in request was refused</h1>"
        f"<p><code>{escape(error)}</code>: {escape(description)}</p>"
        "<p>Nothing was sent to the application. Close this page and try again from the application.</p>"
    )
    return HTMLResponse(_page("Sign-in refused", body), status_code=status, headers=headers())
