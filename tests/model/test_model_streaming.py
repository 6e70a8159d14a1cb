"""Streams over a real socket: a client that leaves cancels the provider call; a provider that dies or stalls
mid-stream gives the client a final error frame, never a hang. Usage is recorded however a stream ends."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

import httpx
import openai
import pytest

from isa.core.settings import Settings
from tests.model.conftest import Headers, LiveGateway, sql, with_model
from tests.support.fake_openai import FakeOpenAI, Reply
from tests.support.procs import wait_for

NewUser = Callable[..., tuple[str, Headers]]
IDLE_TIMEOUT = 1.0
BODY = {"model": "main", "messages": [{"role": "user", "content": "tell me a long story"}], "stream": True}


@pytest.fixture(scope="module")
def live(settings: Settings, fake_provider: FakeOpenAI, db_url: str) -> Iterator[LiveGateway]:
    with LiveGateway(with_model(settings, fake_provider, stream_idle_timeout_seconds=IDLE_TIMEOUT), db_url) as gw:
        yield gw


def usage_rows(db_url: str, user_id: str) -> list[tuple[object, ...]]:
    return sql(db_url, "SELECT completion_tokens, billing_metadata FROM user_usage_records WHERE user_id = %s", user_id)


def data_frames(response: httpx.Response) -> list[str]:
    return [line[6:] for line in response.iter_lines() if line.startswith("data: ")]


def test_a_client_that_disconnects_mid_stream_cancels_the_provider_call(
    live: LiveGateway, fake: FakeOpenAI, new_user: NewUser, db_url: str
) -> None:
    user_id, headers = new_user()
    fake.script("gpt-4o-mini", Reply(text="word " * 200, chunks=200, chunk_delay=0.05))
    with httpx.stream("POST", live.url + "/v1/chat/completions", headers=headers, json=BODY, timeout=10) as response:
        assert response.status_code == 200
        lines = response.iter_lines()
        received = [next(lines) for _ in range(6)]
    assert any(line.startswith("data: ") for line in received)
    # The gateway closed its provider stream: the fake saw the client go, long before its 10 s of chunks.
    wait_for(lambda: fake.client_disconnects == 1, timeout=5)
    assert fake.completed_streams == 0
    rows = wait_for(lambda: usage_rows(db_url, user_id), timeout=5)
    completion, meta = rows[0]
    assert meta["status"] == "client_disconnected"  # type: ignore[index]
    assert 0 < int(completion) < 200  # type: ignore[call-overload]


def test_a_provider_that_dies_mid_stream_ends_with_an_error_frame(
    live: LiveGateway, fake: FakeOpenAI, new_user: NewUser, db_url: str
) -> None:
    user_id, headers = new_user()
    fake.script("gpt-4o-mini", Reply(text="alpha beta gamma delta", chunks=4, cut_after=3))
    started = time.monotonic()
    with httpx.stream("POST", live.url + "/v1/chat/completions", headers=headers, json=BODY, timeout=10) as response:
        frames = data_frames(response)
    assert time.monotonic() - started < 5
    last = json.loads(frames[-1])
    assert last["error"]["code"] in ("upstream_error", "upstream_timeout")
    assert "[DONE]" not in frames
    assert any(json.loads(f).get("choices") for f in frames[:-1])  # some text arrived before the cut
    rows = wait_for(lambda: usage_rows(db_url, user_id), timeout=5)
    assert rows[0][1]["status"] == "provider_error"  # type: ignore[index]


def test_the_openai_sdk_raises_on_the_error_frame_instead_of_hanging(
    live: LiveGateway, fake: FakeOpenAI, new_user: NewUser
) -> None:
    _, headers = new_user()
    fake.script("gpt-4o-mini", Reply(text="alpha beta gamma delta", chunks=4, stall_after=3))
    client = openai.OpenAI(base_url=live.url + "/v1", api_key=headers["Authorization"][7:], max_retries=0, timeout=10)
    started = time.monotonic()
    pieces = []
    with pytest.raises(openai.APIError, match="stopped sending"):
        for chunk in client.chat.completions.create(model="main", messages=BODY["messages"], stream=True):  # type: ignore[call-overload]
            if chunk.choices and chunk.choices[0].delta.content:
                pieces.append(chunk.choices[0].delta.content)
    # The provider stalled for good; the idle timeout ended the stream.
    assert IDLE_TIMEOUT <= time.monotonic() - started < IDLE_TIMEOUT + 4
    assert pieces


def test_invoke_streams_token_metadata_and_done_frames(live: LiveGateway, fake: FakeOpenAI, new_user: NewUser) -> None:
    _, headers = new_user()
    fake.script("gpt-4o-mini", Reply(text="hello streaming world", chunks=3))
    body = {"input_data": "hi", "task": "chat", "service_type": "text"}
    with httpx.stream("POST", live.url + "/api/v1/invoke", headers=headers, json=body, timeout=10) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-isa-deployment"] == "alpha/main"
        frames = [json.loads(f) for f in data_frames(response)]
    tokens = [f["token"] for f in frames if "token" in f]
    assert "".join(tokens) == "hello streaming world"
    assert "metadata" in frames[-2] and frames[-1] == {"done": True}
    billing = frames[-2]["metadata"]["billing"]
    assert billing["completion_tokens"] > 0 and billing["credits"] > 0
    assert frames[-2]["metadata"]["deployment"] == "alpha/main"
