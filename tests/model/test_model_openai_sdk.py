"""Any OpenAI SDK client pointed at the gateway works: chat, streaming, tools, JSON mode, embeddings, models."""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import openai
import pytest
from starlette.testclient import TestClient

from tests.model.conftest import Headers, settle, sql
from tests.support.fake_openai import FakeOpenAI, Reply, call

NewUser = Callable[..., tuple[str, Headers]]


def sdk(gateway: TestClient, headers: Headers) -> openai.OpenAI:
    key = headers["Authorization"].removeprefix("Bearer ")
    return openai.OpenAI(base_url="http://testserver/v1", api_key=key, http_client=gateway, max_retries=0)


def test_chat_completion_through_the_official_sdk_names_the_deployment(
    gateway: TestClient, fake: FakeOpenAI, new_user: NewUser
) -> None:
    _, headers = new_user()
    raw = sdk(gateway, headers).chat.completions.with_raw_response.create(
        model="default", messages=[{"role": "user", "content": "hello gateway"}]
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "fake reply to: hello gateway"
    assert completion.usage is not None and completion.usage.total_tokens > 0
    assert raw.headers["x-isa-deployment"] == "alpha/main"
    assert raw.headers["x-isa-model-group"] == "main"
    assert fake.count("gpt-4o-mini") == 1
    # The provider got our key from the environment, never the caller's.
    sent = fake.requests_for("gpt-4o-mini")[0].headers["authorization"]
    assert sent == "Bearer sk-fake-provider-key"


def test_streamed_chat_arrives_in_pieces_and_ends_cleanly(
    gateway: TestClient, fake: FakeOpenAI, new_user: NewUser
) -> None:
    _, headers = new_user()
    fake.script("gpt-4o-mini", Reply(text="one two three four", chunks=4))
    stream = sdk(gateway, headers).chat.completions.create(
        model="main",
        messages=[{"role": "user", "content": "count"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces, usage = [], None
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        if chunk.usage:
            usage = chunk.usage
    assert "".join(pieces) == "one two three four"
    assert len(pieces) >= 2
    assert usage is not None and usage.completion_tokens > 0


def test_tool_calls_come_back_and_the_tool_result_goes_to_the_provider(
    gateway: TestClient, fake: FakeOpenAI, new_user: NewUser
) -> None:
    _, headers = new_user()
    fake.script("gpt-4o-mini", Reply(tool_calls=[call("get_weather", {"city": "Oslo"})]), Reply(text="It is sunny."))
    client = sdk(gateway, headers)
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            },
        }
    ]
    messages: list[dict[str, object]] = [{"role": "user", "content": "weather in Oslo?"}]
    first = client.chat.completions.create(model="main", messages=messages, tools=tools)  # type: ignore[arg-type]
    tool_call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert first.choices[0].finish_reason == "tool_calls"
    assert tool_call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(tool_call.function.arguments) == {"city": "Oslo"}  # type: ignore[union-attr]
    messages += [first.choices[0].message.model_dump(exclude_none=True)]
    messages += [{"role": "tool", "tool_call_id": tool_call.id, "content": "sunny"}]
    second = client.chat.completions.create(model="main", messages=messages, tools=tools)  # type: ignore[arg-type]
    assert second.choices[0].message.content == "It is sunny."
    sent = fake.requests_for("gpt-4o-mini")[1].body
    assert sent["messages"][-1] == {"role": "tool", "tool_call_id": tool_call.id, "content": "sunny"}
    assert sent["tools"][0]["function"]["name"] == "get_weather"


def test_json_mode_and_vision_content_parts_reach_the_provider(
    gateway: TestClient, fake: FakeOpenAI, new_user: NewUser
) -> None:
    _, headers = new_user()
    fake.script("gpt-4o-mini", Reply(text='{"animal": "cat"}'))
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    completion = sdk(gateway, headers).chat.completions.create(
        model="vision",
        messages=[{"role": "user", "content": [{"type": "text", "text": "what is this?"}, image]}],
        response_format={"type": "json_object"},
    )
    assert json.loads(completion.choices[0].message.content or "") == {"animal": "cat"}
    body = fake.requests_for("gpt-4o-mini")[0].body
    assert body["response_format"] == {"type": "json_object"}
    assert body["messages"][0]["content"][1] == image


def test_embed_alias_uses_the_local_minilm_without_calling_a_provider(
    gateway: TestClient, fake: FakeOpenAI, new_user: NewUser
) -> None:
    _, headers = new_user()
    raw = sdk(gateway, headers).embeddings.with_raw_response.create(model="embed", input=["a cat", "a kitten"])
    vectors = [d.embedding for d in raw.parse().data]
    assert [len(v) for v in vectors] == [384, 384]
    assert math.isclose(sum(x * x for x in vectors[0]), 1.0, rel_tol=1e-3)
    assert raw.headers["x-isa-deployment"] == "local/all-MiniLM-L6-v2"
    assert fake.count() == 0


def test_provider_embeddings_decode_in_the_sdk(gateway: TestClient, fake: FakeOpenAI, new_user: NewUser) -> None:
    _, headers = new_user()
    result = sdk(gateway, headers).embeddings.create(model="emb", input="hello")
    assert len(result.data[0].embedding) == 8
    assert fake.count("text-embedding-3-small") == 1


def test_models_lists_groups_and_aliases(gateway: TestClient, new_user: NewUser) -> None:
    _, headers = new_user(scope="read")
    ids = {m.id for m in sdk(gateway, headers).models.list()}
    assert {"main", "backup", "emb", "default", "fast", "vision", "embed", "all-MiniLM-L6-v2"} <= ids


def test_images_and_transcriptions_go_through_the_router(
    gateway: TestClient, fake: FakeOpenAI, new_user: NewUser
) -> None:
    user_id, headers = new_user()
    client = sdk(gateway, headers)
    image = client.images.generate(model="img", prompt="a red square", n=2)
    assert len(image.data or []) == 2 and (image.data or [])[0].url
    fake.script("whisper-1", Reply(text="hello from audio"))
    text = client.audio.transcriptions.create(model="stt", file=("a.wav", b"RIFF....WAVEfmt "))
    assert text.text == "hello from audio"
    assert fake.requests_for("whisper-1")[0].body["_files"] == ["file"]
    rows = sql(
        db_url_of(gateway),
        # One batch of the usage writer shares its transaction's created_at: ordered by type, not time.
        "SELECT event_type, credits_charged FROM user_usage_records WHERE user_id = %s ORDER BY event_type",
        user_id,
    )
    assert [r[0] for r in rows] == ["model.image", "model.transcription"]
    assert rows[0][1] >= 10  # two images at 5 credits each


def db_url_of(client: TestClient) -> str:
    settle(client)  # usage rows are written after the answer
    return str(client.app.state.isa.db.url)  # type: ignore[attr-defined]


def test_a_body_cannot_redirect_the_call_or_inject_a_key(
    gateway: TestClient, fake: FakeOpenAI, new_user: NewUser
) -> None:
    _, headers = new_user()
    response = gateway.post(
        "/v1/chat/completions",
        headers=headers,
        json={
            "model": "main",
            "messages": [{"role": "user", "content": "hi"}],
            "api_base": "http://127.0.0.1:9/v1",
            "api_key": "sk-attacker",
            "base_url": "http://127.0.0.1:9/v1",
        },
    )
    assert response.status_code == 200
    assert fake.count("gpt-4o-mini") == 1
    assert fake.requests_for("gpt-4o-mini")[0].headers["authorization"] == "Bearer sk-fake-provider-key"


def test_unknown_model_is_404_and_bad_body_is_422(gateway: TestClient, fake: FakeOpenAI, new_user: NewUser) -> None:
    _, headers = new_user()
    missing = gateway.post(
        "/v1/chat/completions", headers=headers, json={"model": "nope", "messages": [{"role": "user", "content": "x"}]}
    )
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"
    bad = gateway.post("/v1/chat/completions", headers=headers, json={"model": "main", "messages": []})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_request"
    wrong = gateway.post("/v1/embeddings", headers=headers, json={"model": "main", "input": "x"})
    assert wrong.status_code == 400
    assert fake.count() == 0


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/embeddings", "/v1/models", "/api/v1/invoke"])
def test_every_route_needs_a_principal(gateway: TestClient, path: str) -> None:
    method = gateway.get if path.endswith("models") else gateway.post
    response = method(path)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
