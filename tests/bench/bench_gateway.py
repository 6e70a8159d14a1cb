"""Added latency of the model gateway, against calling the provider directly and against LiteLLM's own proxy.

All targets answer the same chat completion from the same fake OpenAI-wire provider (its own process,
on loopback), in the same run, with the same load: interleaved rounds of sequential requests (latency:
p50/p95, and overhead = target - direct) and of concurrent requests (requests/s). `--stream` asks for
SSE streams instead (latency = until the last byte). `--variant NAME:key=value,...` adds another isa
gateway with those `[model]` settings (e.g. `nocache:credit_cache_seconds=0`), to measure one change
against the others in the same run.

    .venv/bin/python tests/bench/bench_gateway.py [--stream] [--variant ...] [--proxy-python PATH]

`--router-only` measures litellm alone: the gateway's Router (built from the same settings, in this
process) against a plain httpx call to the fake, with `--litellm-flag NAME=VALUE` set on the litellm
module first (e.g. `disable_aiohttp_transport=True`), to see what a litellm setting is worth.

LiteLLM's proxy (`pip install 'litellm[proxy]'`) lives in a throwaway venv, never in .venv:

    python3 -m venv /tmp/litellm-proxy-venv && /tmp/litellm-proxy-venv/bin/pip install 'litellm[proxy]'

Without it the proxy column is skipped. Requests are bounded (--rounds x --batch sequential, plus
--rounds x --concurrent-batch at --concurrency) and go to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from decimal import Decimal
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.support.procs import free_port, port_open, wait_for  # noqa: E402

PIDS: dict[str, int] = {}  # log name -> pid, for the CPU time of each target's process
BODY = {"model": "bench", "messages": [{"role": "user", "content": "Say hello in one short sentence."}]}
FAKE_KEY_ENV = "BENCH_FAKE_PROVIDER_KEY"


@contextmanager
def process(
    args: list[str], env: dict[str, str], log: Path, port: int, ready_url: str | None = None, cwd: Path = ROOT
) -> Iterator[None]:
    with log.open("w") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=cwd)
        PIDS[log.stem] = proc.pid
        try:

            def up() -> bool:
                if proc.poll() is not None:
                    raise RuntimeError(f"{args[0]} exited: {log.read_text()[-3000:]}")
                if ready_url:
                    return httpx.get(ready_url, timeout=2).status_code == 200
                return port_open(port)

            wait_for(up, timeout=300, interval=0.2)  # a loaded machine starts slowly
            yield
        finally:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()


def fake_provider(tmp: Path) -> tuple[ExitStack, str]:
    port = free_port()
    stack = ExitStack()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "tests.support.fake_openai", "--port", str(port)]
    stack.enter_context(process(cmd, env, tmp / "fake.log", port))
    return stack, f"http://127.0.0.1:{port}/v1"


def isa_gateway(
    tmp: Path, provider: str, name: str = "isa", extra: str = "", deployment: str = "", tree: Path = ROOT
) -> tuple[ExitStack, str, str]:
    """`isa serve --role model` on an embedded database, with one user holding credits and a key.

    Every gateway of a run shares the embedded database (and so the user and key); `extra` is added to
    its `[model]` settings, `deployment` to its one deployment; `tree` is the source tree it runs from
    (another checkout: the code before a change, in the same run).
    """
    port = free_port()
    settings_file = tmp / f"bench-{name}.toml"
    settings_file.write_text(
        f"""
[default.logging]
level = "WARNING"
[default.auth.rate_limit]
principal_limit = 100000000
[default.model]
num_retries = 2
request_timeout_seconds = 30
{extra}
[[default.model.deployments]]
name = "bench"
model = "openai/gpt-4o-mini"
api_base = "{provider}"
api_key_env = "{FAKE_KEY_ENV}"
{deployment}
"""
    )
    data_dir = tmp / "isa-data"
    env = {
        **os.environ,
        "ISA_ENV": "development",
        "ISA_DATA_DIR": str(data_dir),
        "ISA_SETTINGS_FILE": str(settings_file),
        FAKE_KEY_ENV: "sk-bench-provider",
        "PYTHONPATH": str(tree),
    }
    stack = ExitStack()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "isa", "serve", "--role", "model", "--port", str(port)]
    stack.enter_context(process(cmd, env, tmp / f"{name}.log", port, ready_url=url + "/health/ready", cwd=tree))
    global _KEY
    if _KEY is None:
        os.environ["ISA_DATA_DIR"] = str(data_dir)
        os.environ["ISA_ENV"] = "development"
        from isa.core.embedded import embedded_url
        from isa.core.settings import load_settings
        from tests.model.conftest import grant
        from tests.support.auth import create_key

        settings = load_settings("model")
        db_url = embedded_url(data_dir)
        _KEY = create_key(db_url, settings, "bench-user", "write")
        grant(db_url, settings, "bench-user", Decimal(10_000_000))
    return stack, url + "/v1", _KEY


_KEY: str | None = None


def litellm_proxy(tmp: Path, provider: str, python: str) -> tuple[ExitStack, str, str]:
    port = free_port()
    config = tmp / "litellm.yaml"
    config.write_text(
        f"""
