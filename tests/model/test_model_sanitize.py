"""Provider quirks handled once: schemas Gemini rejects are rewritten, tool names fit every provider."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from starlette.testclient import TestClient

from isa.model.sanitize import inline_refs, safe_tool_name, strip_strict
from tests.model.conftest import Headers
from tests.support.fake_openai import FakeOpenAI, Reply, call

NewUser = Callable[..., tuple[str, Headers]]

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "address": {"$ref": "#/$defs/Address"},
        "tags": {"type": "array", "items": {"$ref": "#/$defs/Tag"}},
        "kind": {"const": "home"},
        "additionalProperties": {"type": "string", "description": "a property that happens to have this name"},
    },
    "required": ["address"],
    "$defs": {
        "Address": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"street": {"type": "string"}, "next": {"$ref": "#/$defs/Address"}},
        },
        "Tag": {"type": "string", "enum": ["a", "b"]},
    },
}


def keys_anywhere(node: Any) -> set[str]:
    if isinstance(node, dict):
        return set(node) | {k for v in node.values() for k in keys_anywhere(v)}
    if isinstance(node, list):
        return {k for v in node for k in keys_anywhere(v)}
    return set()


def test_refs_are_inlined_and_recursion_is_bounded() -> None:
    out = inline_refs(SCHEMA)
    assert out["properties"]["address"]["properties"]["street"] == {"type": "string"}
    assert out["properties"]["tags"]["items"] == {"type": "string", "enum": ["a", "b"]}
    assert "$ref" not in json.dumps(out) and "$defs" not in out
    depth, node = 0, out["properties"]["address"]
    while "next" in node.get("properties", {}):
        node, depth = node["properties"]["next"], depth + 1
    assert 1 <= depth <= 10


def test_strict_providers_lose_the_keywords_they_reject_but_keep_property_names() -> None:
    out = strip_strict(inline_refs(SCHEMA))
    assert not {"$schema", "$defs", "$ref"} & keys_anywhere(out)
    assert "additionalProperties" not in out and "additionalProperties" not in out["properties"]["address"]
    # A property literally named additionalProperties is data, not a keyword.
    assert out["properties"]["additionalProperties"]["type"] == "string"
    assert out["properties"]["kind"] == {"enum": ["home"]}


def test_tool_names_fit_every_provider_and_stay_stable() -> None:
    assert safe_tool_name("get_weather") == "get_weather"
    dotted = safe_tool_name("files.read/v2")
    long = safe_tool_name("x" * 100)
    for name in (dotted, long, safe_tool_name("9lives")):
        assert len(name) <= 64 and name.replace("_", "").replace("-", "").isalnum() and not name[0].isdigit()
    assert dotted == safe_tool_name("files.read/v2") and dotted != safe_tool_name("files_read_v2")


def tools(name: str) -> list[dict[str, Any]]:
    return [{"type": "function", "function": {"name": name, "description": "d", "parameters": SCHEMA}}]


def test_a_gemini_deployment_gets_sanitised_tools_and_callers_get_their_own_names_back(
    gateway: TestClient, fake: FakeOpenAI, new_user: NewUser
) -> None:
    _, headers = new_user()
    original = "files.read/v2"
    fake.script("gemini-2.0-flash", Reply(tool_calls=[call(safe_tool_name(original), {"address": {"street": "x"}})]))
    body = {"model": "gem", "messages": [{"role": "user", "content": "read"}], "tools": tools(original)}
    response = gateway.post("/v1/chat/completions", headers=headers, json=body)
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == original
    sent = fake.requests_for("gemini-2.0-flash")[0].body["tools"][0]["function"]
    assert sent["name"] == safe_tool_name(original)
    params = sent["parameters"]
    assert not {"$schema", "$defs", "$ref"} & keys_anywhere(params)
    assert "additionalProperties" not in params and "additionalProperties" not in params["properties"]["address"]
    assert params["properties"]["additionalProperties"]["type"] == "string"


def test_other_providers_keep_the_full_schema_with_refs_inlined(
    gateway: TestClient, fake: FakeOpenAI, new_user: NewUser
) -> None:
    _, headers = new_user()
    body = {"model": "main", "messages": [{"role": "user", "content": "read"}], "tools": tools("lookup")}
    assert gateway.post("/v1/chat/completions", headers=headers, json=body).status_code == 200
    sent = fake.requests_for("gpt-4o-mini")[0].body["tools"][0]["function"]["parameters"]
    assert sent["additionalProperties"] is False and "$ref" not in json.dumps(sent)


def test_renamed_tools_are_mapped_back_in_streams_and_in_the_history_sent_on(
    gateway: TestClient, fake: FakeOpenAI, new_user: NewUser
) -> None:
    _, headers = new_user()
    original = "mcp.server:do-thing"
    safe = safe_tool_name(original)
    fake.script("gpt-4o-mini", Reply(tool_calls=[call(safe, {})]))
    history = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": original, "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "done"},
    ]  # fmt: skip
    body = {"model": "main", "messages": history, "tools": tools(original), "stream": True}
    with gateway.stream("POST", "/v1/chat/completions", headers=headers, json=body) as response:
        frames = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: {")]
    names = [
        tc["function"]["name"]
        for f in frames
        for ch in f.get("choices", [])
        for tc in (ch.get("delta") or {}).get("tool_calls") or []
        if (tc.get("function") or {}).get("name")
    ]
    assert names == [original]
    sent = fake.requests_for("gpt-4o-mini")[0].body
    assert sent["messages"][1]["tool_calls"][0]["function"]["name"] == safe
