"""Latency the agent adds: time to first event and to first token through `/api/chat`, against a streamed
chat completion straight from the model node, same fake provider, same node, same run (interleaved).

    .venv/bin/python tests/bench/bench_agent.py [--rounds 40]

One role-"all" node (uvicorn in a thread, embedded Postgres under a temporary data dir), the fake OpenAI-wire
provider on loopback answering a 6-chunk text. Each round sends one direct streamed completion and one agent chat
(no tool calls: the agent's own path = auth, session, discovery, context, the model call, persistence).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

os.environ.setdefault("ISA_DATA_DIR", tempfile.mkdtemp(prefix="isa-bench-agent-"))
os.environ.setdefault("ISA_ENV", "test")

from isa.app import create_app  # noqa: E402
from isa.core.db import resolve_url  # noqa: E402
from isa.core.settings import load_settings  # noqa: E402
from tests.support.agent import FAKE_MODEL, agent_settings, new_user  # noqa: E402
from tests.support.fake_openai import FAKE_KEY_ENV, FakeOpenAI, Reply  # noqa: E402
from tests.support.mcp_servers import serve_asgi  # noqa: E402

TEXT = "The quick brown fox jumps over the lazy dog and keeps on running far away."


def direct(http: httpx.Client, key: str) -> tuple[float, float]:
    body = {"model": "default", "stream": True, "messages": [{"role": "user", "content": "hello"}]}
    started = time.perf_counter()
    first_event = first_token = 0.0
    with http.stream("POST", "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}) as r:
        for line in r.iter_lines():
            if line.startswith("data:") and not first_event:
                first_event = time.perf_counter() - started
            compact = line.replace(" ", "")
            if not first_token and '"content":"' in compact and '"content":""' not in compact:
                first_token = time.perf_counter() - started
    return first_event, first_token


def agent(http: httpx.Client, key: str, session_id: str) -> tuple[float, float]:
    started = time.perf_counter()
    first_event = first_token = 0.0
    body = {"message": "hello", "session_id": session_id}
    with http.stream("POST", "/api/chat", json=body, headers={"Authorization": f"Bearer {key}"}) as r:
        for line in r.iter_lines():
            if line.startswith("data:") and not first_event:
                first_event = time.perf_counter() - started
            if "custom_llm_chunk" in line and not first_token:
                first_token = time.perf_counter() - started
        assert first_token, "the agent streamed no token"
    return first_event, first_token


def pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    os.environ[FAKE_KEY_ENV] = "sk-bench"
    base = load_settings("all")
    url = resolve_url(base)
    with FakeOpenAI() as fake:
        settings = agent_settings(base, fake, heartbeat_seconds=15, max_iterations=4)
        fake.script(FAKE_MODEL, Reply(text=TEXT, chunks=6, times=10_000))
        with serve_asgi(create_app(settings, "all", database_url=url)) as node:
            _, key = new_user(url, settings, credits=100_000)
            with httpx.Client(base_url=node, timeout=60) as http:
                session_id = http.post(
                    "/api/sessions", json={"title": "bench"}, headers={"Authorization": f"Bearer {key}"}
                ).json()["session_id"]
                for _ in range(3):  # warm-up: embeddings, tool specs, connections
                    direct(http, key)
                    agent(http, key, session_id)
                rows: dict[str, list[tuple[float, float]]] = {"direct": [], "agent": []}
                for _ in range(args.rounds):
                    rows["direct"].append(direct(http, key))
                    rows["agent"].append(agent(http, key, session_id))
    print(f"rounds: {args.rounds} (interleaved), fake provider, one role-all node, history grows per round")
    print(f"{'':28}{'p50 ms':>10}{'p95 ms':>10}")
    for label, index in (("first event", 0), ("first token", 1)):
        d = [r[index] for r in rows["direct"]]
        a = [r[index] for r in rows["agent"]]
        print(f"{'model node direct, ' + label:28}{pct(d, 0.5):>10.1f}{pct(d, 0.95):>10.1f}")
        print(f"{'agent /api/chat, ' + label:28}{pct(a, 0.5):>10.1f}{pct(a, 0.95):>10.1f}")
        added = statistics.median(a) * 1000 - statistics.median(d) * 1000
        ratio = statistics.median(a) / statistics.median(d)
        print(f"{'  added by the agent (p50)':28}{added:>10.1f}   ratio {ratio:.2f}x")


if __name__ == "__main__":
    main()