model_list:
  - model_name: bench
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: {provider}
      api_key: sk-bench-provider
router_settings:
  num_retries: 2
  timeout: 30
litellm_settings:
  telemetry: false
general_settings:
  master_key: sk-bench-master
"""
    )
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_TELEMETRY": "False", "LITELLM_LOG": "ERROR"}
    env.pop("DATABASE_URL", None)
    litellm_cli = str(Path(python).parent / "litellm")
    cmd = [litellm_cli, "--config", str(config), "--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"]
    stack = ExitStack()
    url = f"http://127.0.0.1:{port}"
    stack.enter_context(process(cmd, env, tmp / "litellm.log", port, ready_url=url + "/health/liveliness"))
    return stack, url + "/v1", "sk-bench-master"


STREAM = False
SEQUENTIAL = False  # TTFB is recorded for sequential requests only (one in flight)
TTFB: dict[str, list[float]] = {}  # base URL -> time to the first body byte of each request


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of a process (and its threads) so far; 0 when unknown."""
    if pid is None:
        return 0.0
    import psutil

    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


async def one(client: httpx.AsyncClient, base: str, key: str) -> None:
    """One chat completion, read to its last byte."""
    headers = {"Authorization": f"Bearer {key}"}
    body = {**BODY, "stream": True} if STREAM else BODY
    t0 = time.perf_counter()
    async with client.stream("POST", base + "/chat/completions", json=body, headers=headers) as response:
        pieces = []
        async for piece in response.aiter_bytes():
            if not pieces and SEQUENTIAL:
                TTFB.setdefault(base, []).append(time.perf_counter() - t0)
            pieces.append(piece)
        data = b"".join(pieces)
        response.raise_for_status()
    if STREAM and not data.rstrip().endswith(b"data: [DONE]"):
        raise RuntimeError(f"{base}: the stream did not end with [DONE]")


async def sequential(client: httpx.AsyncClient, base: str, key: str, n: int) -> list[float]:
    global SEQUENTIAL
    out = []
    SEQUENTIAL = True
    for _ in range(n):
        t0 = time.perf_counter()
        await one(client, base, key)
        out.append(time.perf_counter() - t0)
    SEQUENTIAL = False
    return out


