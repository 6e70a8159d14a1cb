"""The multi-node layout rehearsed on one machine: mcp, two model instances and agent as separate `isa serve`
processes on loopback, behind nginx configured from deploy/routing.json (the table the ALB rules come from).

Every step talks to nginx only; the model nodes call a scripted OpenAI-wire fake provider on loopback:
  1. each node's health, through its per-node location (the ALB health-checks targets directly)
  2. every route of every role reaches a node of the role the table names; unrouted paths and /metrics get a 404
  3. an API key made with `isa keys create` authenticates a user-service call
  4. a file upload, listing and download (files domain)
  5. tool discovery over HTTP (POST /discover)
  6. MCP tools/list with the official SDK client
  7. a streamed agent chat (SSE through the proxy) answered by the scripted provider through a model node
  8. SIGTERM to one of the two model instances under light load: no request fails
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import httpx
import pytest
from starlette.applications import Starlette

from tests.support.deploy import SINGLE_ROLES, route_templates, routing, sample_path, serves_get, serves_method
from tests.support.deploy import tf_default as _tf_default
from tests.support.fake_openai import FAKE_KEY_ENV, FakeOpenAI, Reply, model_section
from tests.support.procs import IsaProcess, free_port, isa_serve, port_open, wait_for

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
pytestmark = pytest.mark.skipif(NGINX is None, reason="nginx (Debian package `nginx`) is not installed")

USER = "rehearsal-user"
# SIGTERM part: a short drain so the test is quick; the mechanism is the production one (readiness 503, drain,
# listener closes, in-flight requests finish) with nginx's proxy_next_upstream standing in for the ALB's routing.
MODEL_ENV = {"ISA_SERVER__DRAIN_SECONDS": "1", "ISA_SERVER__GRACEFUL_TIMEOUT_SECONDS": "5"}
# The rehearsal is about routing and failover, not the per-principal rate limit (tests/auth covers that).
# Every node shares the token secret: the agent acts for the user upstream with isa-issued tokens.
NODE_ENV = {"ISA_AUTH__RATE_LIMIT__PRINCIPAL_LIMIT": "0", "ISA_AUTH__TOKEN_SECRET": "rehearsal-token-secret-0123456789"}
# Light load: two clients at a fixed rate each, bounded in count and time.
LOAD_CLIENTS = 2
LOAD_INTERVAL_SECONDS = 0.02
LOAD_MAX_REQUESTS = 3000
LOAD_MAX_SECONDS = 30.0


@dataclass
class Topology:
    url: str
    nodes: dict[str, list[IsaProcess]]
    data_dir: Path
    nginx: subprocess.Popen[bytes]
    nginx_dir: Path
    key: str = ""
    ports: dict[str, set[int]] = field(default_factory=dict)

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10, **kwargs)  # type: ignore[arg-type]

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def role_of(self, response: httpx.Response) -> str | None:
        """Which role's instance answered, from the proxy's X-Isa-Upstream (None: nginx answered itself)."""
        upstream = response.headers.get("x-isa-upstream", "")
        last = upstream.split(",")[-1].strip()  # after a retry nginx lists every address it tried
        if not last:
            return None
        port = int(last.rsplit(":", 1)[1])
        return next(role for role, ports in self.ports.items() if port in ports)


def _start_nginx(
    table: object, nodes: dict[str, list[IsaProcess]], run_dir: Path, port: int
) -> subprocess.Popen[bytes]:
    run_dir.mkdir(parents=True)
    text = routing().render_nginx(
        table,
        {role: [f"127.0.0.1:{n.port}" for n in procs] for role, procs in nodes.items()},
        listen=f"127.0.0.1:{port}",
        run_dir=run_dir,
        idle_timeout=_tf_default("alb_idle_timeout"),
    )
    conf = run_dir / "isa.conf"
    conf.write_text(text)
    assert NGINX is not None
    command = [NGINX, "-p", str(run_dir), "-c", str(conf), "-e", str(run_dir / "error.log")]
    test = subprocess.run([*command, "-t"], capture_output=True, text=True, timeout=30)
    assert test.returncode == 0, test.stderr
    return subprocess.Popen(command)


def _raise(run_dir: Path) -> bool:
    raise RuntimeError(f"nginx exited: {(run_dir / 'error.log').read_text()[-2000:]}")


@pytest.fixture(scope="module")
def fake_provider() -> Iterator[FakeOpenAI]:
    os.environ[FAKE_KEY_ENV] = "sk-rehearsal-fake"
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture(scope="module")
def topology(
    tmp_path_factory: pytest.TempPathFactory, data_dir: Path, pg_admin_url: str, fake_provider: FakeOpenAI
) -> Iterator[Topology]:
    """The nodes join the test run's embedded database (pg_admin_url started it), so all four start at once."""
    model_env = NODE_ENV | MODEL_ENV | {"ISA_MODEL": "@json " + json.dumps(model_section(fake_provider))}
    base = tmp_path_factory.mktemp("rehearsal")
    logs = base / "logs"
    logs.mkdir()
    nginx_port = free_port()
    url = f"http://127.0.0.1:{nginx_port}"
    with ExitStack() as stack:
        mcp = stack.enter_context(isa_serve("mcp", data_dir, env=NODE_ENV, log_dir=logs))
        model_a = stack.enter_context(isa_serve("model", data_dir, env=model_env, log_dir=logs))
        model_b = stack.enter_context(isa_serve("model", data_dir, env=model_env, log_dir=logs))
        # The agent reaches the model and mcp roles through the proxy, like an internal load balancer.
        agent = stack.enter_context(
            isa_serve(
                "agent",
                data_dir,
                env=NODE_ENV | {"ISA_SERVICES__MODEL_URL": url, "ISA_SERVICES__MCP_URL": url},
                log_dir=logs,
            )
        )
        nodes = {"mcp": [mcp], "model": [model_a, model_b], "agent": [agent]}
        nginx = _start_nginx(routing().load(), nodes, base / "nginx", nginx_port)
        stack.callback(lambda: (nginx.terminate(), nginx.wait(10)))
        wait_for(lambda: port_open(nginx_port) or (nginx.poll() is not None and _raise(base / "nginx")), timeout=15)
        for node in (mcp, model_a, model_b, agent):
            node.wait_ready(timeout=180)
        topo = Topology(url=url, nodes=nodes, data_dir=data_dir, nginx=nginx, nginx_dir=base / "nginx")
        topo.ports = {role: {n.port for n in procs} for role, procs in nodes.items()}
        yield topo


