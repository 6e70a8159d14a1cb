"""MCP tools/call throughput: our full stack (auth, rate limit, audit, envelope) vs a bare `mcp` SDK server.

Each server runs as its own process on loopback and serves the same trivial tool (`get_current_time`): the
bare SDK server, the same bare server behind isa's core HTTP middleware (request id, Host check, metrics, JSON
access log: what every isa route pays), and `isa serve --role mcp`. The same SDK client drives all of them in the
same run, with one and with several concurrent sessions, in small interleaved batches (rotating order), so a
noisy shared machine loads every server alike.

    .venv/bin/python tests/bench/bench_mcp_throughput.py [--calls 2000] [--batch 40] [--concurrency 4] [--before PATH]

`--before PATH` adds `isa serve --role mcp` run from another source tree (the code before a change, e.g.
`git archive main | tar -x -C PATH`) as a fourth server, in the same interleaved run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import httpx
import httpx2
import pgserver  # type: ignore[import-untyped]
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from isa.auth import store as auth_store  # noqa: E402
from isa.auth.service import AuthService  # noqa: E402
from isa.core.db import Database  # noqa: E402
from isa.core.embedded import data_folder, embedded_url  # noqa: E402
from isa.core.migrations import migrate  # noqa: E402
from isa.core.settings import load_settings  # noqa: E402
from tests.support.procs import free_port, wait_for  # noqa: E402

BARE_SERVER = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    import uvicorn
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("bare")

    @server.tool()
    async def get_current_time(timezone: str = "UTC") -> dict:
        '''Current date and time in an IANA time zone.'''
        now = datetime.now(UTC).astimezone(ZoneInfo(timezone))
        return {"iso": now.isoformat(), "unix": now.timestamp(), "timezone": timezone, "weekday": now.strftime("%A")}

    app = server.streamable_http_app()
    if len(sys.argv) > 2:  # the same SDK route in isa's HTTP stack: core middleware, error handlers, JSON logs
        from starlette.applications import Starlette
        from starlette.middleware import Middleware

        from isa.core.errors import EXCEPTION_HANDLERS
        from isa.core.logging import configure_logging
        from isa.core.metrics import Metrics
        from isa.core.middleware import RequestContextMiddleware

        configure_logging("json", "INFO")
        core = Middleware(
            RequestContextMiddleware, metrics=Metrics(), route_of=lambda s: "/mcp", allowed_hosts=["127.0.0.1"],
            max_body_bytes=1 << 22,
        )
        app = Starlette(routes=app.routes, middleware=[core], exception_handlers=EXCEPTION_HANDLERS,
                        lifespan=lambda _: server.session_manager.run())
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
    """
)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start(
    cmd: list[str], env: dict[str, str], log: Path, ready: Callable[[], bool], cwd: str | None = None
) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(cmd, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, cwd=cwd)
    try:
        wait_for(lambda: proc.poll() is None and ready(), timeout=300)  # a loaded machine starts slowly
    except BaseException:
        proc.kill()
        proc.wait(10)
        raise
    return proc


def ready_isa(url: str) -> bool:
    return httpx.get(url + "/health/ready", timeout=2).status_code == 200


def up(url: str) -> bool:
    try:
        httpx.get(url, timeout=1)
        return True
    except httpx.HTTPError:
        return False


@dataclass
class Target:
    """One server under test, with its warmed-up client sessions and what was measured on it."""

    name: str
    url: str
    key: str | None
    pid: int
    clients: list[Client] = field(default_factory=list)
    calls: int = 0
    seconds: float = 0.0
    cpu: float = 0.0


async def batch(target: Target, per_client: int) -> None:
    """`per_client` sequential calls on each of the target's sessions at once; adds wall time and server CPU."""

    async def run(client: Client) -> None:
        for _ in range(per_client):
            result = await client.call_tool("get_current_time", {"timezone": "UTC"})
            assert not result.is_error, result

    cpu_before = cpu_seconds(target.pid)
    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for client in target.clients:
            tg.start_soon(run, client)
    target.seconds += time.perf_counter() - started
    target.cpu += cpu_seconds(target.pid) - cpu_before
    target.calls += per_client * len(target.clients)


