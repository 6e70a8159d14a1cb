"""B2 item 5 and A5 item 45: the browser pool under a hanging page and 20 concurrent crawls from 3 users."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.async_api import Page

from isa.web.service import WebError
from tests.support.procs import wait_for
from tests.support.web_pages import PageServer, make_service, page_server

__all__ = ["page_server"]


def _descendants(pid: int) -> set[int]:
    """Every live process below `pid` (chromium's renderers, GPU and utility processes)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _chromium() -> tuple[set[int], set[int]]:
    """(every chromium process below this test process, the main ones: those whose parent is not chromium)."""
    procs = {p for p in _descendants(os.getpid()) if "chrom" in _comm(p)}
    mains = set()
    for pid in procs:
        try:
            parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if parent not in procs:
            mains.add(pid)
    return procs, mains


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def _until(condition: Callable[[], bool], timeout: float) -> None:
    """Poll `condition` without blocking the event loop (the proxy's sockets close on this loop)."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)


async def _title(page: Page) -> str:
    return await page.title()


@pytest.mark.anyio
async def test_20_concurrent_crawls_from_3_users_keep_the_bounds_and_leave_nothing_behind(
    page_server: PageServer,
) -> None:
    service = make_service(page_server, max_contexts=3, per_user_contexts=2, page_timeout_seconds=6)
    pool = service.pool
    try:
        assert await service.browse("warm", page_server.url + "/second", _title) == "Second"
        procs, mains = _chromium()
        assert len(mains) == 1
        base_procs, base_fds = len(procs), _open_fds()
        baseline = pool.opened

        jobs = [(f"user{i % 3}", "/hang" if i % 4 == 0 else "/second") for i in range(20)]

        async def one(user: str, path: str) -> str:
            try:
                return await service.browse(user, page_server.url + path, _title)
            except WebError as exc:
                return exc.code

        results = await asyncio.gather(*(one(user, path) for user, path in jobs))

        assert [r for (_, p), r in zip(jobs, results, strict=True) if p == "/second"] == ["Second"] * 15
        assert [r for (_, p), r in zip(jobs, results, strict=True) if p == "/hang"] == ["timeout"] * 5
        assert pool.peak <= 3 and pool.user_peak <= 2
        assert pool.opened - baseline == 20 and pool.closed == pool.opened and pool.active == 0
        assert pool.launches == 1 and _chromium()[1] == mains  # one browser process served every call
        # Chromium may keep one spare renderer warm; a leaked context would leave one renderer per call.
        await _until(lambda: len(_chromium()[0]) <= base_procs + 1, timeout=20)
        await _until(lambda: _open_fds() <= base_fds + 2, timeout=20)
    finally:
        await service.close()
    wait_for(lambda: not _chromium()[0], timeout=15)  # closing the service ends the browser too


@pytest.mark.anyio
async def test_one_user_past_the_cap_waits_and_then_gets_busy_while_others_are_served(page_server: PageServer) -> None:
    service = make_service(
        page_server, max_contexts=4, per_user_contexts=1, page_timeout_seconds=3, queue_timeout_seconds=0.5
    )
    try:
        hog = asyncio.ensure_future(service.browse("hog", page_server.url + "/hang", _title))
        async with asyncio.timeout(10):  # wait (on the condition) until the hog holds its one context
            while service.pool.active < 1 and not hog.done():
                await asyncio.sleep(0.02)
        with pytest.raises(WebError) as busy:
            await service.browse("hog", page_server.url + "/second", _title)
        assert busy.value.code == "busy"
        assert await service.browse("other", page_server.url + "/second", _title) == "Second"
        with pytest.raises(WebError) as timed_out:
            await hog
        assert timed_out.value.code == "timeout"
        assert service.pool.active == 0 and service.pool.closed == service.pool.opened == 2
    finally:
        await service.close()


def _renderers() -> list[int]:
    found = []
    for pid in _chromium()[0]:
        try:
            if b"--type=renderer" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
        except OSError:
            continue
    return found


@pytest.mark.anyio
async def test_a_crashed_renderer_fails_only_its_call_and_the_pool_keeps_serving(page_server: PageServer) -> None:
    service = make_service(page_server, page_timeout_seconds=20)
    try:
        assert await service.browse("alice", page_server.url + "/second", _title) == "Second"
        hits = page_server.hits.count("/hang")
        victim = asyncio.ensure_future(service.browse("alice", page_server.url + "/hang", _title))
        async with asyncio.timeout(15):  # until the hanging page is being loaded in its own context
            while page_server.hits.count("/hang") == hits or not _renderers():
                await asyncio.sleep(0.05)
        for pid in _renderers():
            os.kill(pid, signal.SIGKILL)
        with pytest.raises(WebError) as crashed:
            await victim
        assert crashed.value.code == "crashed", crashed.value
        assert service.pool.active == 0 and service.pool.closed == service.pool.opened == 2
        assert await service.browse("bob", page_server.url + "/second", _title) == "Second"
        assert service.pool.launches == 1
    finally:
        await service.close()
    wait_for(lambda: not _chromium()[0], timeout=15)
