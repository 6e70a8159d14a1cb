"""A5 items 37-42: SSRF through the web tools. Each target is a local listener that must see zero connections.

The page server under test is on loopback too, opened by the allow list for its own host:port only.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest
from playwright.async_api import Page

from isa.web.service import WebError, WebService
from tests.support.procs import wait_for
from tests.support.web_pages import Listener, PageServer, listener, make_service, page_server, stub_resolver

__all__ = ["listener", "page_server"]


def _forms(port: int) -> list[str]:
    return [
        "http://169.254.169.254/latest/meta-data/",
        f"http://127.0.0.1:{port}/",
        f"http://localhost:{port}/",
        f"http://[::1]:{port}/",
        f"http://0.0.0.0:{port}/",
        f"http://2130706433:{port}/",
        f"http://0177.0.0.1:{port}/",
        f"http://0x7f.0.0.1:{port}/",
        f"http://127.1:{port}/",
        f"http://[::ffff:127.0.0.1]:{port}/",
        f"http://x.localhost:{port}/",
        f"http://evil.test:{port}/",
        f"http://metadata.test:{port}/",
    ]


RESOLVER_TABLE = {"evil.test": [["127.0.0.1"]], "metadata.test": [["169.254.169.254"]]}


@pytest.mark.anyio
async def test_a5_37_internal_addresses_in_every_encoding_are_blocked_and_the_listener_sees_nothing(
    page_server: PageServer, listener: Listener
) -> None:
    service = make_service(page_server, resolver=stub_resolver(RESOLVER_TABLE))
    try:
        for url in _forms(listener.port):
            with pytest.raises(WebError) as crawl:
                await service.crawl("alice", url)
            assert crawl.value.code == "blocked", url
            assert "blocked: blocked" not in f"{crawl.value.code}: {crawl.value.message}"  # as the tools word it
            with pytest.raises(WebError) as shot:
                await service.screenshot("alice", url)
            assert shot.value.code == "blocked", url
        assert service.pool.opened == 0  # refused before any browser context existed
    finally:
        await service.close()
    assert listener.connections == 0


@pytest.mark.anyio
async def test_a5_38_a_redirect_to_loopback_is_blocked_at_the_hop(page_server: PageServer, listener: Listener) -> None:
    service = make_service(page_server)
    hop = f"{page_server.url}/redirect?to=http://127.0.0.1:{listener.port}/secret"
    chain = f"{page_server.url}/redirect?to={page_server.url}/redirect%3Fto%3Dhttp://localhost:{listener.port}/"
    try:
        for url in (hop, chain):
            with pytest.raises(WebError) as crawl:
                await service.crawl("alice", url)
            assert crawl.value.code == "blocked"
            with pytest.raises(WebError) as shot:
                await service.screenshot("alice", url)
            assert shot.value.code == "blocked", shot.value.message
        assert service.pool.proxy.blocked >= 2  # the browser's hops were refused by the pinning proxy
    finally:
        await service.close()
    assert "/redirect" in page_server.hits  # the allowed page itself was served
    assert listener.connections == 0


class _PathListener:
    """A loopback HTTP listener that records the request line of every connection (the control's target)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.requests: list[str] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    line = conn.recv(4096).split(b"\r\n", 1)[0].decode(errors="replace")
                    self.requests.append(" ".join(line.split(" ")[:2]))  # "GET /img"
                    conn.sendall(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.close()


async def _run_subresources_page(service: WebService, page_server: PageServer, port: int) -> None:
    async def settle(page: Page) -> str:
        await page.wait_for_function("document.title === 'done'")
        return page.url

    try:
        await service.browse("alice", f"{page_server.url}/subresources?port={port}", settle)
    finally:
        await service.close()


@pytest.mark.anyio
async def test_a5_39_subresources_fetch_beacon_websocket_and_service_worker_never_reach_loopback(
    page_server: PageServer, listener: Listener
) -> None:
    before = page_server.hits.count("/done")
    await _run_subresources_page(make_service(page_server), page_server, listener.port)
    assert page_server.hits.count("/done") == before + 1  # the page ran all its attempts to the end
    assert "/sw.js" not in page_server.hits  # service workers are blocked
    assert listener.connections == 0

    # Control: the same page aimed at a listener the allow list opens does reach it with each kind of request
    # (so the zero above is the guard's doing, not a page whose requests never leave the browser).
    allowed = _PathListener()
    opened = [f"127.0.0.1:{page_server.port}", f"127.0.0.1:{allowed.port}"]
    try:
        await _run_subresources_page(make_service(page_server, allow_hosts=opened), page_server, allowed.port)
        expected = {"GET /img", "GET /frame", "GET /fetch", "GET /ws", "POST /beacon"}
        wait_for(lambda: expected <= set(allowed.requests), timeout=10)  # a beacon may land after the page settles
    finally:
        allowed.close()
    assert page_server.hits.count("/done") == before + 2


@pytest.mark.anyio
async def test_a5_40_dns_rebinding_connects_only_to_the_pinned_address(page_server: PageServer) -> None:
    # The first answer is the vetted page server; every later answer is a listener on another loopback address.
    rebound = Listener("127.0.0.2", page_server.port)
    resolver = stub_resolver({"rebind.test": [["127.0.0.1"], ["127.0.0.2"]]})
    service = make_service(page_server, resolver=resolver)
    try:
        out = await service.crawl("alice", f"http://rebind.test:{page_server.port}/second")
        assert out["title"] == "Second"  # served by the pinned address
        assert resolver.calls["rebind.test"] == 1
        with pytest.raises(WebError) as shot:  # the browser never resolves: the proxy's own lookup now says no
            await service.screenshot("alice", f"http://rebind.test:{page_server.port}/second")
        assert shot.value.code == "blocked"
    finally:
        await service.close()
        rebound.close()
    assert rebound.connections == 0


@pytest.mark.anyio
@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "data:text/html,<script>fetch('http://127.0.0.1/')</script>",
        "javascript:alert(1)",
        "chrome://version",
        "view-source:http://127.0.0.1/",
        "ftp://127.0.0.1/",
    ],
)
async def test_a5_41_other_schemes_are_rejected_before_the_browser_sees_them(page_server: PageServer, url: str) -> None:
    service = make_service(page_server)
    try:
        for call in (service.crawl, service.screenshot):
            with pytest.raises(WebError) as exc:
                await call("alice", url)
            assert exc.value.code == "blocked" and "only http and https" in exc.value.message
        assert service.pool.launches == 0
    finally:
        await service.close()


@pytest.mark.anyio
async def test_a5_42_loops_endless_huge_and_dripping_pages_are_bounded(page_server: PageServer) -> None:
    service = make_service(page_server, fetch_timeout_seconds=2, page_timeout_seconds=3, max_bytes=1_000_000)
    cases = {
        "/loop": "more than 5 redirects",
        "/endless": "larger than 1000000 bytes",
        "/big": "larger than 1000000 bytes",
        "/drip": "longer than 2 s",
    }
    try:
        for path, message in cases.items():
            started = time.monotonic()
            with pytest.raises(WebError) as exc:
                await service.crawl("alice", page_server.url + path)
            assert exc.value.code == "fetch_failed" and message in exc.value.message, path
            assert time.monotonic() - started < 2.5, path
        started = time.monotonic()
        with pytest.raises(WebError) as exc:
            await service.screenshot("alice", page_server.url + "/hang")
        assert exc.value.code == "timeout"
        assert time.monotonic() - started < 3 + 2
        wait_for(lambda: service.pool.active == 0, timeout=5)
        assert service.pool.closed == service.pool.opened == 1
    finally:
        await service.close()