async def measure(targets: list[Target], concurrency: int, calls: int, batch_calls: int) -> None:
    """Interleave small batches across the targets (rotating the order), so all see the same machine load."""
    async with AsyncExitStack() as stack:
        for target in targets:
            headers = {"Authorization": f"Bearer {target.key}"} if target.key else {}
            target.clients, target.calls, target.seconds, target.cpu = [], 0, 0.0, 0.0
            for _ in range(concurrency):
                http = await stack.enter_async_context(
                    httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=120))
                )
                client = Client(streamable_http_client(target.url, http_client=http), mode="legacy", cache=None)
                target.clients.append(await stack.enter_async_context(client))
            await batch(target, 10)  # warm-up, not counted
            target.calls, target.seconds, target.cpu = 0, 0.0, 0.0
        per_client = max(1, batch_calls // concurrency)
        for n in range(max(1, calls // (per_client * concurrency))):
            for target in targets[n % len(targets) :] + targets[: n % len(targets)]:
                await batch(target, per_client)


async def wait_until_synced(url: str, key: str) -> None:
    """Start-up work (the catalog embedding our declarations) must not run while we measure."""
    headers = {"Authorization": f"Bearer {key}"}
    http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=120))
    async with http, Client(streamable_http_client(url, http_client=http), mode="legacy", cache=None) as client:
        with anyio.fail_after(300):
            while True:
                found = await client.call_tool("discover_tools", {"request": "current time in a time zone"})
                tools = (found.structured_content or {}).get("data", {}).get("tools", [])
                if any(t["name"] == "get_current_time" for t in tools):
                    return
                await anyio.sleep(1)


def create_key(db_url: str) -> str:
    async def main() -> str:
        db = Database(db_url, load_settings("mcp"))
        await db.open()
        try:
            async with db.transaction() as conn:
                await auth_store.ensure_user(conn, "bench", "bench@example.test", "bench")
            return (await AuthService(db).create_api_key("bench", ["write"])).key
        finally:
            await db.close()

    return anyio.run(main)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--before", default="", help="another source tree to run as server isa-before")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="isa-bench-mcp-"))
    data_dir = work / "data"
    env = {**os.environ, "ISA_DATA_DIR": str(data_dir), "ISA_ENV": "development", "PYTHONPATH": str(ROOT)}
    os.environ["ISA_DATA_DIR"] = str(data_dir)
    db_url = embedded_url(data_dir)  # stopped when this process and the servers have exited
    migrate(db_url)
    key = create_key(db_url)
    script = work / "bare_server.py"
    script.write_text(BARE_SERVER)
    isa_env = {
        **env,
        "ISA_LOGGING__FORMAT": "json",  # production logging: one JSON access line per request
        "ISA_MCP__DEFAULT_RATE_LIMIT_PER_MINUTE": "1000000000",  # still checked per call, never refusing
    }
    names = ("bare", "bare+http", "isa", "isa-before") if args.before else ("bare", "bare+http", "isa")
    ports = {name: free_port() for name in names}
    serve = [sys.executable, "-m", "isa", "serve", "--role", "mcp", "--port"]
    commands = {
        "bare": [sys.executable, str(script), str(ports["bare"])],
        "bare+http": [sys.executable, str(script), str(ports["bare+http"]), "http"],
        "isa": [*serve, str(ports["isa"])],
    }
    envs = {"bare": env, "bare+http": env, "isa": isa_env}
    if args.before:
        commands["isa-before"] = [*serve, str(ports["isa-before"])]
        envs["isa-before"] = {**isa_env, "PYTHONPATH": str(Path(args.before).resolve())}
    procs: dict[str, subprocess.Popen[bytes]] = {}
    results: dict[tuple[str, int], tuple[float, float]] = {}
    try:
        for name, command in commands.items():
            url = f"http://127.0.0.1:{ports[name]}"
            ready = (lambda u=url: ready_isa(u)) if name.startswith("isa") else (lambda u=url: up(u + "/"))
            procs[name] = start(command, envs[name], work / f"{name}.log", ready, cwd=envs[name]["PYTHONPATH"])
        anyio.run(wait_until_synced, f"http://127.0.0.1:{ports['isa']}/mcp", key)
        targets = [
            Target(name, f"http://127.0.0.1:{ports[name]}/mcp", key if name.startswith("isa") else None, proc.pid)
            for name, proc in procs.items()
        ]
        for concurrency in (1, args.concurrency):
            anyio.run(measure, targets, concurrency, args.calls, args.batch)
            for t in targets:
                results[(t.name, concurrency)] = (t.calls / t.seconds, 1000 * t.cpu / t.calls)
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:  # a loaded machine can outlast the graceful shutdown: the numbers stand
                proc.kill()
                proc.wait(10)
        # This process is the embedded Postgres's last user now: leaving stops it, then the work folder can go.
        pgserver.get_server(data_folder(data_dir)).cleanup()
        shutil.rmtree(work, ignore_errors=True)

    print(f"tools/call of get_current_time: {args.calls} calls per server and concurrency, in interleaved batches "
          f"of {args.batch}")  # fmt: skip
    print("req/s: client-observed throughput; cpu: server process CPU per call")
    print(f"load average: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}")
    print("cpu ratio: the server's CPU per call over the bare server's (the goal is <= 1.25 for isa)")
    print(f"{'server':<10} {'conc':>4} {'req/s':>7} {'cpu ms':>7} {'req/s ratio':>12} {'cpu ratio':>10}")
    for concurrency in (1, args.concurrency):
        base_rps, base_cpu = results[("bare", concurrency)]
        for name in commands:
            rate, cpu = results[(name, concurrency)]
            ratios = f"{rate / base_rps:>12.2f} {cpu / base_cpu:>10.2f}"
            print(f"{name:<10} {concurrency:>4} {rate:>7.1f} {cpu:>7.2f} {ratios}")


if __name__ == "__main__":
    main()