@pytest.fixture(scope="module")
def api_key(topology: Topology) -> str:
    """A write-scoped key, made the way an operator makes one."""
    result = subprocess.run(
        [sys.executable, "-m", "isa", "keys", "create", "--user", USER, "--scope", "write", "--json"],
        env={**os.environ, "ISA_DATA_DIR": str(topology.data_dir), "ISA_ENV": "test"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    topology.key = json.loads(result.stdout.strip().splitlines()[-1])["key"]
    return topology.key


def _require(app: Starlette, method: str, path: str, issue: str) -> None:
    """The route this step drives must exist: a removed route fails the rehearsal instead of skipping it."""
    assert serves_method(app, method, path), f"the role no longer serves {method} {path} ({issue})"


def test_each_node_answers_its_health_checks_through_the_proxy(topology: Topology) -> None:
    with topology.client() as client:
        for role in SINGLE_ROLES:
            seen = set()
            for _ in range(6):  # round robin: both model instances answer within a few calls
                response = client.get(f"/_node/{role}/health/ready")
                assert response.status_code == 200, response.text
                assert response.json()["role"] == role and topology.role_of(response) == role
                seen.add(response.headers["x-isa-upstream"])
            assert len(seen) == len(topology.nodes[role])


def test_every_route_of_every_role_reaches_a_node_of_the_role_the_table_names(
    topology: Topology, role_apps: dict[str, Starlette]
) -> None:
    table = routing().load()
    checked, wrong = 0, []
    with topology.client() as client:
        for role in SINGLE_ROLES:
            for template in sorted(set(route_templates(list(role_apps[role].routes)))):
                if template in table.per_node:
                    continue
                path = sample_path(template)
                with client.stream("GET", path) as response:  # headers only: some routes are SSE streams
                    answered_by = topology.role_of(response)
                rule = table.route(path)
                if rule is None or answered_by != rule.role:
                    wrong.append(f"{template}: answered by {answered_by}, the table says {rule and rule.role}")
                checked += 1
        for path in (*table.per_node, "/no/such/route", "/api/v2/x"):
            response = client.get(path)
            assert response.status_code == 404 and topology.role_of(response) is None, path
            assert response.json()["error"]["code"] == "not_found"
    assert not wrong, "\n".join(wrong)
    assert checked > 0


def test_an_api_key_from_the_cli_authenticates_a_user_service_call_through_the_proxy(
    topology: Topology, api_key: str, role_apps: dict[str, Starlette]
) -> None:
    _require(role_apps["mcp"], "GET", "/api/v1/users/me", "issue 3")
    with topology.client() as client:
        assert client.get("/api/v1/users/me").status_code == 401
        response = client.get("/api/v1/users/me", headers=topology.auth())
        assert response.status_code == 200, response.text
        assert USER in response.text and topology.role_of(response) == "mcp"


def test_a_file_uploads_lists_and_downloads_through_the_proxy(
    topology: Topology, api_key: str, role_apps: dict[str, Starlette]
) -> None:
    base = f"/api/v1/users/{USER}/files"
    _require(role_apps["mcp"], "POST", base, "issue 3")
    content = b"rehearsal through the proxy\n" * 100
    with topology.client(headers=topology.auth()) as client:
        response = client.post(base, files={"file": ("notes.txt", content, "text/plain")})
        assert response.status_code == 201, response.text
        file_id = response.json()["data"]["file_id"]
        listed = client.get(base)
        assert listed.status_code == 200 and file_id in listed.text
        download = client.get(f"{base}/{file_id}/download", follow_redirects=True)
        assert download.status_code == 200 and download.content == content


def test_tool_discovery_answers_through_the_proxy(
    topology: Topology, api_key: str, role_apps: dict[str, Starlette]
) -> None:
    _require(role_apps["mcp"], "POST", "/discover", "issue 4")
    with topology.client(headers=topology.auth()) as client:
        response = client.post("/discover", json={"request": "what time is it"})
        assert response.status_code == 200, response.text
        assert topology.role_of(response) == "mcp"


def test_mcp_tools_list_works_through_the_proxy_with_the_sdk_client(
    topology: Topology, api_key: str, role_apps: dict[str, Starlette]
) -> None:
    _require(role_apps["mcp"], "POST", "/mcp", "issue 4")
    from mcp.client.client import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    async def tools() -> list[str]:
        with anyio.fail_after(30):
            async with (
                create_mcp_http_client(headers=topology.auth()) as http,
                Client(streamable_http_client(f"{topology.url}/mcp", http_client=http)) as mcp,
            ):
                return [tool.name for tool in (await mcp.list_tools()).tools]

    names = anyio.run(tools)
    assert names, "tools/list through the proxy returned no tools"


def test_an_agent_chat_streams_server_sent_events_through_the_proxy(
    topology: Topology, api_key: str, fake_provider: FakeOpenAI
) -> None:
    answer = "Hello from the scripted provider, through nginx."
    fake_provider.script("gpt-4o-mini", Reply(text=answer))
    events: list[dict[str, object]] = []
    with topology.client(headers=topology.auth()) as client:
        assert client.post("/api/v1/users/ensure", json={}).status_code in (200, 201)  # grants the free plan
        with client.stream("POST", "/api/chat", json={"message": "say hello"}, timeout=60) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            assert topology.role_of(response) == "agent"
            for line in response.iter_lines():
                if not line.startswith("data:"):
                    continue
                payload = line[5:].strip()
                if payload == "[DONE]":
                    break
                events.append(json.loads(payload))
    types = [e["type"] for e in events]
    assert types[0] == "start" and "end" in types and "error" not in types, types
    streamed = "".join(str(e.get("content", "")) for e in events if e["type"] == "custom_stream")
    assert answer in streamed or any(answer in str(e.get("content")) for e in events), events[-3:]
    assert fake_provider.count("gpt-4o-mini") >= 1  # a model node really called the provider


def _load_path(topology: Topology, role_apps: dict[str, Starlette]) -> str:
    """A model-role GET through the routed table if one answers 200 with the key, else the per-node liveness."""
    candidates = [p for p in ("/v1/models", "/api/v1/models") if serves_get(role_apps["model"], p)]
    with topology.client(headers=topology.auth()) as client:
        for path in candidates:
            if client.get(path).status_code == 200:
                return path
    return "/_node/model/health"


def test_sigterm_to_one_model_instance_under_light_load_fails_no_request(
    topology: Topology, api_key: str, role_apps: dict[str, Starlette]
) -> None:
    path = _load_path(topology, role_apps)
    victim, survivor = topology.nodes["model"]
    results: list[tuple[float, int | str, str]] = []
    lock = threading.Lock()
    stop = threading.Event()
    deadline = time.monotonic() + LOAD_MAX_SECONDS

    def worker() -> None:
        next_at = time.monotonic()
        with topology.client(headers=topology.auth()) as client:
            while not stop.is_set() and time.monotonic() < deadline and len(results) < LOAD_MAX_REQUESTS:
                next_at += LOAD_INTERVAL_SECONDS  # a fixed request rate, not a wait for a condition
                time.sleep(max(0.0, next_at - time.monotonic()))
                try:
                    response = client.get(path)
                    outcome: int | str = response.status_code
                    upstream = response.headers.get("x-isa-upstream", "")
                except httpx.HTTPError as exc:
                    outcome, upstream = type(exc).__name__, ""
                with lock:
                    results.append((time.monotonic(), outcome, upstream))

    def served_by(node: IsaProcess, since: float = 0.0) -> int:
        with lock:
            return sum(1 for t, _, up in results if t >= since and up.endswith(f":{node.port}"))

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(LOAD_CLIENTS)]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: served_by(victim) >= 10 and served_by(survivor) >= 10, timeout=15)
        victim.proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        assert victim.proc.wait(timeout=20) == 0
        exited = time.monotonic()
        wait_for(lambda: sum(1 for t, _, _ in list(results) if t > exited) >= 100, timeout=15)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=15)
    failed = [(outcome, up) for _, outcome, up in results if outcome != 200]
    after = [up for t, _, up in results if t > exited]
    assert not failed, f"{len(failed)} of {len(results)} requests failed: {failed[:5]}"
    assert all(up.endswith(f":{survivor.port}") for up in after), "requests reached the stopped instance"
    assert len(results) <= LOAD_MAX_REQUESTS + len(threads)
    assert "Traceback" not in victim.log()
    assert survivor.get("/health/ready").status_code == 200
    print(  # shown with -s: what the run proved
        f"rehearsal load: {len(results)} GET {path} through nginx, {served_by(victim)} answered by the instance"
        f" that got SIGTERM (it exited 0 after {exited - signalled:.1f} s), {len(after)} after it exited"
        " (all by the other), 0 failed"
    )
