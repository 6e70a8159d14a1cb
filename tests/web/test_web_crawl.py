"""web_crawl and web_screenshot against the loopback page server: Markdown, links, tables, JS pages, compare."""

from __future__ import annotations

import json

import pytest

from isa.web.service import WebError
from tests.support.web_pages import PageServer, make_service


@pytest.mark.anyio
async def test_a_static_page_becomes_markdown_with_links_and_tables_without_a_browser(page_server: PageServer) -> None:
    service = make_service(page_server)
    try:
        out = await service.crawl("alice", page_server.url + "/")
    finally:
        await service.close()
    assert out["title"] == "Home page"
    assert out["rendered"] is False
    assert "# Welcome" in out["markdown"]
    assert "| name | price |" in out["markdown"] and "| apple | 1 |" in out["markdown"]
    assert {"url": page_server.url + "/second", "text": "Second page"} in out["links"]
    assert all(not link["url"].startswith("javascript:") for link in out["links"])
    assert service.pool.launches == 0


@pytest.mark.anyio
async def test_a_page_built_by_script_is_rendered_in_the_pooled_browser(page_server: PageServer) -> None:
    service = make_service(page_server)
    try:
        out = await service.crawl("alice", page_server.url + "/js")
        assert out["rendered"] is True
        assert "Rendered by script." in out["markdown"]
        assert service.pool.stats()["active"] == 0 and service.pool.closed == service.pool.opened == 1
    finally:
        await service.close()


@pytest.mark.anyio
async def test_a_json_list_of_urls_compares_the_pages_and_reports_each_failure(page_server: PageServer) -> None:
    service = make_service(page_server)
    urls = [page_server.url + "/", page_server.url + "/second", "http://127.0.0.1:1/"]
    try:
        out = await service.crawl("alice", json.dumps(urls), analysis_request="which is longer?")
    finally:
        await service.close()
    assert out["urls"] == urls
    assert "| " + urls[0] + " | Home page |" in out["markdown"]
    assert "| " + urls[1] + " | Second |" in out["markdown"]
    assert out["pages"][2]["error"]["code"] == "blocked"
    assert out["analysis"] is None and "model node" in out["analysis_note"]


@pytest.mark.anyio
async def test_a_screenshot_is_a_png_of_the_page(page_server: PageServer) -> None:
    service = make_service(page_server)
    try:
        final_url, png = await service.screenshot("alice", page_server.url + "/second")
    finally:
        await service.close()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000
    assert final_url == page_server.url + "/second"


@pytest.mark.anyio
async def test_search_without_a_key_says_it_is_not_configured(page_server: PageServer) -> None:
    service = make_service(page_server)
    with pytest.raises(WebError, match="not configured"):
        await service.search("anything", 5)
