"""A5.48: the logs of a real `isa serve` carry no bearer token, API key, presigned signature or provider key.

One `isa serve --role all` process writes JSON logs (production format, INFO as in production) to a file; files
live on S3 (moto on loopback, real SigV4 presigned URLs); the model node's provider is the scripted fake, which
answers 401 and echoes the key it was sent, as real providers do. The flows run over HTTP, then the whole log is
searched for every secret the flows handled, and the request lines show that each flow really ran.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from isa.auth.settings import AuthSettings
from isa.auth.tokens import mint_access_token
from isa.core.settings import Settings
from tests.support.agent import new_user
from tests.support.deployment import common_env
from tests.support.fake_openai import FAKE_KEY_ENV, FakeOpenAI, Reply, model_section
from tests.support.files import AWS_ENV, REGION, make_bucket, moto_endpoint, png
from tests.support.mcp_servers import open_session, raw_headers, rpc, sse_json
from tests.support.procs import IsaProcess, isa_serve, wait_for

__all__ = ["moto_endpoint"]

PROVIDER_MODEL = "gpt-4o-mini"  # the fake model behind the "main" group of model_section()


@dataclass
class Run:
    """The node, its log file, and every secret the flows handed it."""

    node: IsaProcess
    user: str
    secrets: dict[str, str] = field(default_factory=dict)
    responses: dict[str, httpx.Response] = field(default_factory=dict)
    provider_calls: int = 0

    def log_text(self) -> str:
        return self.node.log_path.read_text(errors="replace")

    def records(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a stray non-JSON line is still searched for secrets, just not parsed
        return out


def _fragments(secret: str) -> list[str]:
    """The secret and the parts of it that must not appear either (a partly masked value still leaks)."""
    parts = [secret]
    if secret.count(".") == 2:  # a JWT: its payload and signature identify and replay it (the header is generic)
        parts += [p for p in secret.split(".")[1:] if len(p) >= 16]
    if secret.startswith(("isa_", "sk-")):
        parts.append(secret.split("_", 1)[-1] if secret.startswith("isa_") else secret.removeprefix("sk-"))
    return parts


def _signature(url: str) -> str:
    values = parse_qs(urlsplit(url).query).get("X-Amz-Signature", [])
    assert len(values) == 1 and len(values[0]) == 64, url
    return values[0]


@pytest.fixture(scope="module")
def run(
    settings: Settings, db_url: str, data_dir: Path, moto_endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Run]:
    provider_key = "sk-fake-a548-" + secrets.token_hex(20)
    user, key = new_user(db_url, settings, credits=50)
    env = {
        **common_env(db_url),
        **AWS_ENV,
        "ISA_LOGGING__FORMAT": "json",
        "ISA_LOGGING__LEVEL": "INFO",
        "ISA_STORAGE__BACKEND": "s3",
        "ISA_STORAGE__BUCKET": make_bucket(moto_endpoint),
        "ISA_STORAGE__ENDPOINT_URL": moto_endpoint,
        "ISA_STORAGE__REGION": REGION,
        "ISA_STORAGE__ADDRESSING_STYLE": "path",
        "ISA_FILES__SWEEP_INTERVAL_SECONDS": "0",
        FAKE_KEY_ENV: provider_key,
    }
    with FakeOpenAI() as fake:
        env["ISA_MODEL"] = "@json " + json.dumps(model_section(fake, fallbacks={}, num_retries=0))
        with isa_serve("all", data_dir, env=env, log_dir=tmp_path_factory.mktemp("a548")) as node:
            node.wait_ready(120)
            out = Run(node, user, {"api key": key, "provider key": provider_key})
            _flows(out, fake, key, provider_key)
            # A request's line is written after its response has gone out, so the client can be ahead of the log:
            # wait (bounded) for the last flow's line; the flows ran one after another, so theirs are written too.
            wait_for(lambda: ("POST", "/v1/chat/completions") in _requests(out), timeout=10)
            yield out


def _flows(run: Run, fake: FakeOpenAI, key: str, provider_key: str) -> None:
    base, files = run.node.url, f"/api/v1/users/{run.user}/files"
    r = run.responses
    with httpx.Client(base_url=base, timeout=30, follow_redirects=False) as http:
        # An API key exchanged for an access token (the minted JWT is then used like any bearer).
        r["exchange"] = http.post("/api/v1/auth/token", headers={"Authorization": f"Bearer {key}"}, json={})
        jwt = r["exchange"].json()["access_token"]
        run.secrets["minted jwt"] = jwt
        # A well-formed token signed with the wrong secret: refused (token_rejected), and never logged.
        forged, _ = mint_access_token(
            AuthSettings(token_secret="not-the-nodes-secret-" + "x" * 32), run.user, ["read"], None
        )
        run.secrets["bad jwt"] = forged
        r["bad jwt"] = http.get(files, headers={"Authorization": f"Bearer {forged}"})
        r["bad jwt mcp"] = http.post("/mcp", json=rpc("initialize", {}), headers=raw_headers(forged))
        # Credentials in the query string are ignored (401), and the query string is not logged either.
        r["query token"] = http.get(files, params={"access_token": jwt, "api_key": key})
        # Files on S3: an upload, a presigned POST form, a download redirect to a presigned GET URL.
        r["upload"] = http.post(files, files={"file": ("a.png", png(4096), "image/png")}, headers=_bearer(key))
        file_id = r["upload"].json()["data"]["file_id"]
        r["download"] = http.get(f"{files}/{file_id}/download", headers=_bearer(jwt))
        run.secrets["presigned GET signature"] = _signature(r["download"].headers["location"])
        run.secrets["presigned GET url"] = r["download"].headers["location"]
        presign = {"filename": "b.png", "content_type": "image/png", "size_bytes": 4096}
        r["presign upload"] = http.post(f"{files}/presign-upload", json=presign, headers=_bearer(key))
        fields = r["presign upload"].json()["data"]["upload"]["fields"]
        run.secrets["presigned POST signature"] = fields["x-amz-signature"]
        # An MCP tool call with the API key (and the key pasted into the tool's arguments, as users do).
        session = open_session(base, key)
        call = rpc("tools/call", {"name": "format_json", "arguments": {"content": json.dumps({"k": key})}}, id_=2)
        r["mcp call"] = http.post("/mcp", json=call, headers=raw_headers(key, session))
        # A model call the provider refuses with 401, echoing the key it got back in its error message.
        fake.script(PROVIDER_MODEL, Reply.error(401, message=f"Incorrect API key provided: {provider_key}."))
        body = {"model": "main", "messages": [{"role": "user", "content": "hello"}]}
        r["model 401"] = http.post("/v1/chat/completions", json=body, headers=_bearer(jwt))
        run.provider_calls = fake.count(PROVIDER_MODEL)


def _requests(run: Run) -> set[tuple[str, str]]:
    return {(x.get("method"), x.get("path")) for x in run.records() if x.get("event") == "request"}


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_the_flows_ran_and_each_left_its_request_line(run: Run) -> None:
    r = run.responses
    statuses = {name: response.status_code for name, response in r.items()}
    assert statuses == {
        "exchange": 200,
        "bad jwt": 401,
        "bad jwt mcp": 401,
        "query token": 401,
        "upload": 201,
        "download": 302,
        "presign upload": 201,
        "mcp call": 200,
        "model 401": 502,
    }, {n: x.text[:200] for n, x in r.items()}
    assert r["model 401"].json()["error"]["code"] == "upstream_auth"
    assert run.provider_calls == 1  # the provider really was called, with the key
    assert "formatted" in json.dumps(sse_json(r["mcp call"].text)[0]["result"])
    lines = {(x.get("method"), x.get("path"), x.get("status")) for x in run.records() if x.get("event") == "request"}
    files = f"/api/v1/users/{run.user}/files"
    for expected in [
        ("POST", "/api/v1/auth/token", 200),
        ("GET", files, 401),
        ("POST", "/mcp", 401),
        ("POST", files, 201),
        ("POST", f"{files}/presign-upload", 201),
        ("POST", "/mcp", 200),
        ("POST", "/v1/chat/completions", 502),
    ]:
        assert expected in lines, (expected, sorted(map(str, lines)))
    assert any(m == "GET" and p.endswith("/download") and s == 302 for m, p, s in lines)


def test_each_refused_token_left_one_token_rejected_record_with_its_reason(run: Run) -> None:
    rejected = [x for x in run.records() if x.get("event") == "token_rejected"]
    # The forged token was presented twice (files, /mcp); each attempt is one record with a reason (ASVS 16.3).
    assert len(rejected) == 2, rejected
    assert all(x.get("reason") for x in rejected)


def test_no_key_token_signature_or_provider_key_appears_in_the_logs(run: Run) -> None:
    text = run.log_text()
    assert len(run.records()) >= 10  # the log is JSON lines and has the flows in it (the control above)
    leaks = [f"{name}: {part[:10]}..." for name, secret in run.secrets.items() for part in _fragments(secret)
             if part in text]  # fmt: skip
    assert leaks == [], f"secrets in the log: {leaks}"
    assert "X-Amz-Signature=" not in text.replace("X-Amz-Signature=***", "")
    assert "sig=" not in text.replace("sig=***", "")
