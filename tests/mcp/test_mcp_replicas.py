"""Two mcp replicas on one database behind round-robin: stateless mode never says "session not found"."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import httpx2
import pytest
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client

from isa.core.settings import Settings
from tests.support.auth import create_key
from tests.support.mcp_servers import SAMPLE_DOMAIN, serve_isa, with_domains

pytestmark = pytest.mark.anyio


class RoundRobin(httpx2.AsyncBaseTransport):
    """Send each request to the next replica in turn, as a load balancer without stickiness does."""

    def __init__(self, ports: list[int]) -> None:
        self.inner = httpx2.AsyncHTTPTransport()
        self.ports = itertools.cycle(ports)
        self.seen: list[int] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        port = next(self.ports)
        self.seen.append(port)
        request.url = request.url.copy_with(port=port)
        request.headers["host"] = f"127.0.0.1:{port}"
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@asynccontextmanager
async def balanced_client(urls: list[str], key: str) -> AsyncIterator[tuple[Client, RoundRobin]]:
    balancer = RoundRobin([int(u.rsplit(":", 1)[1]) for u in urls])
    http = httpx2.AsyncClient(
        transport=balancer, headers={"Authorization": f"Bearer {key}"}, timeout=httpx2.Timeout(10, read=30)
    )
    async with http, Client(streamable_http_client(urls[0] + "/mcp", http_client=http), mode="legacy") as client:
        yield client, balancer


@pytest.fixture(scope="module")
def key(settings: Settings, db_url: str) -> str:
    return create_key(db_url, settings, "carol", "write")


@pytest.fixture(scope="module")
def stateless_pair(settings: Settings, db_url: str) -> Iterator[list[str]]:
    with (
        with_domains(SAMPLE_DOMAIN),
        serve_isa(settings, db_url, stateless=True) as a,
        serve_isa(settings, db_url, stateless=True) as b,
    ):
        yield [a, b]


async def test_stateless_replicas_behind_round_robin_serve_every_request(stateless_pair: list[str], key: str) -> None:
    async with balanced_client(stateless_pair, key) as (client, balancer):
        tools = await client.list_tools()
        results = [await client.call_tool("whoami", {}) for _ in range(6)]
    assert any(t.name == "whoami" for t in tools.tools)
    assert all(not r.is_error for r in results)
    assert {r.structured_content["data"]["user_id"] for r in results if r.structured_content} == {"carol"}
    assert len(set(balancer.seen)) == 2  # both replicas really served


async def test_the_per_user_tool_limit_holds_across_replicas(stateless_pair: list[str], key: str) -> None:
    async with balanced_client(stateless_pair, key) as (client, _):
        results = [await client.call_tool("limited_echo", {"text": str(i)}) for i in range(4)]
    assert [r.is_error for r in results] == [False, False, False, True]
    assert results[3].structured_content is not None
    assert results[3].structured_content["data"]["code"] == "rate_limited"


async def test_stateful_replicas_behind_round_robin_lose_the_session_which_is_why_stateless_exists(
    settings: Settings, db_url: str, key: str
) -> None:
    with serve_isa(settings, db_url) as a, serve_isa(settings, db_url) as b, pytest.raises(Exception) as failure:
        async with balanced_client([a, b], key) as (client, _):
            for _ in range(3):
                await client.call_tool("get_current_time", {})
    assert "Session not found" in repr(failure.value)
