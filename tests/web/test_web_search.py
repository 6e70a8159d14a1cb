"""web_search over a local fake that speaks Brave Search's wire format."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from isa.web.service import WebError, WebService
from isa.web.settings import WebSettings
from tests.support.fake_brave import KEY, FakeBrave
from tests.support.mcp_servers import serve_asgi


@pytest.fixture(scope="module")
def brave() -> Iterator[tuple[FakeBrave, str]]:
    fake = FakeBrave()
    with serve_asgi(fake.app()) as url:
        yield fake, url


@pytest.mark.anyio
async def test_search_returns_title_url_and_snippet_and_sends_the_key_as_brave_expects(
    brave: tuple[FakeBrave, str],
) -> None:
    fake, url = brave
    service = WebService(WebSettings(brave_api_key=KEY, brave_api_base=url))
    out = await service.search("pooled browsers", 3)
    assert out["provider"] == "brave" and out["total"] == 3
    assert out["results"][0] == {
        "title": "Result 1 for pooled browsers",
        "url": "https://example.org/1",
        "snippet": "About <strong>pooled browsers</strong>, number 1.",
    }
    assert fake.requests[-1]["params"] == {"q": "pooled browsers", "count": "3"}
    assert fake.requests[-1]["headers"]["accept"] == "application/json"


@pytest.mark.anyio
async def test_count_is_capped_at_20(brave: tuple[FakeBrave, str]) -> None:
    fake, url = brave
    out = await WebService(WebSettings(brave_api_key=KEY, brave_api_base=url)).search("q", 500)
    assert out["total"] == 20 and fake.requests[-1]["params"]["count"] == "20"


@pytest.mark.anyio
async def test_a_refused_key_is_a_clear_error(brave: tuple[FakeBrave, str]) -> None:
    _, url = brave
    with pytest.raises(WebError, match="refused the configured API key"):
        await WebService(WebSettings(brave_api_key="wrong", brave_api_base=url)).search("q", 5)
