"""Crawl throughput: the pooled browser (one process, a context per call) vs a fresh browser per call.

Same local pages (the loopback page server of the web tests), same run, same concurrency. The per-call baseline
is what the original did: launch chromium, render, close it. Both sides go through the same egress proxy.

    .venv/bin/python tests/bench/bench_crawl.py --calls 24 --concurrency 4
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from playwright.async_api import async_playwright

from isa.web.browser import CHROMIUM_ARGS
from isa.web.extract import extract
from isa.web.service import WebService
from tests.support.mcp_servers import serve_asgi
from tests.support.procs import free_port
from tests.support.web_pages import PageServer, _pages, web_settings


async def pooled(service: WebService, urls: list[str], concurrency: int) -> list[float]:
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []

    async def one(i: int, url: str) -> None:
        async with gate:
            started = time.perf_counter()
            rendered = await service.render(f"user{i % 3}", url)
            assert "Rendered by script." in extract(rendered.html, url).text
            latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(one(i, u) for i, u in enumerate(urls)))
    return latencies


async def per_call(service: WebService, urls: list[str], concurrency: int) -> list[float]:
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    proxy = service.pool.proxy
    if proxy.port == 0:
        await proxy.start()
    args = [*CHROMIUM_ARGS, f"--proxy-server={proxy.url}", "--proxy-bypass-list=<-loopback>"]
    async with async_playwright() as pw:

        async def one(url: str) -> None:
            async with gate:
                started = time.perf_counter()
                browser = await pw.chromium.launch(executable_path=service.settings.chromium_path, args=args)
                try:
                    page = await browser.new_page()
                    await page.goto(url, wait_until="load")
                    assert "Rendered by script." in extract(await page.content(), url).text
                finally:
                    await browser.close()
                latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(one(u) for u in urls))
    return latencies


def _row(name: str, calls: int, wall: float, latencies: list[float]) -> str:
    lat = sorted(latencies)
    p95 = lat[min(len(lat) - 1, int(0.95 * len(lat)))]
    p50 = statistics.median(lat)
    return f"| {name} | {calls} | {wall:.2f} | {calls / wall:.2f} | {p50 * 1000:.0f} | {p95 * 1000:.0f} |"


async def main(calls: int, concurrency: int) -> None:
    hits: list[str] = []
    port = free_port()
    with serve_asgi(_pages(hits), port=port) as url:
        page = PageServer(url=url, port=port, hits=hits)
        service = WebService(web_settings(page, max_contexts=concurrency, per_user_contexts=concurrency))
        urls = [f"{url}/js?n={i}" for i in range(calls)]
        try:
            await service.render("warm", urls[0])  # the pool's one-time launch is not part of its throughput
            started = time.perf_counter()
            pool_lat = await pooled(service, urls, concurrency)
            pool_wall = time.perf_counter() - started
            started = time.perf_counter()
            base_lat = await per_call(service, urls, concurrency)
            base_wall = time.perf_counter() - started
        finally:
            await service.close()
    print(f"{calls} JS-rendered crawls of local pages, concurrency {concurrency}")
    print("| mode | calls | wall s | crawls/s | p50 ms | p95 ms |")
    print("|---|---|---|---|---|---|")
    print(_row("pooled (1 browser, context per call)", calls, pool_wall, pool_lat))
    print(_row("browser per call (baseline)", calls, base_wall, base_lat))
    print(f"throughput ratio pooled/per-call: {(calls / pool_wall) / (calls / base_wall):.1f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=24)
    parser.add_argument("--concurrency", type=int, default=4)
    ns = parser.parse_args()
    asyncio.run(main(ns.calls, ns.concurrency))
