"""The direct path: OpenAI-wire deployments are forwarded with one pooled client, the rest go through litellm,
and both are routed, retried, cooled down, accounted for and refused alike."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from decimal import Decimal

import httpx
import pytest
from starlette.testclient import TestClient

from isa.app import create_app
from isa.core.settings import Settings
from isa.model.sanitize import safe_tool_name
from tests.model.conftest import Headers, LiveGateway, settle, sql, with_model
from tests.support.fake_openai import FakeOpenAI, Reply, call

NewUser = Callable[..., tuple[str, Headers]]
HI = [{"role": "user", "content": "hi there"}]


@pytest.fixture(scope="module")
def model_settings(settings: Settings, fake_provider: FakeOpenAI) -> Settings:
    return with_model(
        settings,
        fake_provider,
        num_retries=1,
        allowed_fails=1,
        cooldown_seconds=30,
        fallbacks={"d-first": ["d-second"]},
        extra_deployments=[
            {"name": "d-first", "model": "direct-first", "provider": "alpha"},
            {"name": "d-second", "model": "direct-second", "provider": "beta"},
            {"name": "d-pair", "model": "pair-good", "provider": "alpha", "id": "alpha/pair-good"},
            {"name": "d-pair", "model": "pair-bad", "provider": "beta", "id": "beta/pair-bad"},
            {"name": "via-litellm", "model": "through-litellm", "provider": "alpha", "engine": "litellm"},
        ],
    )


@pytest.fixture(scope="module")
def gateway(model_settings: Settings, db_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(model_settings, "model", database_url=db_url)) as client:
        yield client


@pytest.fixture(scope="module")
def live(model_settings: Settings, db_url: str) -> Iterator[LiveGateway]:
    with LiveGateway(model_settings, db_url) as gw:
        yield gw


def usage_of(db_url: str, user_id: str) -> list[tuple[object, ...]]:
    return sql(
        db_url,
        "SELECT prompt_tokens, completion_tokens, credits_charged, billing_metadata FROM user_usage_records "
        "WHERE user_id = %s",
        user_id,
    )


def frames(response: httpx.Response) -> list[str]:
    return [line[6:] for line in response.iter_lines() if line.startswith("data: ")]


def test_an_openai_wire_deployment_is_called_directly_and_a_litellm_one_through_litellm(
    gateway: TestClient, fake: FakeOpenAI, new_user: NewUser, db_url: str
) -> None:
    user_id, headers = new_user(credits=100)
    fake.script("gpt-4o-mini", Reply(text="direct answer", prompt_tokens=1000, completion_tokens=500))
    response = gateway.post("/v1/chat/completions", headers=headers, json={"model": "default", "messages": HI})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "default" and body["choices"][0]["message"]["content"] == "direct answer"
    assert response.headers["x-isa-deployment"] == "alpha/main"
    sent = fake.requests_for("gpt-4o-mini")[0]
    assert sent.body == {"model": "gpt-4o-mini", "messages": HI}  # the body, with the provider's model name
    assert sent.headers["authorization"] == "Bearer sk-fake-provider-key"
    assert not any(h.startswith("x-stainless") for h in sent.headers)  # no SDK in between
    litellm_answer = gateway.post(
        "/v1/chat/completions", headers=headers, json={"model": "via-litellm", "messages": HI}
    )
    assert litellm_answer.status_code == 200
    assert "x-stainless-retry-count" in fake.requests_for("through-litellm")[0].headers  # the OpenAI SDK, via litellm
    settle(gateway)
    rows = sorted(usage_of(db_url, user_id), key=lambda r: str(r[3]["deployment"]))  # type: ignore[index]
    assert [r[3]["deployment"] for r in rows] == ["alpha/main", "alpha/via-litellm"]  # type: ignore[index]
    assert (rows[0][0], rows[0][1], rows[0][2]) == (1000, 500, Decimal("1.500"))  # credits: 1.5k tokens x 1


def test_a_direct_stream_is_relayed_and_charged_by_the_usage_of_its_final_chunk(
    live: LiveGateway, fake: FakeOpenAI, new_user: NewUser, db_url: str
) -> None:
    user_id, headers = new_user()
    fake.script("gpt-4o-mini", Reply(text="one two three four", chunks=4, prompt_tokens=11, completion_tokens=7))
    body = {"model": "main", "messages": HI, "stream": True}
    with httpx.stream("POST", live.url + "/v1/chat/completions", headers=headers, json=body, timeout=10) as response:
        assert response.status_code == 200
        data = frames(response)
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "one two three four"
    assert {c["model"] for c in chunks} == {"main"}  # the caller's name, not the provider's
    assert not any(c.get("usage") for c in chunks)  # the caller did not ask for the usage chunk
    sent = fake.requests_for("gpt-4o-mini")[0].body
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    rows = wait_for_rows(db_url, user_id)
    assert (rows[0][0], rows[0][1]) == (11, 7)
    assert rows[0][3]["stream"] is True and rows[0][3]["status"] == "completed"  # type: ignore[index]

    fake.script("gpt-4o-mini", Reply(text="again", prompt_tokens=3, completion_tokens=2))
    asked = {**body, "stream_options": {"include_usage": True}}
    with httpx.stream("POST", live.url + "/v1/chat/completions", headers=headers, json=asked, timeout=10) as response:
        last = json.loads(frames(response)[-2])
    assert last["choices"] == [] and last["usage"]["completion_tokens"] == 2


def wait_for_rows(db_url: str, user_id: str) -> list[tuple[object, ...]]:
    from tests.support.procs import wait_for

    return wait_for(lambda: usage_of(db_url, user_id), timeout=10)


def test_tool_names_are_sanitised_on_the_way_out_and_restored_in_answers_and_streams(
    live: LiveGateway, fake: FakeOpenAI, new_user: NewUser
) -> None:
    _, headers = new_user()
    tool = {"type": "function", "function": {"name": "files.search", "parameters": {"type": "object"}}}
    body = {"model": "main", "messages": HI, "tools": [tool]}
    safe = safe_tool_name("files.search")
    fake.script("gpt-4o-mini", Reply(tool_calls=[call(safe, {"q": "cats"})]), Reply(tool_calls=[call(safe)]))
    answer = httpx.post(live.url + "/v1/chat/completions", headers=headers, json=body, timeout=10).json()
    assert answer["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "files.search"
    assert fake.requests_for("gpt-4o-mini")[0].body["tools"][0]["function"]["name"] == safe != "files.search"
    streamed = {**body, "stream": True}
    with httpx.stream("POST", live.url + "/v1/chat/completions", headers=headers, json=streamed, timeout=10) as r:
        chunks = [json.loads(d) for d in frames(r)[:-1]]
    names = [
        tc["function"]["name"]
        for c in chunks
        for ch in c["choices"]
        for tc in ch["delta"].get("tool_calls", ())
        if tc.get("function", {}).get("name")
    ]
    assert names == ["files.search"]


def test_a_failing_direct_group_falls_back_and_a_failing_deployment_cools_down(
    gateway: TestClient, fake: FakeOpenAI, new_user: NewUser
) -> None:
    _, headers = new_user()
    fake.script("direct-first", Reply.error(503, times=50))
    response = gateway.post("/v1/chat/completions", headers=headers, json={"model": "d-first", "messages": HI})
    assert response.status_code == 200
    assert response.headers["x-isa-deployment"] == "beta/d-second"
    assert fake.count("direct-first") == 2  # one retry (num_retries=1), then the fallback group
    fake.script("pair-bad", Reply.error(500, times=50))
    served = [
        gateway.post("/v1/chat/completions", headers=headers, json={"model": "d-pair", "messages": HI})
        for _ in range(8)
    ]
    assert all(r.status_code == 200 for r in served)
    assert {r.headers["x-isa-deployment"] for r in served} == {"alpha/pair-good"}
    assert 1 <= fake.count("pair-bad") <= 2  # past allowed_fails it gets no traffic


def test_a_bad_request_is_not_retried_and_no_credits_means_nothing_is_sent(
    gateway: TestClient, fake: FakeOpenAI, new_user: NewUser
) -> None:
    _, headers = new_user()
    fake.script("gpt-4o-mini", Reply.error(400, message="bad tool schema"))
    refused = gateway.post("/v1/chat/completions", headers=headers, json={"model": "main", "messages": HI})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "upstream_bad_request"
    assert "bad tool schema" in refused.json()["error"]["message"]  # the provider's reason, as through litellm
    assert fake.count("gpt-4o-mini") == 1
    _, broke = new_user(credits=0)
    poor = gateway.post("/v1/chat/completions", headers=broke, json={"model": "main", "messages": HI})
    assert poor.status_code == 402 and poor.json()["error"]["code"] == "insufficient_credits"
    assert fake.count("gpt-4o-mini") == 1
