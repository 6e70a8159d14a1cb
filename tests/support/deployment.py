"""The multi-node deployment as real processes: `isa serve` for mcp, model and agent, plus `isa worker`.

The same shape as tests/agent/test_agent_e2e.py (the model node in front of the scripted fake provider, the agent
reaching the others over HTTP only), with the event service's worker as its own process, the way production runs it
(deploy/systemd/isa-worker.service). Extra environment per node goes in `mcp_env` / `worker_env`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.agent import AGENT_TOKEN_SECRET
from tests.support.fake_openai import FAKE_KEY_ENV, FakeOpenAI, model_section
from tests.support.procs import IsaProcess, free_port, isa_serve

# The agent bounds of the agent e2e: quick heartbeats and timeouts, no chat rate limit.
AGENT_SECTION: dict[str, Any] = {
    "heartbeat_seconds": 0.5,
    "tool_timeout_seconds": 3,
    "model_idle_timeout_seconds": 4,
    "max_iterations": 5,
    "chat_rate_limit_per_minute": 0,
    "core_tools": "create_execution_plan ask_human",
}


def common_env(db_url: str) -> dict[str, str]:
    """What every node shares: the database (already migrated) and the isa token secret."""
    return {
        "ISA_DATABASE__URL": db_url,
        "ISA_DATABASE__AUTO_MIGRATE": "false",
        "ISA_AUTH__TOKEN_SECRET": AGENT_TOKEN_SECRET,
        "ISA_AGENT": "@json " + json.dumps(AGENT_SECTION),
    }


def model_env(fake: FakeOpenAI) -> dict[str, str]:
    """The model node's deployments, all on the fake provider (no fallbacks, no retries)."""
    os.environ.setdefault(FAKE_KEY_ENV, "sk-fake-provider-key")
    return {"ISA_MODEL": "@json " + json.dumps(model_section(fake, fallbacks={}, num_retries=0))}


@contextmanager
def isa_worker(data_dir: Path, env: dict[str, str], name: str = "e2e-worker") -> Iterator[subprocess.Popen[str]]:
    """A long-running `isa worker` process (logs in data_dir); killed on exit."""
    log_path = data_dir / f"isa-worker-{name}-{free_port()}.log"
    full_env = {**os.environ, "ISA_DATA_DIR": str(data_dir), "ISA_ENV": "test", **env}
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "isa", "worker", "--worker-id", name],
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


@dataclass
class Deployment:
    mcp: IsaProcess
    model: IsaProcess
    agent: IsaProcess
    worker: subprocess.Popen[str]
    data_dir: Path

    def logs(self) -> str:
        """The tail of every node's log, for assertion messages."""
        parts = [f"--- {p.log_path.name}\n{p.log()[-1500:]}" for p in (self.mcp, self.model, self.agent)]
        workers = sorted(self.data_dir.glob("isa-worker-*.log"))
        parts += [f"--- {w.name}\n{w.read_text(errors='replace')[-1500:]}" for w in workers[-1:]]
        return "\n".join(parts)


@contextmanager
def deploy_with_worker(
    data_dir: Path,
    db_url: str,
    fake: FakeOpenAI,
    *,
    mcp_env: dict[str, str] | None = None,
    worker_env: dict[str, str] | None = None,
    ready_timeout: float = 120,
) -> Iterator[Deployment]:
    """mcp + model + agent nodes and one `isa worker` whose events.agent_url is the agent node.

    All four start at once (ports are chosen up front), then each is waited for: the agent's readiness waits for
    the other two anyway, and starting in parallel halves the fixture's wall time on a busy machine.
    """
    mcp_port, model_port, agent_port = free_port(), free_port(), free_port()
    common = common_env(db_url)
    events = {**(mcp_env or {}), "ISA_EVENTS__AGENT_URL": f"http://127.0.0.1:{agent_port}"}
    agent_env = {
        **common,
        "ISA_SERVICES__MODEL_URL": f"http://127.0.0.1:{model_port}",
        "ISA_SERVICES__MCP_URL": f"http://127.0.0.1:{mcp_port}",
    }
    with ExitStack() as stack:
        mcp = stack.enter_context(isa_serve("mcp", data_dir, port=mcp_port, env={**common, **events}))
        model = stack.enter_context(isa_serve("model", data_dir, port=model_port, env={**common, **model_env(fake)}))
        agent = stack.enter_context(isa_serve("agent", data_dir, port=agent_port, env=agent_env))
        worker = stack.enter_context(isa_worker(data_dir, {**common, **events, **(worker_env or {})}))
        for node in (mcp, model, agent):
            node.wait_ready(ready_timeout)
        if worker.poll() is not None:
            raise RuntimeError(f"isa worker exited with {worker.returncode}")
        yield Deployment(mcp, model, agent, worker, data_dir)