async def concurrent(client: httpx.AsyncClient, base: str, key: str, n: int, concurrency: int) -> float:
    """Requests per second for `n` requests with `concurrency` in flight."""
    queue = iter(range(n))

    async def worker() -> None:
        for _ in queue:
            await one(client, base, key)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return n / (time.perf_counter() - t0)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def run(targets: dict[str, tuple[str, str]], args: argparse.Namespace) -> None:
    latencies: dict[str, list[float]] = {name: [] for name in targets}
    rates: dict[str, list[float]] = {name: [] for name in targets}
    cpu: dict[str, float] = dict.fromkeys(targets, 0.0)
    pids = {name: PIDS.get("litellm" if name == "litellm-proxy" else name.removeprefix("isa-")) for name in targets}
    pids["isa-gateway"] = PIDS.get("isa")
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        for base, key in targets.values():
            await sequential(client, base, key, 50)  # warm-up: imports, pools, first-call paths
        for _ in range(args.rounds):  # interleaved, so machine noise hits every target alike
            for name, (base, key) in targets.items():
                latencies[name] += await sequential(client, base, key, args.batch)
            for name, (base, key) in targets.items():
                before = cpu_seconds(pids.get(name))
                rates[name].append(await concurrent(client, base, key, args.concurrent_batch, args.concurrency))
                cpu[name] += cpu_seconds(pids.get(name)) - before
    direct50, direct95 = pct(latencies["direct"], 0.5), pct(latencies["direct"], 0.95)
    n = len(latencies["direct"])
    print(f"\nload average before: {args.load_before}, after: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}")
    kind = "streamed" if STREAM else "non-streamed"
    total = args.rounds * args.concurrent_batch
    print(f"{kind} chat completions; {n} sequential + {total} concurrent (x{args.concurrency}) requests each")
    print(f"{'target':<18}{'p50 ms':>9}{'p95 ms':>9}{'p50 added':>11}{'p95 added':>11}{'req/s':>9}{'CPU ms/req':>12}")
    for name in targets:
        p50, p95 = pct(latencies[name], 0.5), pct(latencies[name], 0.95)
        rps = statistics.median(rates[name])
        added = "" if name == "direct" else f"{p50 - direct50:>11.2f}{p95 - direct95:>11.2f}"
        cpu_ms = f"{cpu[name] * 1000 / total:>12.2f}" if pids.get(name) else ""
        print(f"{name:<18}{p50:>9.2f}{p95:>9.2f}{added or ' ' * 22}{rps:>9.0f}{cpu_ms}")
    if STREAM:
        first = {name: pct(TTFB[base], 0.5) for name, (base, _) in targets.items()}
        print("\nstreamed time to first byte, p50 (added over direct):")
        for name in targets:
            print(f"  {name}: {first[name]:.2f} ms ({first[name] - first['direct']:+.2f})")
    baseline = "litellm-proxy" if "litellm-proxy" in targets else "isa-before" if "isa-before" in targets else None
    if baseline is not None:
        theirs50 = pct(latencies[baseline], 0.5) - direct50
        theirs95 = pct(latencies[baseline], 0.95) - direct95
        print(f"\nratios against {baseline} (same run):")
        for name in targets:
            if name in ("direct", baseline):
                continue
            ours50 = pct(latencies[name], 0.5) - direct50
            ours95 = pct(latencies[name], 0.95) - direct95
            rps_ratio = statistics.median(rates[name]) / statistics.median(rates[baseline])
            cpu_ratio = cpu[name] / cpu[baseline] if cpu[baseline] else float("nan")
            print(
                f"  {name}: p50 added {ours50:.2f} vs {theirs50:.2f} ms ({ours50 / theirs50:.2f}x), p95 added "
                f"{ours95:.2f} vs {theirs95:.2f} ms, req/s {rps_ratio:.2f}x, CPU per request {cpu_ratio:.2f}x"
            )


async def local_check(gateway: str, key: str, provider: str, rounds: int, n: int) -> None:
    """The issue's check: model `fake` of ISA_MODEL__LOCAL_URL, one client, gateway and direct alternating."""
    async with httpx.AsyncClient(timeout=30) as client:
        body = {"model": "fake", "messages": BODY["messages"]}
        errors = 0

        async def timed(url: str, auth: str) -> float:
            nonlocal errors
            t0 = time.perf_counter()
            response = await client.post(
                url + "/chat/completions", json=body, headers={"Authorization": f"Bearer {auth}"}
            )
            elapsed = time.perf_counter() - t0
            if response.status_code != 200:
                errors += 1
            return elapsed

        for _ in range(50):  # warm-up
            await timed(gateway, key)
            await timed(provider, "x")
        for r in range(rounds):
            gw, direct = [], []
            for _ in range(n):
                gw.append(await timed(gateway, key))
                direct.append(await timed(provider, "x"))
            print(
                f"round {r + 1}: direct p50 {pct(direct, 0.5):.2f} ms, gateway p50 {pct(gw, 0.5):.2f} ms, "
                f"added p50 {pct(gw, 0.5) - pct(direct, 0.5):.2f} ms, p95 {pct(gw, 0.95) - pct(direct, 0.95):.2f} ms"
            )
        print(f"errors: {errors} (load average {os.getloadavg()[0]:.2f})")


