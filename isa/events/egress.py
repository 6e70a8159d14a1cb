"""Outbound HTTP of monitors and callbacks, through the platform's SSRF guard (`isa.core.egress`).

Every user-supplied URL is vetted and its address pinned: monitor fetches go through `GuardedClient` (redirects
re-vetted, size and time bounded); callbacks are POSTed to the vetted address with the original Host header,
without following redirects. `events.egress_allow_cidrs` / `egress_allow_hosts` open chosen internal targets.
"""

from __future__ import annotations

import httpx

from isa.core.egress import EgressBlocked, EgressFailed, EgressPolicy, GuardedClient
from isa.events.settings import EventsSettings

__all__ = ["EgressBlocked", "EgressFailed", "fetch_text", "guarded_post", "policy"]


def _words(text: str) -> list[str]:
    return [w for w in text.replace(",", " ").split() if w]


def policy(settings: EventsSettings) -> EgressPolicy:
    return EgressPolicy(
        allow_hosts=_words(settings.egress_allow_hosts), allow_cidrs=_words(settings.egress_allow_cidrs)
    )


async def fetch_text(url: str, settings: EventsSettings) -> str:
    """GET a monitored page through the guard; a non-2xx answer is an error of this run."""
    client = GuardedClient(
        policy(settings),
        max_bytes=settings.fetch_max_bytes,
        timeout=settings.fetch_timeout_seconds,
        user_agent="isa-events/1.0",
    )
    result = await client.fetch(url)
    if not 200 <= result.status < 300:
        raise EgressFailed(f"{url} answered {result.status}")
    return result.content.decode("utf-8", errors="replace")


async def guarded_post(url: str, body: bytes, headers: dict[str, str], settings: EventsSettings) -> int:
    """POST `body` to a vetted, pinned address (no redirects); returns the status, raises on non-2xx."""
    target = await policy(settings).vet(url)
    limits = httpx.Timeout(settings.callback_timeout_seconds)
    async with httpx.AsyncClient(follow_redirects=False, trust_env=False, timeout=limits) as client:
        request = client.build_request(
            "POST",
            target.pinned_url,
            content=body,
            headers={"Host": target.host_header, "User-Agent": "isa-events/1.0", **headers},
            extensions={"sni_hostname": target.host} if target.scheme == "https" else None,
        )
        response = await client.send(request)
    if not 200 <= response.status_code < 300:
        raise EgressFailed(f"callback answered {response.status_code}")
    return response.status_code
