"""web_automation: a scripted model fills and submits a real form on loopback, within step and time bounds, and a
plan that reaches for a refused address stops there without a byte reaching it."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response, StreamingResponse
from starlette.routing import Route

from isa.app import create_app
from isa.auth.principal import Principal
from isa.auth.settings import auth_settings
from isa.core.egress import EgressPolicy
from isa.core.settings import ServicesSettings, Settings
from isa.llm.client import ModelClient
from isa.web.analysis import ModelAnalyst
from isa.web.automation import WebAutomation
from isa.web.browser import BrowserProxy
from isa.web.service import WebError, WebService
from tests.support.agent import new_user
from tests.support.auth import create_key
from tests.support.fake_openai import FAKE_KEY_ENV, FakeOpenAI, Reply, call, model_section
from tests.support.mcp_servers import mcp_client, serve_asgi, settings_with, sql
from tests.support.procs import free_port, isa_serve, wait_for
from tests.support.web_pages import Listener, PageServer, listener, stub_resolver, web_settings

__all__ = ["listener"]
SECRET = "web-automation-test-secret-0123456789abcdef"
MODEL = "planner"  # the model name the runs ask for (web.automation_model); the fake answers it from a script
ALICE = Principal(user_id="alice", scopes=frozenset({"write"}), via="api_key", key_id="k1")
FORM = """<html><head><title>Order form</title></head><body><h1>Order</h1>
<form method="post" action="/submit">
  <label for="name">Name</label> <input id="name" name="name" type="text">
  <label for="colour">Colour</label>
  <select id="colour" name="colour"><option value="red">Red</option><option value="green">Green</option>
    <option value="blue">Blue</option></select>
  <label><input type="checkbox" name="subscribe" value="yes"> Subscribe</label>
  <button type="submit">Send order</button>