async def router_only(provider: str, rounds: int, batch: int, flags: list[str]) -> None:
    """p50 of the gateway's Router vs a plain httpx call to the same fake, interleaved, in one process."""
    import ast

    from isa.model.gateway import Gateway, load_litellm
    from isa.model.settings import ModelSettings

    litellm = load_litellm()
    for flag in flags:
        name, _, value = flag.partition("=")
        setattr(litellm, name, ast.literal_eval(value))
    os.environ[FAKE_KEY_ENV] = "sk-bench-provider"
    deployment = {"name": "bench", "model": "openai/gpt-4o-mini", "api_base": provider, "api_key_env": FAKE_KEY_ENV}
    gateway = Gateway(ModelSettings.model_validate({"deployments": [deployment], "aliases": {}, "fallbacks": {}}))
    gateway.start()
    messages = BODY["messages"]
    times: dict[str, list[float]] = {"direct": [], "router": []}
    async with httpx.AsyncClient(timeout=30) as client:

        async def direct() -> None:
            body = {"model": "gpt-4o-mini", "messages": messages}
            response = await client.post(
                provider + "/chat/completions", json=body, headers={"Authorization": "Bearer x"}
            )
            response.raise_for_status()

        async def routed() -> None:
            await gateway.chat("bench", {"messages": messages})

        for _ in range(50):
            await direct()
            await routed()
        for _ in range(rounds):
            for name, call in (("direct", direct), ("router", routed)):
                for _ in range(batch):
                    t0 = time.perf_counter()
                    await call()
                    times[name].append(time.perf_counter() - t0)
    d50, r50 = pct(times["direct"], 0.5), pct(times["router"], 0.5)
    print(f"flags {flags or '(none)'}: direct p50 {d50:.2f} ms, Router p50 {r50:.2f} ms, added {r50 - d50:.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proxy-python", default="/tmp/litellm-proxy-venv/bin/python")  # noqa: S108 (a throwaway venv by design)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--concurrent-batch", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--stream", action="store_true", help="SSE streams instead of plain completions")
    parser.add_argument("--variant", action="append", default=[], help="NAME:key=value,... (isa [model] settings)")
    parser.add_argument("--local-check", action="store_true", help="model `fake` via model.local_url, 3 x 300")
    parser.add_argument("--litellm-path", action="store_true", help="add isa with engine = litellm (same code)")
    parser.add_argument("--before", default="", help="another source tree to run as target isa-before")
    parser.add_argument("--router-only", action="store_true", help="litellm's Router alone vs direct, in-process")
    parser.add_argument("--litellm-flag", action="append", default=[], help="NAME=VALUE set on litellm (router-only)")
    args = parser.parse_args()
    args.load_before = " ".join(f"{v:.2f}" for v in os.getloadavg()[:2])
    global STREAM
    STREAM = args.stream
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp_name, ExitStack() as stack:
        tmp = Path(tmp_name)
        fake, provider = fake_provider(tmp)
        stack.enter_context(fake)
        if args.local_check:
            httpx.post(provider.removesuffix("/v1") + "/_fake/script", json={"model": "fake", "replies": []})
            gateway, url, key = isa_gateway(tmp, provider, "local", extra=f'local_url = "{provider}"')
            stack.enter_context(gateway)
            asyncio.run(local_check(url, key, provider, 3, 300))
            return
        if args.router_only:
            asyncio.run(router_only(provider, args.rounds, 100, args.litellm_flag))
            return
        targets = {"direct": (provider, "sk-bench-provider")}
        gateway, url, key = isa_gateway(tmp, provider)
        stack.enter_context(gateway)
        targets["isa-gateway"] = (url, key)
        for variant in args.variant:
            name, _, pairs = variant.partition(":")
            extra = "\n".join(pair.strip() for pair in pairs.split(",") if pair.strip())
            gw, gw_url, gw_key = isa_gateway(tmp, provider, name, extra)
            stack.enter_context(gw)
            targets[f"isa-{name}"] = (gw_url, gw_key)
        if args.litellm_path:
            gw, gw_url, gw_key = isa_gateway(tmp, provider, "litellm-path", deployment='engine = "litellm"')
            stack.enter_context(gw)
            targets["isa-litellm-path"] = (gw_url, gw_key)
        if args.before:
            gw, gw_url, gw_key = isa_gateway(tmp, provider, "before", tree=Path(args.before))
            stack.enter_context(gw)
            targets["isa-before"] = (gw_url, gw_key)
        if Path(args.proxy_python).exists():
            proxy, proxy_url, master = litellm_proxy(tmp, provider, args.proxy_python)
            stack.enter_context(proxy)
            targets["litellm-proxy"] = (proxy_url, master)
        else:
            print(f"LiteLLM proxy skipped: {args.proxy_python} not found (see the module docstring)")
        asyncio.run(run(targets, args))


if __name__ == "__main__":
    main()
