"""Soak (checklist B2.22): one real `isa serve --role all` under a fixed mixed load; does anything grow?

    .venv/bin/python tests/bench/soak.py [--minutes 30] [--rps 3] [--max-requests 20000]

Loopback only: a fresh ISA_DATA_DIR (embedded Postgres), the scripted fake OpenAI-wire provider as every model
deployment, a local page server that is the only host the egress allow list opens. A key is made with
`isa keys create`. The load is open-loop at a fixed rate from a few threads: POST /discover, MCP tools/call of
get_current_time (raw JSON-RPC), POST /api/chat (SSE read to [DONE]) and web_crawl of the local pages (one static,
one that needs the browser). Every 30 s: the server's VmRSS and open fds, the chromium processes below it, errors.
Exits 1 when RSS or fds grew > 10 % from the first sample after warm-up (minute 2) to the last, when chromium
processes exceed the pool bound, or when > 1 % of requests failed. Stops by itself (time or request cap).
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from isa.core.embedded import embedded_url  # noqa: E402
from tests.support.deployment import AGENT_SECTION, model_env  # noqa: E402
from tests.support.fake_openai import FakeOpenAI  # noqa: E402
from tests.support.mcp_servers import INITIALIZE, grant_credits, raw_headers, rpc, serve_asgi, sse_json  # noqa: E402
from tests.support.procs import free_port, isa_serve  # noqa: E402
from tests.support.web_pages import _pages  # noqa: E402

SAMPLE_SECONDS = 30
WARMUP_SECONDS = 120
MAX_CONTEXTS = 4  # web.max_contexts (the default), set explicitly below
# One browser process plus its fixed helpers (2 zygotes, gpu, network, storage, a spare renderer, crashpad).
CHROMIUM_BOUND = MAX_CONTEXTS + 8
# Ten ticks: web_crawl 30/min and chat 60/min are per-user limits; at 3 rps this is 18 and 36 per minute.
MIX = ["discover", "tool", "chat", "discover", "tool", "crawl", "discover", "tool", "chat", "discover"]


def isa_cli(data_dir: Path, env: dict[str, str], *args: str) -> str:
    full = {**os.environ, "ISA_DATA_DIR": str(data_dir), "ISA_ENV": "test", **env}
    done = subprocess.run([sys.executable, "-m", "isa", *args], env=full, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"isa {' '.join(args)} failed: {done.stderr[-1500:]}")
    return done.stdout.strip().splitlines()[-1]


def descendants(root: int) -> list[int]:
    """Every live process whose ancestors include `root`."""
    parent: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = [], [root]
    while frontier:
        kids = [pid for pid, ppid in parent.items() if ppid in frontier]
        found += kids
        frontier = kids
    return found


def status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def sample(pid: int, started: float, errors: Counter[str], counts: Counter[str]) -> dict[str, Any]:
    chromium = []
    for child in descendants(pid):
        try:
            if b"chrom" in Path(f"/proc/{child}/cmdline").read_bytes():
                chromium.append(child)
        except OSError:
            continue
    chrome_rss = 0
    for child in chromium:
        try:
            chrome_rss += status_kb(child, "VmRSS")
        except OSError:
            continue
    return {
        "t": time.monotonic() - started,
        "rss_mb": status_kb(pid, "VmRSS") / 1024,
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
        "chromium": len(chromium),
        "chrome_mb": chrome_rss / 1024,
        "requests": sum(counts.values()),
        "errors": sum(errors.values()),
    }


class Load:
    """The four request kinds against one node, counting results and errors per kind (thread safe)."""

    def __init__(self, base: str, key: str, page_url: str) -> None:
        self.http = httpx.Client(base_url=base, timeout=60, headers={"Authorization": f"Bearer {key}"})
        self.key, self.page_url = key, page_url
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.latency: dict[str, list[float]] = {}
        self.session = self.open_session()
        self.n = 0

    def open_session(self) -> str:
        response = self.http.post("/mcp", json=INITIALIZE, headers=raw_headers(self.key))
        response.raise_for_status()
        session = response.headers["mcp-session-id"]
        self.http.post("/mcp", json=rpc("notifications/initialized", id_=None), headers=raw_headers(self.key, session))
        return session

    def mcp_call(self, name: str, arguments: dict[str, Any]) -> str | None:
        with self.lock:
            self.n += 1
            message = rpc("tools/call", {"name": name, "arguments": arguments}, id_=self.n)
        response = self.http.post("/mcp", json=message, headers=raw_headers(self.key, self.session))
        if response.status_code == 404:  # the session is gone: note it and open another
            self.session = self.open_session()
            return "session_lost"
        if response.status_code != 200:
            return f"http_{response.status_code}"
        is_sse = response.headers.get("content-type", "").startswith("text/event-stream")
        replies = sse_json(response.text) if is_sse else [response.json()]
        reply = next((r for r in replies if r.get("id") == message["id"]), None)
        if reply is None or "error" in reply:
            return "rpc_error" if reply else "no_reply"
        if reply["result"].get("isError"):
            content = reply["result"].get("content") or [{}]
            return "tool_error:" + str(content[0].get("text", "")).split(":", 1)[0][:40]
        return None

    def chat(self) -> str | None:
        lines: list[str] = []
        with self.http.stream("POST", "/api/chat", json={"message": "What time is it?"}) as response:
            if response.status_code != 200:
                return f"http_{response.status_code}"
            lines = [line for line in response.iter_lines() if line.startswith("data:")]
        if not lines or lines[-1] != "data: [DONE]":
            return "no_done"
        if any('"type": "error"' in line or '"type":"error"' in line for line in lines):
            return "error_event"
        return None

    def one(self, kind: str, i: int) -> None:
        started = time.perf_counter()
        try:
            if kind == "discover":
                response = self.http.post("/discover", json={"request": "what time is it in Tokyo"})
                error = None if response.status_code == 200 else f"http_{response.status_code}"
            elif kind == "tool":
                error = self.mcp_call("get_current_time", {"timezone": "Europe/Berlin"})
            elif kind == "chat":
                error = self.chat()
            else:
                error = self.mcp_call("web_crawl", {"url": self.page_url + ("/js" if i % 2 else "/")})
        except httpx.HTTPError as exc:
            error = type(exc).__name__
        with self.lock:
            self.counts[kind] += 1
            self.latency.setdefault(kind, []).append(time.perf_counter() - started)
            if error:
                self.errors[f"{kind}:{error}"] += 1


def pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))] * 1000 if values else 0.0


def report(samples: list[dict[str, Any]], load: Load, page_contexts_bound: int) -> int:
    print(f"\n{'t (s)':>7}{'RSS MB':>9}{'fds':>6}{'chromium':>10}{'chrome MB':>11}{'requests':>10}{'errors':>8}")
    for s in samples:
        print(
            f"{s['t']:>7.0f}{s['rss_mb']:>9.1f}{s['fds']:>6}{s['chromium']:>10}{s['chrome_mb']:>11.1f}"
            f"{s['requests']:>10}{s['errors']:>8}"
        )
    after = [s for s in samples if s["t"] >= WARMUP_SECONDS] or samples
    first, last = after[0], samples[-1]
    rss_growth = (last["rss_mb"] - first["rss_mb"]) / first["rss_mb"] * 100
    fd_growth = (last["fds"] - first["fds"]) / first["fds"] * 100
    chromium_peak = max(s["chromium"] for s in samples)
    total, failed = sum(load.counts.values()), sum(load.errors.values())
    per_minute = (last["rss_mb"] - first["rss_mb"]) / ((last["t"] - first["t"]) / 60 or 1)
    print(f"\ngrowth t={first['t']:.0f}s -> t={last['t']:.0f}s:")
    print(f"  RSS  {first['rss_mb']:.1f} -> {last['rss_mb']:.1f} MB  ({rss_growth:+.1f} %, {per_minute:+.2f} MB/min)")
    print(f"  fds  {first['fds']} -> {last['fds']}  ({fd_growth:+.1f} %)")
    print(f"  chromium processes: peak {chromium_peak}, last {last['chromium']} (bound {page_contexts_bound})")
    print(f"requests {total}, failed {failed} ({failed / max(total, 1) * 100:.2f} %)")
    for kind in sorted(load.counts):
        lat = load.latency[kind]
        print(f"  {kind:9}{load.counts[kind]:>6}  p50 {pct(lat, 0.5):>7.1f} ms  p95 {pct(lat, 0.95):>7.1f} ms")
    for kind, n in sorted(load.errors.items()):
        print(f"  error {kind}: {n}")
    verdict = []
    if rss_growth > 10:
        verdict.append(f"RSS grew {rss_growth:.1f} %")
    if fd_growth > 10:
        verdict.append(f"fds grew {fd_growth:.1f} %")
    if chromium_peak > page_contexts_bound:
        verdict.append(f"chromium processes {chromium_peak} > {page_contexts_bound}")
    if failed > 0.01 * total:
        verdict.append(f"{failed}/{total} requests failed")
    print("FAIL: " + "; ".join(verdict) if verdict else "PASS")
    return 1 if verdict else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--rps", type=float, default=3.0)
    parser.add_argument("--threads", type=int, default=6)
    parser.add_argument("--max-requests", type=int, default=20_000)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    print(f"load average before: {os.getloadavg()}")
    data_dir = Path(tempfile.mkdtemp(prefix="isa-soak-"))
    atexit.register(shutil.rmtree, data_dir, True)  # runs after pgserver's own exit hook has stopped Postgres
    page_port = free_port()
    with FakeOpenAI() as fake, serve_asgi(_pages([]), port=page_port) as page_url:
        env = {
            **model_env(fake),
            "ISA_AUTH__TOKEN_SECRET": "soak-token-secret-" + os.urandom(8).hex(),
            "ISA_AGENT": "@json " + json.dumps({**AGENT_SECTION, "chat_rate_limit_per_minute": 60}),
            "ISA_WEB__ALLOW_HOSTS": json.dumps([f"127.0.0.1:{page_port}"]),
            "ISA_WEB__MAX_CONTEXTS": str(MAX_CONTEXTS),
            "ISA_WEB__PAGE_TIMEOUT_SECONDS": "10",
        }
        with isa_serve("all", data_dir, env=env) as node:
            node.wait_ready(240)
            key = json.loads(isa_cli(data_dir, env, "keys", "create", "--user", "soak", "--scope", "write", "--json"))
            # Joined in this process (not `isa db url`, which leaves Postgres running): it stops when we exit.
            grant_credits(embedded_url(data_dir), "soak", "1000000")
            load = Load(node.url, key["key"], page_url)
            pid = node.proc.pid
            started = time.monotonic()
            deadline = started + args.minutes * 60
            samples = [sample(pid, started, load.errors, load.counts)]
            next_sample = started + SAMPLE_SECONDS
            interval = 1 / args.rps
            with ThreadPoolExecutor(args.threads) as pool:
                for i in range(args.max_requests):
                    due = started + i * interval
                    if due >= deadline or node.proc.poll() is not None:
                        break
                    while time.monotonic() < due:  # the open-loop clock; samples are taken on their due time
                        if time.monotonic() >= next_sample:
                            samples.append(sample(pid, started, load.errors, load.counts))
                            s = samples[-1]
                            print(f"t={s['t']:.0f}s rss={s['rss_mb']:.1f}MB fds={s['fds']} chromium={s['chromium']}")
                            next_sample += SAMPLE_SECONDS
                        time.sleep(min(0.05, max(0.0, due - time.monotonic())))
                    pool.submit(load.one, MIX[i % len(MIX)], i // len(MIX))
            samples.append(sample(pid, started, load.errors, load.counts))
            if node.proc.poll() is not None:
                print(f"the server exited with {node.proc.returncode}: {node.log()[-1500:]}")
                return 1
            load.http.close()
            node.stop(60)  # graceful, so the server lets go of the embedded Postgres
    print(f"load average after: {os.getloadavg()}")
    return report(samples, load, CHROMIUM_BOUND)


if __name__ == "__main__":
    sys.exit(main())