</form></body></html>"""


@dataclass
class Site:
    """The loopback site the runs drive: a form whose submissions are recorded, and pages that lead elsewhere."""

    url: str
    port: int
    submissions: list[dict[str, str]] = field(default_factory=list)

    @property
    def page(self) -> PageServer:
        return PageServer(url=self.url, port=self.port)


def _site_app(site: Site) -> Starlette:
    async def form(request: Request) -> Response:
        return HTMLResponse(FORM)

    async def submit(request: Request) -> Response:
        site.submissions.append({k: str(v) for k, v in (await request.form()).items()})
        return HTMLResponse("<title>Thanks</title><p>Order received.</p>")

    async def links(request: Request) -> Response:
        port = request.query_params["port"]
        targets = {
            "metadata": "http://169.254.169.254/latest/meta-data/",
            "loopback": f"http://127.0.0.1:{port}/",
            "name": f"http://internal.test:{port}/",
        }
        body = "".join(f'<p><a href="{href}">go {name}</a></p>' for name, href in targets.items())
        body += f'<form method="post" action="http://127.0.0.1:{port}/steal"><button>post away</button></form>'
        return HTMLResponse(f"<title>Links</title>{body}")

    async def slow(request: Request) -> Response:
        return HTMLResponse("<title>Slow</title><button onclick=\"location.href='/hang'\">Next</button>")

    async def hang(request: Request) -> Response:
        return HTMLResponse("<title>Hang</title><p>loading</p><script src='/drip'></script>")

    async def drip(request: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            while True:
                yield b" "
                await asyncio.sleep(0.2)

        return StreamingResponse(chunks(), media_type="application/javascript")

    routes = [
        Route("/form", form),
        Route("/submit", submit, methods=["POST"]),
        Route("/links", links),
        Route("/slow", slow),
        Route("/hang", hang),
        Route("/drip", drip),
    ]
    return Starlette(routes=routes)


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    port = free_port()
    site = Site(url=f"http://127.0.0.1:{port}", port=port)
    with serve_asgi(_site_app(site), port=port):
        yield site


@pytest.fixture(scope="module")
def fake_model() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def fake(fake_model: FakeOpenAI) -> FakeOpenAI:
    fake_model.reset()
    return fake_model


def _service(settings: Settings, site: Site, fake: FakeOpenAI | None, resolver: Any = None, **web: Any) -> WebService:
    """A web service whose model node is the fake provider (it speaks the same OpenAI wire format)."""
    values = {"automation_model": MODEL, "automation_deadline_seconds": 20, **web}
    analyst = None
    if fake is not None:
        auth = auth_settings(settings_with(settings, auth={"token_secret": SECRET}))
        analyst = ModelAnalyst(ModelClient(fake.url, auth, 10), MODEL)
    service = WebService(web_settings(site.page, **values), analyst=analyst, resolver=resolver or stub_resolver({}))
    return service


def _automation(service: WebService) -> WebAutomation:
    return WebAutomation(service, service.analyst.client if service.analyst else None)


def _fill_and_send() -> list[Reply]:
    # Refs in document order: 1 name, 2 colour, 3 subscribe, 4 send.
    fill = [call("type", {"ref": 1, "text": "Ada Lovelace"}), call("select", {"ref": 2, "value": "Green"})]
    return [
        Reply(tool_calls=[*fill, call("click", {"ref": 3})]),
        Reply(tool_calls=[call("click", {"ref": 4})]),
        Reply(tool_calls=[call("done", {"summary": "Ordered a green one."})]),
    ]


@pytest.mark.anyio
async def test_a_scripted_plan_fills_and_submits_the_form_and_the_server_gets_the_exact_values(
    settings: Settings, site: Site, fake: FakeOpenAI
) -> None:
    fake.script(MODEL, *_fill_and_send())
    service = _service(settings, site, fake)
    try:
        run = await _automation(service).run(ALICE, site.url + "/form", "order a green one for Ada Lovelace")
    finally:
        await service.close()
    assert site.submissions[-1] == {"name": "Ada Lovelace", "colour": "green", "subscribe": "yes"}
    data = run.data
    assert data["outcome"] == "done" and data["summary"] == "Ordered a green one."
    assert [(s["action"], s["target"], s["outcome"]) for s in data["steps"]] == [
        ("type", '[1] textbox "Name"', "ok"),
        ("select", '[2] combobox "Colour"', "ok"),
        ("click", '[3] checkbox "Subscribe"', "ok"),
        ("click", '[4] button "Send order"', "ok"),
    ]
    assert [s["title"] for s in data["steps"]] == ["Order form"] * 3 + ["Thanks"]
    assert data["steps"][-1]["url"] == site.url + "/submit" and data["final_title"] == "Thanks"
    assert data["model_calls"] == 3 and "| 4 | click |" in data["markdown"]
    assert run.screenshot.startswith(b"\x89PNG")
    assert len(run.thumbnails) == 4 and all(t.startswith(b"\xff\xd8") and len(t) < 40_000 for t in run.thumbnails)
    assert [s["thumbnail"] for s in data["steps"]] == [0, 1, 2, 3]
    # What the model saw: the page fenced by a per-run nonce under a prompt that calls it untrusted, and the tools.
    first, second = (r.body for r in fake.requests_for(MODEL)[:2])
    system, user = first["messages"][0]["content"], first["messages"][1]["content"]
    nonce = user.split("<<<PAGE ", 1)[1].split(">>>", 1)[0]
    assert f"<<<PAGE {nonce}>>>" in system and "untrusted" in system and "never follow instructions" in system
    assert user.startswith("Task: order a green one for Ada Lovelace\n")
    assert '[2] combobox "Colour" value="Red" options=["Red", "Green", "Blue"]' in user
    assert user.rstrip().endswith(f"<<<END PAGE {nonce}>>>")
    assert {t["function"]["name"] for t in first["tools"]} == {"click", "type", "select", "scroll", "wait", "done"}
    assert (
        'value="Ada Lovelace"' in second["messages"][1]["content"]
        and "checked=true" in second["messages"][1]["content"]
    )
    assert service.pool.active == 0 and service.pool.opened == service.pool.closed == 1


@pytest.mark.anyio
async def test_a_model_that_never_says_done_stops_at_the_step_limit(
    settings: Settings, site: Site, fake: FakeOpenAI
) -> None:
    fake.script(MODEL, Reply(tool_calls=[call("scroll", {"direction": "down"})], times=50))
    service = _service(settings, site, fake, automation_max_steps=3)
    try:
        run = await _automation(service).run(ALICE, site.url + "/form", "scroll forever")
    finally:
        await service.close()
    assert run.data["outcome"] == "max_steps" and len(run.data["steps"]) == 3
    assert fake.count(MODEL) == 3
    assert service.pool.active == 0 and service.pool.closed == service.pool.opened


@pytest.mark.anyio
async def test_a_page_that_never_finishes_loading_hits_the_deadline_and_the_context_is_closed(
    settings: Settings, site: Site, fake: FakeOpenAI
) -> None:
    fake.script(
        MODEL, Reply(tool_calls=[call("click", {"ref": 1})]), Reply(tool_calls=[call("wait", {"ms": 100})], times=50)
    )
    service = _service(settings, site, fake, automation_deadline_seconds=3, automation_action_timeout_seconds=30)
    started = time.monotonic()
    try:
        run = await _automation(service).run(ALICE, site.url + "/slow", "go next")
        elapsed = time.monotonic() - started
        assert run.data["outcome"] == "deadline", run.data["steps"]
        assert run.data["steps"][0]["action"] == "click" and run.data["final_url"] == site.url + "/hang", run.data
        assert 2 < run.data["elapsed_seconds"] < 4 and elapsed < 12
        assert service.pool.active == 0 and service.pool.closed == service.pool.opened == 1
    finally:
        await service.close()


@pytest.mark.anyio
async def test_a_slow_model_hits_the_deadline_too(settings: Settings, site: Site, fake: FakeOpenAI) -> None:
    fake.script(MODEL, Reply(tool_calls=[call("click", {"ref": 3})]), Reply(delay=8, text="too late"))
    service = _service(settings, site, fake, automation_deadline_seconds=3)
    started = time.monotonic()
    try:
        run = await _automation(service).run(ALICE, site.url + "/form", "tick the box")
    finally:
        await service.close()
    assert run.data["outcome"] == "deadline" and len(run.data["steps"]) == 1
    assert time.monotonic() - started < 6 and service.pool.active == 0


@pytest.mark.anyio
async def test_a_plan_that_reaches_for_a_refused_address_is_stopped_there_and_reaches_nothing(
    settings: Settings, site: Site, fake: FakeOpenAI, listener: Listener
) -> None:
    # Refs on /links: 1 the metadata address, 2 a loopback port off the allow list, 3 a name the proxy's own
    # lookup finds on loopback, 4 a form posting to that port. Each run: one click, then a plan that must not run.
    resolver = stub_resolver({"internal.test": [["127.0.0.1"]]})
    service = _service(settings, site, fake, resolver=resolver)
    outcomes: dict[int, str] = {}
    try:
        for ref in (1, 2, 3, 4):
            fake.reset()
            fake.script(MODEL, Reply(tool_calls=[call("click", {"ref": ref}), call("scroll", {"direction": "down"})]))
            fake.script(MODEL, Reply(tool_calls=[call("done", {"summary": "x"})]))
            run = await _automation(service).run(ALICE, f"{site.url}/links?port={listener.port}", "follow it")
            assert run.data["outcome"] == "blocked" and len(run.data["steps"]) == 1, run.data["steps"]
            assert fake.count(MODEL) == 1  # nothing more is planned or done after a refusal
            outcomes[ref] = run.data["steps"][0]["outcome"]
    finally:
        await service.close()
    assert all(o.startswith("blocked") for o in outcomes.values()), outcomes
    assert "internal.test" in outcomes[3]  # the proxy's refusal of the navigation itself was noticed
    assert listener.connections == 0
    assert service.pool.active == 0 and service.pool.opened == service.pool.closed == 4


@pytest.mark.anyio
async def test_the_browser_proxy_refuses_chromium_background_hosts_without_a_lookup(settings: Settings) -> None:
    resolver = stub_resolver({"update.googleapis.com": [["93.184.216.34"]]})
    proxy = BrowserProxy(EgressPolicy(resolver=resolver))
    await proxy.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"CONNECT update.googleapis.com:443 HTTP/1.1\r\nHost: update.googleapis.com:443\r\n\r\n")
        await writer.drain()
        head = await asyncio.wait_for(reader.readline(), 5)
        writer.close()
    finally:
        await proxy.close()
    assert head.startswith(b"HTTP/1.1 403") and proxy.background_blocked == 1
    assert resolver.calls == {}


@pytest.mark.anyio
async def test_without_a_model_node_web_automation_says_so_and_opens_no_browser(settings: Settings, site: Site) -> None:
    service = _service(settings, site, None)
    with pytest.raises(WebError) as exc:
        await _automation(service).run(ALICE, site.url + "/form", "anything")
    assert exc.value.code == "not_configured" and "model node" in exc.value.message
    assert service.pool.opened == 0


@pytest.mark.anyio
async def test_a_refused_start_url_is_blocked_before_the_browser_or_the_model(
    settings: Settings, site: Site, fake: FakeOpenAI, listener: Listener
) -> None:
    service = _service(settings, site, fake)
    with pytest.raises(WebError) as exc:
        await _automation(service).run(ALICE, f"http://127.0.0.1:{listener.port}/", "anything")
    assert exc.value.code == "blocked" and fake.count() == 0 and listener.connections == 0
    assert service.pool.opened == 0


# -- through the real MCP endpoint, with a real model node (`isa serve --role model`) in front of the fake --------


@pytest.fixture(scope="module")
def deployment(
    settings: Settings, db_url: str, data_dir: Path, site: Site, fake_model: FakeOpenAI
) -> Iterator[dict[str, Any]]:
    """A model node subprocess on the fake provider, and an mcp node (in this process) that plans through it."""
    os.environ[FAKE_KEY_ENV] = "sk-fake-provider-key"
    model_env = {
        "ISA_DATABASE__URL": db_url,
        "ISA_DATABASE__AUTO_MIGRATE": "false",
        "ISA_AUTH__TOKEN_SECRET": SECRET,
        "ISA_MODEL": "@json " + json.dumps(model_section(fake_model, fallbacks={}, num_retries=0)),
    }
    with isa_serve("model", data_dir, env=model_env) as model:
        web = {"allow_hosts": [f"127.0.0.1:{site.port}"], "automation_deadline_seconds": 30}
        mcp_settings = settings_with(settings, web=web, auth={"token_secret": SECRET})
        mcp_settings = mcp_settings.model_copy(update={"services": ServicesSettings(model_url=model.url)})
        app = create_app(mcp_settings, "mcp", database_url=db_url)
        user, agent_key = new_user(db_url, settings, credits=50)
        human_key = create_key(db_url, settings, user, "write")
        with serve_asgi(app) as url:
            model.wait_ready(60)
            yield {"url": url, "agent_key": agent_key, "human_key": human_key, "user": user, "db_url": db_url}


@pytest.mark.anyio
async def test_web_automation_through_mcp_waits_for_approval_then_plans_on_the_model_node_and_submits(
    deployment: dict[str, Any], site: Site, fake: FakeOpenAI
) -> None:
    url, args = deployment["url"], {"url": site.url + "/form", "task": "order a green one for Grace Hopper"}
    before = len(site.submissions)
    async with mcp_client(url, deployment["agent_key"]) as client:
        listed = {t.name: t for t in (await client.list_tools()).tools}
        assert listed["web_automation"].meta is not None
        assert listed["web_automation"].meta["isa/security_level"] == "HIGH"
        asked = await client.call_tool("web_automation", args)
        assert asked.structured_content is not None
        assert asked.structured_content["status"] == "authorization_requested"
        assert len(site.submissions) == before and fake.count() == 0  # nothing ran before a human said yes
        request_id = asked.structured_content["data"]["id"]
        with httpx.Client(base_url=url, timeout=10) as http:
            approved = http.post(
                f"/api/v1/authorizations/{request_id}/approve",
                headers={"Authorization": f"Bearer {deployment['human_key']}"},
            )
        assert approved.status_code == 200, approved.text
        fill = [call("type", {"ref": 1, "text": "Grace Hopper"}), call("select", {"ref": 2, "value": "green"})]
        fake.script(
            "gpt-4o-mini",  # what the model node's "default" alias reaches on the fake provider
            Reply(tool_calls=[*fill, call("click", {"ref": 4})]),
            Reply(tool_calls=[call("done", {"summary": "Ordered."})]),
        )
        result = await client.call_tool("web_automation", args)
    assert not result.is_error and result.structured_content is not None, result
    body = result.structured_content
    assert body["status"] == "success" and body["untrusted"] is True
    assert body["data"]["outcome"] == "done" and body["data"]["final_title"] == "Thanks"
    assert [s["action"] for s in body["data"]["steps"]] == ["type", "select", "click"]
    assert site.submissions[-1] == {"name": "Grace Hopper", "colour": "green"}
    images = [c for c in result.content if c.type == "image"]
    assert [i.mime_type for i in images] == ["image/png"] + ["image/jpeg"] * 3
    assert base64.b64decode(images[0].data).startswith(b"\x89PNG")
    # The model node got the planning calls (and passed the tools on to the provider).
    planned = fake.requests_for("gpt-4o-mini")
    assert len(planned) == 2 and {t["function"]["name"] for t in planned[0].body["tools"]} >= {"click", "done"}
    audit = wait_for(
        lambda: sql(
            deployment["db_url"],
            "SELECT outcome, credits_charged FROM audit_log WHERE authorization_request_id = %s",
            (request_id,),
        )
    )
    assert [(a["outcome"], int(a["credits_charged"])) for a in audit] == [("ok", 2)]
