"""Prompt size per agent turn: tokens of the tool schemas the agent hands the model, against handing it every
tool the caller may use, on one scripted conversation with a 500-tool catalog (issue #25 item 5).

    .venv/bin/python tests/bench/bench_agent_tools.py [--tools 500]

One role-"all" node (uvicorn in a thread, embedded Postgres under a temporary data dir), the fake OpenAI-wire
provider on loopback (text answers, so one model request per turn, recorded). 500 synthetic tools in 25 servers
are imported through POST /catalog/import (each with a 3-parameter schema). Per turn, "agent" is the `tools` array
of the model request the agent really sent (its core tools plus what discovery found); "everything" is what
passing every schema would send: our tools from this caller's MCP tools/list (disclosure "everything") plus every
imported tool, as the same OpenAI function entries. Tokens: cl100k_base (the tokenizer file litellm ships).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import anyio
import httpx
import litellm

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

os.environ.setdefault("ISA_DATA_DIR", tempfile.mkdtemp(prefix="isa-bench-agent-tools-"))
os.environ.setdefault("ISA_ENV", "test")
# Offline: litellm ships the cl100k_base file under this name; tiktoken would otherwise download it.
os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(Path(litellm.__file__).parent / "litellm_core_utils" / "tokenizers"))

import tiktoken  # noqa: E402

from isa.agent.mcp_client import function_spec  # noqa: E402
from isa.app import create_app  # noqa: E402
from isa.core.db import resolve_url  # noqa: E402
from isa.core.settings import load_settings  # noqa: E402
from tests.support.agent import FAKE_MODEL, agent_settings, new_user  # noqa: E402
from tests.support.auth import create_key  # noqa: E402
from tests.support.fake_openai import FAKE_KEY_ENV, FakeOpenAI, Reply  # noqa: E402
from tests.support.mcp_servers import mcp_client, serve_asgi  # noqa: E402

VERBS = ["search", "create", "delete", "list", "update", "fetch", "archive", "export", "summarize", "share"]
OBJECTS = ["invoices", "emails", "calendar events", "github issues", "pull requests", "contacts", "files", "tickets"]
PLACES = ["in Gmail", "in Jira", "on S3", "in Zendesk", "in HubSpot", "in Stripe", "in Trello", "in Confluence"]
CONVERSATION = [
    "What time is it in Tokyo right now?",
    "Search my invoices in Stripe for anything unpaid this month.",
    "Create a ticket in Zendesk about the login bug.",
    "List the github issues in Jira assigned to me.",
    "Export my calendar events in Gmail for next week.",
    "Share the files on S3 from the design review with Dana.",
    "Summarize the pull requests in Confluence from yesterday.",
    "Archive the contacts in HubSpot that bounced.",
]


def catalog(count: int) -> list[dict[str, Any]]:
    rng = random.Random(count)
    servers: list[dict[str, Any]] = []
    for i in range(count):
        if i % 20 == 0:
            servers.append({"name": f"bench{i // 20}", "description": "synthetic tools for the bench", "tools": []})
        verb, obj, place = rng.choice(VERBS), rng.choice(OBJECTS), rng.choice(PLACES)
        servers[-1]["tools"].append(
            {
                "name": f"{verb}_{obj.replace(' ', '_')}_{i}",
                "description": f"{verb.capitalize()} {obj} {place}. Variant {i} with its own options and limits.",
                "inputSchema": {
                    "type": "object",
                    "properties": {
                        "query": {"type": "string", "description": f"what to {verb} among the {obj}"},
                        "limit": {"type": "integer", "description": "the most results to return", "default": 20},
                        "account": {"type": "string", "description": f"the account {place} to use"},
                    },
                    "required": ["query"],
                },
            }
        )
    return servers


async def own_tools(node: str, key: str) -> list[dict[str, Any]]:
    async with mcp_client(node, key) as client:
        listed = (await client.list_tools()).tools
    return [function_spec(t.name, t.description or "", t.input_schema) for t in listed]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tools", type=int, default=500)
    args = parser.parse_args()
    os.environ[FAKE_KEY_ENV] = "sk-bench"
    enc = tiktoken.get_encoding("cl100k_base")

    def tokens(specs: list[dict[str, Any]]) -> int:
        return len(enc.encode(json.dumps(specs)))

    base = load_settings("all")
    url = resolve_url(base)
    servers = catalog(args.tools)
    with FakeOpenAI() as fake:
        settings = agent_settings(base, fake, heartbeat_seconds=15, max_iterations=4)
        fake.script(FAKE_MODEL, Reply(text="Done.", chunks=1, times=10_000))
        with serve_asgi(create_app(settings, "all", database_url=url)) as node:
            admin = create_key(url, settings, "bench-admin", "admin")
            _, key = new_user(url, settings, credits=100_000)
            with httpx.Client(base_url=node, timeout=300) as http:
                r = http.post("/catalog/import", json=servers, headers={"Authorization": f"Bearer {admin}"})
                assert r.status_code == 201, r.text
                ours = anyio.run(own_tools, node, key)
                imported = [
                    function_spec(t["name"], t["description"], t["inputSchema"]) for s in servers for t in s["tools"]
                ]
                everything = ours + imported
                auth = {"Authorization": f"Bearer {key}"}
                session_id = http.post("/api/sessions", json={"title": "bench"}, headers=auth).json()["session_id"]
                fake.reset()
                fake.script(FAKE_MODEL, Reply(text="Done.", chunks=1, times=10_000))
                for message in CONVERSATION:
                    body = {"message": message, "session_id": session_id}
                    with http.stream("POST", "/api/chat", json=body, headers=auth) as response:
                        assert response.status_code == 200, response.read()
                        for _ in response.iter_lines():
                            pass
            sent = [r.body.get("tools") or [] for r in fake.requests_for(FAKE_MODEL)]
    assert len(sent) == len(CONVERSATION), f"expected one model request per turn, got {len(sent)}"
    full = tokens(everything)
    print(f"catalog: {args.tools} imported tools + our own; conversation: {len(CONVERSATION)} turns; cl100k_base")
    print(f"{'turn':<6}{'tools (agent)':>14}{'tokens (agent)':>16}{'tokens (everything)':>21}{'ratio':>8}")
    per_turn = []
    for i, specs in enumerate(sent, 1):
        n = tokens(specs)
        per_turn.append(n)
        print(f"{i:<6}{len(specs):>14}{n:>16}{full:>21}{full / max(n, 1):>7.0f}x")
    mean = statistics.mean(per_turn)
    print(f"mean  {statistics.mean(len(s) for s in sent):>14.1f}{mean:>16.0f}{full:>21}{full / mean:>7.0f}x")
    print(f"everything = {len(ours)} of ours ({tokens(ours)} tokens) + {len(imported)} imported ({tokens(imported)})")


if __name__ == "__main__":
    main()
