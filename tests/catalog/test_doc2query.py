"""doc2query: with a model configured, an import asks the model node for example requests per tool (issue 24).

The mcp node's `services.model_url` points at the scripted OpenAI-wire fake; imports go through
`POST /catalog/import` (or the `isa catalog import` command, configured the same way) and discovery through
`POST /discover`, as a user would.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from isa.app import create_app
from isa.core.settings import ServicesSettings, Settings
from tests.support.auth import create_key
from tests.support.fake_openai import FakeOpenAI, Reply
from tests.support.mcp_servers import serve_asgi

MODEL = "doc2query-writer"
SECRET = "doc2query-test-secret-0123456789abcdef0123"
WRITER = "doc2query-account"
# Tool texts that say nothing about what users will ask: only the generated requests can connect them.
TOOLS = [
    {"name": "zq_probe", "description": "Reads channel 7 of the unit."},
    {"name": "zq_relay", "description": "Toggles relay output B."},
]
RAIN = "will it rain in Lisbon tomorrow afternoon?"
ANSWER = {
    "tools": {
        "1": [RAIN, "do I need an umbrella in Lisbon tomorrow", "weather forecast for Lisbon"],
        "2": ["switch on the garden lights", "turn the porch lamp off"],
    }
}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(scope="module")
def node(settings: Settings, db_url: str, fake: FakeOpenAI) -> Iterator[tuple[str, str, str]]:
    raw = copy.deepcopy(settings.raw)
    raw.setdefault("auth", {})["token_secret"] = SECRET
    raw["catalog"] = {
        **raw.get("catalog", {}),
        "doc2query_model": MODEL,
        "doc2query_user": WRITER,
        "doc2query_timeout_seconds": 2.0,
        "doc2query_budget_seconds": 5.0,
    }
    on = settings.model_copy(update={"raw": raw, "services": ServicesSettings(model_url=fake.url)})
    admin = create_key(db_url, settings, "doc2query-admin", "admin")
    reader = create_key(db_url, settings, "doc2query-reader", "read")
    with serve_asgi(create_app(on, "mcp", database_url=db_url)) as url:
        yield url, admin, reader


def _import(url: str, key: str, server: str, tools: list[dict[str, Any]]) -> dict[str, Any]:
    body = [{"name": server, "url": "http://127.0.0.1:9/mcp", "tools": tools}]
    response = httpx.post(url + "/catalog/import", json=body, headers={"X-API-Key": key}, timeout=60)
    assert response.status_code == 201, response.text
    [report] = response.json()["imported"]
    return report  # type: ignore[no-any-return]


def _first_tool(url: str, key: str, request: str) -> str | None:
    body = {"request": request, "max_results": {"tools": 3, "prompts": 0, "resources": 0}}
    response = httpx.post(url + "/discover", json=body, headers={"X-API-Key": key}, timeout=30)
    assert response.status_code == 200, response.text
    tools = response.json()["capabilities"]["tools"]
    return tools[0]["name"] if tools else None


def test_generated_requests_make_a_tool_findable_and_a_failing_model_never_stops_an_import(
    node: tuple[str, str, str], fake: FakeOpenAI
) -> None:
    url, admin, reader = node
    fake.script(MODEL, Reply.error(500))
    report = _import(url, admin, "d2q-weather", TOOLS)
    assert report["tools"] == 2 and report["generated"] == 0
    assert _first_tool(url, reader, RAIN) != "d2q-weather__zq_probe"

    fake.script(MODEL, Reply(text=json.dumps(ANSWER)))
    calls = fake.count(MODEL)
    report = _import(url, admin, "d2q-weather", TOOLS)  # the failed round was not cached: asked again
    assert fake.count(MODEL) == calls + 1 and report["generated"] == 5
    assert _first_tool(url, reader, RAIN) == "d2q-weather__zq_probe"
    assert _first_tool(url, reader, "switch on the garden lights") == "d2q-weather__zq_relay"

    request = fake.requests_for(MODEL)[-1]
    prompt = request.body["messages"][-1]["content"]
    assert "Reads channel 7 of the unit." in prompt and "Toggles relay output B." in prompt
    assert "untrusted" in request.body["messages"][0]["content"]
    # The answer is bounded to what two tools' five requests need: a model that runs on stops there.
    assert 300 <= request.body["max_tokens"] <= 1_000
    token = request.headers["authorization"].removeprefix("Bearer ")
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], options={"verify_aud": False})
    assert claims["sub"] == WRITER  # billed to the configured account, never with an admin's key
    assert admin not in request.headers.values()


def test_unchanged_tools_are_never_asked_again_and_a_changed_one_is(
    node: tuple[str, str, str], fake: FakeOpenAI
) -> None:
    url, admin, reader = node
    # The cache is per tool text, not per server: the first test's tools are known already.
    calls = fake.count(MODEL)
    report = _import(url, admin, "d2q-cache", TOOLS)
    assert fake.count(MODEL) == calls and report["generated"] == 5
    report = _import(url, admin, "d2q-cache", TOOLS)
    assert fake.count(MODEL) == calls and report["generated"] == 5

    changed = [{**TOOLS[0], "description": "Reads channel 8 of the unit."}, TOOLS[1]]
    fake.script(MODEL, Reply(text=json.dumps({"tools": {"1": ["how bright is the sun in Faro today"]}})))
    report = _import(url, admin, "d2q-cache", changed)
    request = fake.requests_for(MODEL)[-1]
    assert fake.count(MODEL) == calls + 1
    assert "channel 8" in request.body["messages"][-1]["content"]
    assert "relay output B" not in request.body["messages"][-1]["content"]  # only the changed tool is asked
    assert report["generated"] == 1 + 2
    # The old tool text's requests left with it; the new one's vote.
    assert _first_tool(url, reader, "how bright is the sun in Faro today") == "d2q-cache__zq_probe"


def test_a_slow_or_malformed_model_is_cut_off_and_the_import_goes_on(
    node: tuple[str, str, str], fake: FakeOpenAI
) -> None:
    url, admin, _ = node
    fresh = [{**t, "description": t["description"] + " Slow edition."} for t in TOOLS]  # not in the cache
    fake.script(MODEL, Reply(text=json.dumps(ANSWER), delay=10))
    started = time.monotonic()
    report = _import(url, admin, "d2q-slow", fresh)
    assert report["tools"] == 2 and report["generated"] == 0
    assert time.monotonic() - started < 9  # the 2 s call timeout, not the model's 10 s

    fake.script(MODEL, Reply(text="Here are some ideas: 1. check the weather"))
    report = _import(url, admin, "d2q-prose", fresh)
    assert report["tools"] == 2 and report["generated"] == 0


def test_isa_catalog_import_generates_requests_through_the_model_node_too(
    node: tuple[str, str, str], fake: FakeOpenAI, db_url: str, data_dir: Path, tmp_path: Path
) -> None:
    url, _, reader = node
    meter = "how much electricity did the house use today"
    tools = [{"name": "zq_meter", "description": "Reads counter 3 of the panel."}]
    path = tmp_path / "servers.json"
    path.write_text(json.dumps([{"name": "d2q-cli", "url": "http://127.0.0.1:9/mcp", "tools": tools}]))
    assert _first_tool(url, reader, meter) != "d2q-cli__zq_meter"
    fake.script(MODEL, Reply(text=json.dumps({"tools": {"1": [meter, "power usage of my home"]}})))
    calls = fake.count(MODEL)
    env = {
        **os.environ,
        "ISA_DATA_DIR": str(data_dir),
        "ISA_ENV": "test",
        "ISA_DATABASE__URL": db_url,
        "ISA_DATABASE__AUTO_MIGRATE": "false",
        "ISA_AUTH__TOKEN_SECRET": SECRET,
        "ISA_SERVICES__MODEL_URL": fake.url,
        "ISA_CATALOG__DOC2QUERY_MODEL": MODEL,
        "ISA_CATALOG__DOC2QUERY_USER": WRITER,
        "ISA_CATALOG__DOC2QUERY_BUDGET_SECONDS": "20",
    }
    done = subprocess.run(
        [sys.executable, "-m", "isa", "catalog", "import", str(path), "--json"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    [report] = json.loads(done.stdout)
    assert report["tools"] == 1 and report["generated"] == 2
    assert fake.count(MODEL) == calls + 1
    request = fake.requests_for(MODEL)[-1]
    assert "Reads counter 3 of the panel." in request.body["messages"][-1]["content"]
    token = request.headers["authorization"].removeprefix("Bearer ")
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], options={"verify_aud": False})
    assert claims["sub"] == WRITER
    # The node ranks with what the command stored: the generated request now finds the tool.
    assert _first_tool(url, reader, meter) == "d2q-cli__zq_meter"

    # Without a reachable model node the command says so and imports anyway.
    del env["ISA_SERVICES__MODEL_URL"]
    done = subprocess.run(
        [sys.executable, "-m", "isa", "catalog", "import", str(path)],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "no model node is reachable" in done.stderr and "d2q-cli: 1 tools" in done.stdout
