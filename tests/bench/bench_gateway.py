"""Added latency of the model gateway, against calling the provider directly and against LiteLLM's own proxy.

All three targets answer the same non-streamed chat completion from the same fake OpenAI-wire provider
(its own process, on loopback), in the same run, with the same load: interleaved rounds of sequential
requests (latency: p50/p95, and overhead = target - direct) and of concurrent requests (requests/s).

    .venv/bin/python tests/bench/bench_gateway.py [--proxy-python /tmp/litellm-proxy-venv/bin/python]

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

BODY = {"model": "bench", "messages": [{"role": "user", "content": "Say hello in one short sentence."}]}
FAKE_KEY_ENV = "BENCH_FAKE_PROVIDER_KEY"


@contextmanager
def process(args: list[str], env: dict[str, str], log: Path, port: int, ready_url: str | None = None) -> Iterator[None]:
    with log.open("w") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        try:

            def up() -> bool:
                if proc.poll() is not None:
                    raise RuntimeError(f"{args[0]} exited: {log.read_text()[-3000:]}")
                if ready_url:
                    return httpx.get(ready_url, timeout=2).status_code == 200
                return port_open(port)

            wait_for(up, timeout=120, interval=0.2)
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


def isa_gateway(tmp: Path, provider: str) -> tuple[ExitStack, str, str]:
    """`isa serve --role model` on an embedded database, with one user holding credits and a key."""
    port = free_port()
    settings_file = tmp / "bench.toml"
    settings_file.write_text(
        f"""
[default.logging]
level = "WARNING"
[default.auth.rate_limit]
principal_limit = 100000000
[default.model]
num_retries = 2
request_timeout_seconds = 30
[[default.model.deployments]]
name = "bench"
model = "openai/gpt-4o-mini"
api_base = "{provider}"
api_key_env = "{FAKE_KEY_ENV}"
"""
    )
    data_dir = tmp / "isa-data"
    env = {
        **os.environ,
        "ISA_ENV": "development",
        "ISA_DATA_DIR": str(data_dir),
        "ISA_SETTINGS_FILE": str(settings_file),
        FAKE_KEY_ENV: "sk-bench-provider",
    }
    stack = ExitStack()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "isa", "serve", "--role", "model", "--port", str(port)]
    stack.enter_context(process(cmd, env, tmp / "isa.log", port, ready_url=url + "/health/ready"))
    os.environ["ISA_DATA_DIR"] = str(data_dir)
    os.environ["ISA_ENV"] = "development"
    from isa.core.embedded import embedded_url
    from isa.core.settings import load_settings
    from tests.model.conftest import grant
    from tests.support.auth import create_key

    settings = load_settings("model")
    db_url = embedded_url(data_dir)
    key = create_key(db_url, settings, "bench-user", "write")
    grant(db_url, settings, "bench-user", Decimal(10_000_000))
    return stack, url + "/v1", key


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


async def sequential(client: httpx.AsyncClient, base: str, key: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        response = await client.post(base + "/chat/completions", json=BODY, headers={"Authorization": f"Bearer {key}"})
        out.append(time.perf_counter() - t0)
        response.raise_for_status()
    return out


async def concurrent(client: httpx.AsyncClient, base: str, key: str, n: int, concurrency: int) -> float:
    """Requests per second for `n` requests with `concurrency` in flight."""
    queue = iter(range(n))

    async def worker() -> None:
        for _ in queue:
            response = await client.post(
                base + "/chat/completions", json=BODY, headers={"Authorization": f"Bearer {key}"}
            )
            response.raise_for_status()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return n / (time.perf_counter() - t0)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def run(targets: dict[str, tuple[str, str]], args: argparse.Namespace) -> None:
    latencies: dict[str, list[float]] = {name: [] for name in targets}
    rates: dict[str, list[float]] = {name: [] for name in targets}
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        for base, key in targets.values():
            await sequential(client, base, key, 50)  # warm-up: imports, pools, first-call paths
        for _ in range(args.rounds):  # interleaved, so machine noise hits every target alike
            for name, (base, key) in targets.items():
                latencies[name] += await sequential(client, base, key, args.batch)
            for name, (base, key) in targets.items():
                rates[name].append(await concurrent(client, base, key, args.concurrent_batch, args.concurrency))
    direct50, direct95 = pct(latencies["direct"], 0.5), pct(latencies["direct"], 0.95)
    n = len(latencies["direct"])
    print(f"\n{n} sequential + {args.rounds * args.concurrent_batch} concurrent (x{args.concurrency}) requests each")
    print(f"{'target':<16}{'p50 ms':>9}{'p95 ms':>9}{'p50 added':>11}{'p95 added':>11}{'req/s':>9}")
    for name in targets:
        p50, p95 = pct(latencies[name], 0.5), pct(latencies[name], 0.95)
        rps = statistics.median(rates[name])
        added = "" if name == "direct" else f"{p50 - direct50:>11.2f}{p95 - direct95:>11.2f}"
        print(f"{name:<16}{p50:>9.2f}{p95:>9.2f}{added or ' ' * 22}{rps:>9.0f}")
    if "litellm-proxy" in targets:
        ours = pct(latencies["isa-gateway"], 0.5) - direct50
        theirs = pct(latencies["litellm-proxy"], 0.5) - direct50
        print(f"\np50 overhead: isa {ours:.2f} ms vs LiteLLM proxy {theirs:.2f} ms (ratio {ours / theirs:.2f})")
        rps_ratio = statistics.median(rates["isa-gateway"]) / statistics.median(rates["litellm-proxy"])
        print(f"throughput: isa / LiteLLM proxy = {rps_ratio:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proxy-python", default="/tmp/litellm-proxy-venv/bin/python")  # noqa: S108 (a throwaway venv by design)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--concurrent-batch", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp_name, ExitStack() as stack:
        tmp = Path(tmp_name)
        fake, provider = fake_provider(tmp)
        stack.enter_context(fake)
        targets = {"direct": (provider, "sk-bench-provider")}
        gateway, url, key = isa_gateway(tmp, provider)
        stack.enter_context(gateway)
        targets["isa-gateway"] = (url, key)
        if Path(args.proxy_python).exists():
            proxy, proxy_url, master = litellm_proxy(tmp, provider, args.proxy_python)
            stack.enter_context(proxy)
            targets["litellm-proxy"] = (proxy_url, master)
        else:
            print(f"LiteLLM proxy skipped: {args.proxy_python} not found (see the module docstring)")
        asyncio.run(run(targets, args))


if __name__ == "__main__":
    main()
