"""The original unified endpoint (/api/v1/invoke) and model list, for clients written against isa_model."""

from __future__ import annotations

from collections.abc import Callable

from starlette.testclient import TestClient

from tests.model.conftest import Headers
from tests.support.fake_openai import FakeOpenAI, Reply, call

NewUser = Callable[..., tuple[str, Headers]]


def test_text_chat_without_streaming_returns_the_envelope(
    gateway: TestClient, fake: FakeOpenAI, new_user: NewUser
) -> None:
    _, headers = new_user()
    fake.script("gpt-4o-mini", Reply(text="Bonjour"))
    body = {"input_data": "hello", "task": "chat", "service_type": "text", "stream": False, "temperature": 0.2}
    response = gateway.post("/api/v1/invoke", headers=headers, json=body)
    assert response.status_code == 200
    data = response.json()
    assert data["success"] is True and data["error"] is None and data["result"] == "Bonjour"
    meta = data["metadata"]
    assert meta["model_used"] == "gpt-4o-mini" and meta["provider"] == "alpha" and meta["deployment"] == "alpha/main"
    assert meta["billing"]["total_tokens"] > 0 and meta["billing"]["credits"] > 0
    # Top-level parameters (the original client's remote-mode habit) are honoured, not dropped.
    assert fake.requests_for("gpt-4o-mini")[0].body["temperature"] == 0.2


def test_task_prompts_and_tools_shape_the_call(gateway: TestClient, fake: FakeOpenAI, new_user: NewUser) -> None:
    _, headers = new_user()
    body = {"input_data": "a long text", "task": "summarize", "service_type": "text"}
    assert gateway.post("/api/v1/invoke", headers=headers, json=body).json()["success"] is True
    sent = fake.requests_for("gpt-4o-mini")[0].body
    assert sent["messages"][0]["role"] == "system" and "Summarize" in sent["messages"][0]["content"]
    assert not sent.get("stream")
    fake.script("gpt-4o-mini", Reply(tool_calls=[call("lookup", {"q": "x"})]))
    tool = {
        "name": "lookup",
        "description": "find",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
    }
    body = {"input_data": "find x", "task": "chat", "service_type": "text", "tools": [tool]}
    result = gateway.post("/api/v1/invoke", headers=headers, json=body).json()["result"]
    assert result["tool_calls"][0]["function"]["name"] == "lookup"
    assert fake.requests_for("gpt-4o-mini")[1].body["tools"][0]["function"]["name"] == "lookup"


def test_vision_embedding_image_and_audio_service_types(
    gateway: TestClient, fake: FakeOpenAI, new_user: NewUser
) -> None:
    _, headers = new_user()
    vision = {
        "input_data": "https://example.test/cat.png",
        "task": "describe",
        "service_type": "vision",
        "stream": False,
    }
    assert gateway.post("/api/v1/invoke", headers=headers, json=vision).json()["success"] is True
    parts = fake.requests_for("gpt-4o-mini")[0].body["messages"][0]["content"]
    assert parts[1] == {"type": "image_url", "image_url": {"url": "https://example.test/cat.png"}}
    embed = {"input_data": "a cat", "task": "embed", "service_type": "embedding"}
    vector = gateway.post("/api/v1/invoke", headers=headers, json=embed).json()["result"]
    assert len(vector) == 384
    similar = {"input_data": {"text1": "a cat", "text2": "a cat"}, "task": "similarity", "service_type": "embedding"}
    assert abs(gateway.post("/api/v1/invoke", headers=headers, json=similar).json()["result"]["similarity"] - 1) < 1e-4
    image = {"input_data": "a red square", "task": "generate", "service_type": "image", "model": "img"}
    assert len(gateway.post("/api/v1/invoke", headers=headers, json=image).json()["result"]["urls"]) == 1
    fake.script("whisper-1", Reply(text="spoken words"))
    audio = gateway.post(
        "/api/v1/invoke",
        headers=headers,
        data={"task": "transcribe", "service_type": "audio", "model": "stt"},
        files={"file": ("a.wav", b"RIFF....WAVE", "audio/wav")},
    )
    assert audio.json()["result"] == {"text": "spoken words"}


def test_failures_keep_their_status_and_the_envelope(gateway: TestClient, fake: FakeOpenAI, new_user: NewUser) -> None:
    _, headers = new_user()
    missing = gateway.post("/api/v1/invoke", headers=headers, json={"input_data": "x", "model": "nope"})
    assert missing.status_code == 404
    body = missing.json()
    assert body["success"] is False and body["result"] is None and body["error"]["code"] == "model_not_found"
    _, broke = new_user(credits=0)
    refused = gateway.post("/api/v1/invoke", headers=broke, json={"input_data": "x", "stream": False})
    assert refused.status_code == 402 and refused.json()["error"]["code"] == "insufficient_credits"
    unsupported = gateway.post(
        "/api/v1/invoke", headers=headers, json={"input_data": "x", "service_type": "audio", "task": "synthesize"}
    )
    assert unsupported.status_code == 400 and unsupported.json()["error"]["code"] == "unsupported_task"
    assert fake.count() == 0


def test_models_by_service_type(gateway: TestClient, new_user: NewUser) -> None:
    _, headers = new_user(scope="read")
    data = gateway.get("/api/v1/models?service_type=embedding", headers=headers).json()
    ids = {m["model_id"] for m in data["models"]}
    assert data["success"] is True and data["total_count"] == len(data["models"])
    assert {"emb", "embed", "all-MiniLM-L6-v2"} <= ids and "main" not in ids


def test_the_role_describes_itself_at_v1_openapi_json_and_docs(gateway: TestClient) -> None:
    spec = gateway.get("/v1/openapi.json").json()
    assert {"/v1/chat/completions", "/v1/embeddings", "/api/v1/invoke", "/v1/models"} <= set(spec["paths"])
    assert "ChatRequest" in spec["components"]["schemas"]
    page = gateway.get("/docs")
    assert page.status_code == 200 and "/v1/chat/completions" in page.text and "<script" not in page.text
