"""Findings F1, F3 and F4 of the 2026-12-04 review: the exact hostile requests against a node of role "all" on
loopback (real HTTP, real MCP client), each answered 4xx in the error shape or served correctly, never a 500."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
import pytest
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS

from isa.app import create_app
from isa.core.settings import Settings
from tests.support.auth import create_key
from tests.support.mcp_servers import mcp_client, serve_asgi, settings_with, sql
from tests.support.procs import wait_for


@dataclass(frozen=True)
class Node:
    url: str
    bob: str


@pytest.fixture(scope="module")
def node(settings: Settings, db_url: str) -> Iterator[Node]:
    bob = create_key(db_url, settings, "hostile-bob", "write")
    with serve_asgi(create_app(settings, "all", database_url=db_url)) as url:
        # Searchable once ready (the catalog's first sync): the controls below need real hits.
        wait_for(lambda: httpx.get(url + "/health/ready", timeout=5).status_code == 200, timeout=60)
        yield Node(url, bob)


def _post(node: Node, path: str, body: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {node.bob}", "Content-Type": "application/json"}
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(node.url + path, content=content, headers=headers, timeout=30)


def _get(node: Node, path: str) -> httpx.Response:
    return httpx.get(node.url + path, headers={"Authorization": f"Bearer {node.bob}"}, timeout=30)


def _refused(response: httpx.Response) -> str:
    """The error code of a 4xx in the one error shape (fails on a 500 or any other shape)."""
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    error = response.json()["error"]
    assert error["code"] != "internal_error" and error["message"] and "request_id" in error
    return str(error["code"])


# --- F1: filter values are bound parameters, not SQL text -------------------------------------------------

PERCENT_VALUES = ["100%", "50% off", "%s", "%(text)s", "%' OR 1=1 --", "%b%t"]


@pytest.mark.parametrize("mode", ["hybrid", "lexical"])
@pytest.mark.parametrize("field", ["servers", "categories"])
def test_f1_a_percent_or_placeholder_in_a_search_filter_is_matched_literally_not_a_500(
    node: Node, mode: str, field: str
) -> None:
    for value in PERCENT_VALUES:
        response = _post(node, "/search", {"query": "time", "mode": mode, "filters": {field: [value]}})
        assert response.status_code == 200, (value, response.status_code, response.text[:300])
        # No tool's server or category is literally that text: the filter matches nothing (and is not rewritten).
        assert response.json()["results"] == [], value


def test_f1_a_real_filter_value_still_selects_its_rows(node: Node) -> None:
    """The control for F1: bound filters still filter (a real server name finds its tools, and only those)."""
    # A whole request, not one word: a single word falls under discovery's relevance floor (docs/discovery.md).
    query = "what is the current time"
    hits = _post(node, "/search", {"query": query, "filters": {"servers": ["isa"]}}).json()["results"]
    assert hits and all(h["server"] == "isa" for h in hits)
    levels = _post(node, "/search", {"query": query, "filters": {"security_levels": ["LOW"]}}).json()["results"]
    assert levels and all(h["security_level"] == "LOW" for h in levels)


# --- F3: a NUL character is an input error where input is parsed --------------------------------------------


def test_f3_a_nul_character_in_a_body_or_query_string_is_422_on_every_route_the_review_hit(node: Node) -> None:
    cases = [
        _post(node, "/discover", {"request": "a\u0000b"}),
        _post(node, "/search", {"query": "a\u0000b"}),
        _post(node, "/search", {"query": "time", "filters": {"servers": ["a\u0000b"]}}),
        _get(node, "/api/sessions?search=a%00b"),
        _get(node, "/api/v1/events?event_type=a%00b"),
        _post(node, f"/api/v1/authorizations/{uuid.uuid4()}/deny", {"note": "a\u0000b"}),
        _post(node, "/api/v1/events", {"event_type": "x", "data": {"k\u0000": 1}}),
    ]
    assert [_refused(r) for r in cases] == ["invalid_request"] * len(cases)
    assert all("NUL" in r.json()["error"]["message"] for r in cases)


def test_f3_a_lone_surrogate_in_a_body_is_422_not_a_500(node: Node) -> None:
    assert _refused(_post(node, "/discover", b'{"request": "a\\ud800b"}')) == "invalid_request"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("store_factual_memory", {"dialog_content": "I live in Lis\u0000bon"}),
        ("search_knowledge", {"query": "vault\u0000"}),
        ("discover_tools", {"request": "time\u0000"}),
    ],
)
async def test_f3_a_nul_character_in_tool_arguments_is_invalid_arguments_not_tool_crashed(
    node: Node, db_url: str, tool: str, arguments: dict[str, Any]
) -> None:
    async with mcp_client(node.url, node.bob) as client:
        result = await client.call_tool(tool, arguments)
    assert result.is_error and result.structured_content is not None
    assert result.structured_content["data"]["code"] == "invalid_arguments"
    assert "NUL" in result.structured_content["error"]
    query = "SELECT outcome, arguments FROM audit_log WHERE user_id = 'hostile-bob' AND tool_name = %s"
    rows = wait_for(lambda: sql(db_url, query, (tool,)), timeout=10)  # the audit row is written off the call path
    assert rows[-1]["outcome"] == "invalid_arguments" and rows[-1]["arguments"] == {}


# --- F4: nesting is bounded once, below what the serializer can handle --------------------------------------


def _nested(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


@pytest.mark.parametrize("depth", [200, 400, 600, 800])
def test_f4_an_event_nested_hundreds_deep_is_422_not_a_500(node: Node, depth: int) -> None:
    body = ('{"event_type":"x","data":' + _nested(depth) + "}").encode()
    response = _post(node, "/api/v1/events", body)
    assert _refused(response) == "invalid_request"
    assert "nested too deeply" in response.json()["error"]["message"]


@pytest.mark.parametrize("depth", [500, 900])
def test_f4_a_batch_item_nested_hundreds_deep_is_422_not_a_500(node: Node, depth: int) -> None:
    body = ('{"events":[{"event_type":"x","data":' + _nested(depth) + "}]}").encode()
    assert _refused(_post(node, "/api/v1/events/batch", body)) == "invalid_request"


def test_f4_an_event_nested_within_the_bound_is_stored(node: Node) -> None:
    body = ('{"event_type":"nested-ok","data":' + _nested(40) + "}").encode()
    assert _post(node, "/api/v1/events", body).status_code == 201


# --- F2: embeddings are bounded and paid for before the work -------------------------------------------------

SENTENCE = "hello world, this is text"


def _embed(node: Node, key: str, body: dict[str, Any]) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    response = httpx.post(
        node.url + "/v1/embeddings", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=60
    )
    return response, time.perf_counter() - started


def _usage_rows(db_url: str, user_id: str) -> int:
    return int(sql(db_url, "SELECT count(*) AS n FROM user_usage_records WHERE user_id = %s", (user_id,))[0]["n"])


def test_f2_5000_embedding_inputs_from_a_user_with_credits_are_refused_in_under_2_s(
    node: Node, settings: Settings, db_url: str
) -> None:
    key = create_key(db_url, settings, "hostile-rich", "write")
    sql(db_url, "UPDATE users SET credits_remaining = 1000000 WHERE user_id = 'hostile-rich'")
    response, elapsed = _embed(node, key, {"model": "embed", "input": [SENTENCE] * 5000})
    assert _refused(response) == "invalid_request" and elapsed < 2.0, elapsed
    assert _usage_rows(db_url, "hostile-rich") == 0
    # The control: OpenAI's own bound of 2,048 inputs is served.
    served, _ = _embed(node, key, {"model": "embed", "input": ["a"] * 2048})
    assert served.status_code == 200 and len(served.json()["data"]) == 2048


def test_f2_embeddings_past_the_token_bound_are_refused_before_the_work(settings: Settings, db_url: str) -> None:
    """model.max_embedding_tokens (300,000 by default, OpenAI's bound) refuses a request by its estimate."""
    key = create_key(db_url, settings, "hostile-rich", "write")
    sql(db_url, "UPDATE users SET credits_remaining = 1000000 WHERE user_id = 'hostile-rich'")
    small = settings_with(settings, model={"max_embedding_tokens": 1000})
    with serve_asgi(create_app(small, "model", database_url=db_url)) as url:
        gateway = Node(url, key)
        wait_for(lambda: _embed(gateway, key, {"model": "embed", "input": "warm"})[0].status_code == 200)
        response, elapsed = _embed(gateway, key, {"model": "embed", "input": [SENTENCE * 8] * 30})  # ~1,500 tokens
        assert _refused(response) == "invalid_request" and elapsed < 2.0, elapsed
        assert "at most 1000" in response.json()["error"]["message"]
        served, _ = _embed(gateway, key, {"model": "embed", "input": [SENTENCE * 8] * 10})  # ~500 tokens
        assert served.status_code == 200


def test_f2_embeddings_costing_more_than_the_balance_are_402_before_any_vector_is_computed(
    node: Node, settings: Settings, db_url: str
) -> None:
    key = create_key(db_url, settings, "hostile-frank", "write")
    sql(db_url, "UPDATE users SET credits_remaining = 1 WHERE user_id = 'hostile-frank'")
    response, elapsed = _embed(node, key, {"model": "embed", "input": [SENTENCE] * 2000})  # ~14 credits
    assert response.status_code == 402 and response.json()["error"]["code"] == "insufficient_credits"
    assert elapsed < 2.0, elapsed
    assert response.json()["error"]["details"]["needed"] == "14.000"
    rows = sql(db_url, "SELECT credits_remaining FROM users WHERE user_id = 'hostile-frank'")
    assert rows[0]["credits_remaining"] == 1 and _usage_rows(db_url, "hostile-frank") == 0
    # Within the balance it is served.
    served, _ = _embed(node, key, {"model": "embed", "input": [SENTENCE] * 10})
    assert served.status_code == 200


# --- F6: an idempotency key reused with a different request is 422, as on the events API ---------------------


def test_f6_a_consume_key_reused_with_a_different_amount_is_422_idempotency_key_reused(node: Node, db_url: str) -> None:
    sql(db_url, "UPDATE users SET credits_remaining = 100 WHERE user_id = 'hostile-bob'")
    path = "/api/v1/users/me/credits/consume"
    first = _post(node, path, {"amount": 3, "idempotency_key": "audit-idem-1"})
    assert first.status_code == 200, first.text
    changed = _post(node, path, {"amount": 4, "idempotency_key": "audit-idem-1"})
    assert changed.status_code == 422 and changed.json()["error"]["code"] == "idempotency_key_reused"
    other_reason = _post(node, path, {"amount": 3, "reason": "other", "idempotency_key": "audit-idem-1"})
    assert _refused(other_reason) == "idempotency_key_reused"
    # The same request again is still the safe retry: the first result, charged once.
    again = _post(node, path, {"amount": 3, "idempotency_key": "audit-idem-1"})
    assert again.status_code == 200 and again.json()["data"] == first.json()["data"]
    rows = sql(db_url, "SELECT credits_remaining FROM users WHERE user_id = 'hostile-bob'")
    assert rows[0]["credits_remaining"] == 97


# --- A request pasted with a document: ranked on its head, said so, never refused ----------------------------


def test_a_20000_character_discover_request_is_ranked_on_its_head_and_says_so(node: Node) -> None:
    request = "what time is it in Lisbon? " + "a pasted report paragraph. " * 740  # ~20,000 characters
    response = _post(node, "/discover", {"request": request})
    assert response.status_code == 200, response.text[:300]
    body = response.json()
    assert body["request_truncated"] == {"request_chars": len(request), "ranked_chars": 4000}
    assert body["capabilities"], body
    short = _post(node, "/discover", {"request": "what time is it in Lisbon?"}).json()
    assert "request_truncated" not in short
    assert _refused(_post(node, "/discover", {"request": "x" * 100_001})) == "invalid_request"


# --- I1: failures any user can trigger are clean MCP errors, not ERROR tracebacks ------------------------------


def test_i1_an_unknown_or_foreign_event_uri_and_a_prompt_without_arguments_log_no_error(
    node: Node, settings: Settings, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    other = create_key(db_url, settings, "hostile-eve", "write")
    created = _post(node, "/api/v1/events", {"event_type": "bob.private", "data": {"n": 1}})
    assert created.status_code == 201, created.text
    bob_event = created.json()["event_id"]
    caplog.set_level(logging.INFO)

    async def as_eve() -> None:
        async with mcp_client(node.url, other) as eve:
            for uri in (f"event://{uuid.uuid4()}", "event://not-a-uuid", f"event://{bob_event}"):
                with pytest.raises(MCPError) as refused:
                    await eve.read_resource(uri)
                assert "not found" in refused.value.error.message
            prompts = (await eve.list_prompts()).prompts
            prompt = next(p for p in prompts if any(a.required for a in p.arguments or ()))
            with pytest.raises(MCPError) as missing:
                await eve.get_prompt(prompt.name, {})
            assert missing.value.error.code == INVALID_PARAMS

    anyio.run(as_eve)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]


# --- I4 and a smaller defect: task URLs are vetted and config keys checked when the task is made --------------


def test_i4_internal_callback_and_monitor_urls_are_refused_when_the_task_is_created(node: Node) -> None:
    internal = [
        "http://127.0.0.1:9/x",
        "http://169.254.169.254/latest",
        "http://[::ffff:127.0.0.1]/",
        "http://2130706433/",
    ]
    for url in internal:
        cases = [
            {"task_type": "schedule", "config": {"message": "hi"}, "callback_url": url},
            {"task_type": "web_monitor", "config": {"urls": ["https://example.com/", url]}},
            {"task_type": "threshold_watch", "config": {"url": url, "above": 3}},
        ]
        for body in cases:
            response = _post(node, "/api/v1/tasks", body)
            assert _refused(response) == "url_blocked", (url, body)
            assert "blocked" in response.json()["error"]["message"]
    ok = _post(node, "/api/v1/tasks", {"task_type": "web_monitor", "config": {"urls": ["https://example.com/"]}})
    assert ok.status_code == 201, ok.text


def test_a_misspelled_task_config_key_is_refused_not_stored(node: Node) -> None:
    body = {"task_type": "web_monitor", "config": {"urls": ["https://example.com/"], "intervl_minutes": 5}}
    response = _post(node, "/api/v1/tasks", body)
    assert _refused(response) == "invalid_request" and "intervl_minutes" in response.json()["error"]["message"]
