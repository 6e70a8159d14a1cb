"""The one-machine path of issue 14: `isa serve --role all` on a fresh data folder, no token secret, no provider
key, a keyless local OpenAI-compatible server (the fake) named by ISA_MODEL__LOCAL_URL.

A new user made by `isa keys create` has credits, chats with a streamed answer, and after the local server is
gone the next chat ends in an error event and costs nothing. Role model on the same URL serves the local model.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.agent import chat
from tests.support.browser import CHROMIUM, chromium
from tests.support.fake_openai import FakeOpenAI, Reply
from tests.support.procs import IsaProcess, isa_serve

HOSTILE_MARKDOWN = """| city | high |
|---|---|
| Paris | 21 |

Some **bold** text.

```python
print(1)
```

<img src="x" onerror="window.__pwned = 1"> [click](javascript:window.__pwned=2)

<script>window.__pwned = 3</script>
"""
PROVIDER_KEYS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "REPLICATE_API_KEY", "ISA_AUTH__TOKEN_SECRET")


def machine_env(fake: FakeOpenAI, db_url: str, data_dir: Path) -> dict[str, str]:
    """A developer's shell: development, a fresh data folder, the local server's URL, and no secret or key."""
    env = {k: v for k, v in os.environ.items() if k not in PROVIDER_KEYS and not k.startswith("ISA_")}
    return {
        **env,
        "ISA_ENV": "development",
        "ISA_DATA_DIR": str(data_dir),
        "ISA_DATABASE__URL": db_url,
        "ISA_MODEL__LOCAL_URL": fake.base_url,
        "ISA_LOGGING__LEVEL": "WARNING",
    }


def isa_cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "isa", *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.fixture(scope="module")
def local_model() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(models=["fake", "fake-embed"]) as fake:
        yield fake


@pytest.fixture(scope="module")
def machine(tmp_path_factory: pytest.TempPathFactory, local_model: FakeOpenAI, db_url: str) -> Iterator[dict[str, Any]]:
    data_dir = tmp_path_factory.mktemp("fresh-machine")
    env = machine_env(local_model, db_url, data_dir)
    with isa_serve("all", data_dir, env=env) as node:
        node.wait_ready(120)
        yield {"node": node, "env": env, "data_dir": data_dir}


def balance(node: IsaProcess, key: str) -> float:
    response = node.get("/api/v1/users/me/credits/balance", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    return float(response.json()["data"]["balance"])


def test_the_first_start_keeps_a_generated_token_secret_and_prints_how_to_sign_in_once(
    machine: dict[str, Any],
) -> None:
    secret = machine["data_dir"] / "auth" / "token_secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600 and len(secret.read_text().strip()) >= 32
    log = machine["node"].log_path.read_text()
    printed = re.findall(r"\b(isa_[A-Za-z0-9_-]{20,})\b", log)
    assert len(printed) == 1 and f"http://127.0.0.1:{machine['node'].port}/" in log
    assert secret.read_text().strip() not in log
    assert balance(machine["node"], printed[0]) > 0  # the local admin starts with the default plan's credits


@pytest.mark.skipif(not shutil.which(CHROMIUM), reason="Debian chromium is not installed")
def test_the_chat_page_in_chromium_signs_in_a_cli_user_and_streams_the_local_models_answer(
    machine: dict[str, Any], local_model: FakeOpenAI
) -> None:
    from playwright.sync_api import expect

    user = f"page-{uuid.uuid4().hex[:8]}"
    key = json.loads(isa_cli(machine["env"], "keys", "create", "--user", user, "--scope", "write", "--json"))["key"]
    try:
        with chromium() as browser:
            page = browser.new_page()
            page.goto(machine["node"].url + "/")
            expect(page.locator("#key-hint")).to_contain_text("isa keys create")
            page.get_by_label("API key or access token").fill(key)
            page.get_by_role("button", name="Sign in").click()
            expect(page.locator("#who-name")).to_contain_text(user)
            expect(page.locator("#model-warning")).to_be_hidden()
            page.get_by_label("Message").fill("Say hello.")
            page.keyboard.press("Enter")
            expect(page.locator("#messages")).to_contain_text("fake reply to: Say hello.")
            # Issue 27's check: a Markdown answer with hostile HTML renders, and nothing from it runs.
            # times=4: the node's after-turn calls (memory, title) may take the first replies from this queue.
            local_model.script("fake", Reply(text=HOSTILE_MARKDOWN, chunks=7, times=4))
            page.get_by_label("Message").fill("Show me a table.")
            page.keyboard.press("Enter")
            answer = page.locator("#messages .assistant").last
            expect(answer.locator("table td").first).to_have_text("Paris")
            expect(answer.locator("strong")).to_have_text("bold")
            expect(answer.locator("pre code")).to_contain_text("print(1)")
            assert page.locator("img[onerror], a[href^='javascript:'], #messages script").count() == 0
            assert page.evaluate("() => window.__pwned") is None
    finally:
        local_model.reset()  # the later tests expect the default echo


def test_a_new_user_from_the_cli_chats_with_the_local_model_and_a_failed_turn_costs_nothing(
    machine: dict[str, Any], local_model: FakeOpenAI
) -> None:
    node, env = machine["node"], machine["env"]
    user = f"new-{uuid.uuid4().hex[:8]}"
    key = json.loads(isa_cli(env, "keys", "create", "--user", user, "--scope", "write", "--json"))["key"]
    before = balance(node, key)
    assert before > 0

    answer = chat(node.url, key, {"message": "Say hello."})
    assert answer.status == 200, answer.body
    assert answer.text == "fake reply to: Say hello."
    assert answer.of("end")[-1]["outcome"] == "completed" and answer.done
    assert local_model.requests_for("fake", "/v1/chat/completions")
    assert (
        not local_model.requests_for("fake", "/v1/chat/completions")[0]
        .headers.get("authorization", "")
        .startswith("Bearer isa_")
    )  # the user's key never reaches the model server
    charged = balance(node, key)
    assert charged < before

    local_model.stop()
    failed = chat(node.url, key, {"message": "Say hello again."})
    assert failed.status == 200 and failed.error_code in ("model_unavailable", "upstream_error", "upstream_unavailable")
    billing = failed.of("billing")[-1]["content"]
    assert billing["charged"] is False and billing["charge_reason"] == "failed_before_model_output"
    assert balance(node, key) == charged


def test_the_model_role_serves_the_local_model_under_its_own_name(
    tmp_path: Path, db_url: str, machine: dict[str, Any]
) -> None:
    with FakeOpenAI(models=["fake", "fake-embed"]) as fake:
        env = {**machine_env(fake, db_url, tmp_path), "ISA_ENV": "test", "ISA_AUTH__TOKEN_SECRET": "m" * 40}
        user = f"model-{uuid.uuid4().hex[:8]}"
        key = json.loads(isa_cli(env, "keys", "create", "--user", user, "--scope", "write", "--json"))["key"]
        with isa_serve("model", tmp_path, env=env) as node:
            node.wait_ready(120)
            response = httpx.post(
                node.url + "/v1/chat/completions",
                json={"model": "fake", "messages": [{"role": "user", "content": "Hi"}]},
                headers={"Authorization": f"Bearer {key}"},
                timeout=30,
            )
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "fake reply to: Hi"
