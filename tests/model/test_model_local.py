"""A local OpenAI-compatible server (the fake, keyless) served under its own names, and what aliases follow it."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from isa.app import create_app
from isa.core.settings import Settings
from isa.model.local import mode_of
from isa.model.settings import ModelSettings
from tests.support.fake_openai import FakeOpenAI

Headers = dict[str, str]


@pytest.fixture(scope="module")
def local_server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(models=["fake", "fake-embed"]) as fake:
        yield fake


def local_settings(settings: Settings, **model: Any) -> Settings:
    raw = copy.deepcopy(settings.raw)
    raw["model"] = {**raw.get("model", {}), **model}
    return settings.model_copy(update={"raw": raw})


def no_cloud_keys() -> None:
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "REPLICATE_API_KEY"):
        assert not os.environ.get(name), f"{name} is set: this test is about a machine without cloud keys"


def test_model_names_say_whether_they_are_chat_or_embedding_models() -> None:
    assert mode_of("llama3.2:1b") == "chat" and mode_of("qwen2.5-0.5b-instruct") == "chat"
    assert mode_of("nomic-embed-text") == "embedding" and mode_of("bge-small-en") == "embedding"
    assert mode_of("fake-embed") == "embedding" and mode_of("whisper-large") is None


def test_a_local_servers_models_are_served_under_their_own_names_with_no_key(
    settings: Settings,
    db_url: str,
    local_server: FakeOpenAI,
    new_user: Callable[..., tuple[str, Headers]],
) -> None:
    no_cloud_keys()
    local_server.reset()
    app = create_app(local_settings(settings, local_url=local_server.base_url), "model", database_url=db_url)
    _, headers = new_user()
    with TestClient(app) as client:
        listed = {m["id"]: m for m in client.get("/v1/models", headers=headers).json()["data"]}
        assert {"fake", "fake-embed", "default"} <= set(listed)
        answer = client.post(
            "/v1/chat/completions",
            json={"model": "fake", "messages": [{"role": "user", "content": "Say hello."}]},
            headers=headers,
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["choices"][0]["message"]["content"] == "fake reply to: Say hello."
        by_alias = client.post(
            "/v1/chat/completions",
            json={"model": "default", "messages": [{"role": "user", "content": "Hi"}]},
            headers=headers,
        )
        assert by_alias.status_code == 200, by_alias.text
        embedded = client.post("/v1/embeddings", json={"model": "fake-embed", "input": ["a"]}, headers=headers)
        assert embedded.status_code == 200, embedded.text
        wrong = client.post("/v1/embeddings", json={"model": "fake", "input": ["a"]}, headers=headers)
        assert wrong.status_code == 400 and wrong.json()["error"]["code"] == "wrong_model_type"
    chats = local_server.requests_for(path="/v1/chat/completions")
    assert [r.model for r in chats] == ["fake", "fake"]  # "default" reached the first local chat model
    # A keyless server gets a placeholder, never a real credential.
    assert chats[0].headers.get("authorization") == "Bearer sk-no-key-required"


def test_an_alias_set_explicitly_wins_over_the_local_model(
    settings: Settings, db_url: str, local_server: FakeOpenAI, new_user: Callable[..., tuple[str, Headers]]
) -> None:
    no_cloud_keys()
    local_server.reset()
    aliases = {**ModelSettings().aliases, "fast": "gpt-4.1-nano-custom"}
    section = {"local_url": local_server.base_url, "aliases": aliases}
    _, headers = new_user()
    with TestClient(create_app(local_settings(settings, **section), "model", database_url=db_url)) as client:
        service = client.app.state.isa.services["model"]  # type: ignore[attr-defined]
        assert service.settings.resolve("default") == "fake"
        assert service.settings.resolve("fast") == "gpt-4.1-nano-custom"
        refused = client.post(
            "/v1/chat/completions",
            json={"model": "fast", "messages": [{"role": "user", "content": "x"}]},
            headers=headers,
        )
        assert refused.status_code == 404


def test_a_keyless_deployment_from_settings_works_and_adds_to_the_built_in_list(
    settings: Settings, db_url: str, local_server: FakeOpenAI, new_user: Callable[..., tuple[str, Headers]]
) -> None:
    local_server.reset()
    mine = {"name": "mine", "model": "openai/fake", "api_base": local_server.base_url, "api_key_env": ""}
    model = ModelSettings.model_validate({"deployments": [mine]})
    assert {"gpt-4.1-mini", "claude-sonnet-4", "mine"} <= {d.name for d in model.all_deployments}
    assert [d.name for d in ModelSettings(deployments=[mine], builtin_deployments=False).all_deployments] == ["mine"]
    _, headers = new_user()
    with TestClient(create_app(local_settings(settings, deployments=[mine]), "model", database_url=db_url)) as client:
        answer = client.post(
            "/v1/chat/completions",
            json={"model": "mine", "messages": [{"role": "user", "content": "x"}]},
            headers=headers,
        )
        assert answer.status_code == 200, answer.text  # no "Missing credentials", no retries
    assert local_server.count(path="/v1/chat/completions") == 1


def test_an_unreachable_local_url_leaves_the_gateway_starting_with_what_it_has(
    settings: Settings, db_url: str, new_user: Callable[..., tuple[str, Headers]]
) -> None:
    gone = FakeOpenAI()  # never started: nothing listens on its port
    with TestClient(create_app(local_settings(settings, local_url=gone.base_url), "model", database_url=db_url)) as c:
        assert c.get("/health/ready").status_code == 200
        service = c.app.state.isa.services["model"]  # type: ignore[attr-defined]
        assert service.gateway.local.error and not service.gateway.local.found


def test_deployments_in_a_settings_file_are_added_to_the_built_in_list(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    from isa.core.settings import load_settings

    extra = tmp_path / "settings.toml"
    extra.write_text(
        '[default.model]\n[[default.model.deployments]]\nname = "qwen"\nmodel = "openai/qwen2.5:0.5b"\n'
        'api_base = "http://127.0.0.1:11434/v1"\n'
    )
    monkeypatch.setenv("ISA_SETTINGS_FILE", str(extra))
    model = load_settings("model").section("model", ModelSettings)
    names = [d.name for d in model.all_deployments]
    assert names[-1] == "qwen" and "gpt-4.1-mini" in names and model.resolve("default") == "gpt-4.1-mini"
