"""litellm is heavy: only a process that serves the model role imports it."""

from __future__ import annotations

import json
import subprocess
import sys

from starlette.testclient import TestClient

from isa.core.settings import Settings
from isa.roles import domains_for

PROBE = """
import json, sys
from isa.app import create_app
from isa.core.settings import load_settings
settings = load_settings("all")
out = {}
for role in ("mcp", "agent"):
    create_app(settings, role, database_url="postgresql://nobody@127.0.0.1:1/none")
    out[role] = "litellm" in sys.modules
import isa.model, isa.model.routes, isa.model.service, isa.model.invoke
out["model_package"] = "litellm" in sys.modules
create_app(settings, "model", database_url="postgresql://nobody@127.0.0.1:1/none")
out["model_app_created"] = "litellm" in sys.modules
print(json.dumps(out))
"""


def test_mcp_and_agent_processes_never_import_litellm() -> None:
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=True)
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    # Not even building the model app imports it: that happens when the node starts (lifespan).
    assert seen == {"mcp": False, "agent": False, "model_package": False, "model_app_created": False}


def test_the_model_role_serves_the_gateway() -> None:
    assert "isa.model" in domains_for("model") and "isa.model" in domains_for("all")
    assert "isa.model" not in domains_for("mcp") and "isa.model" not in domains_for("agent")


def test_role_all_serves_the_gateway_description_beside_the_user_services(settings: Settings, db_url: str) -> None:
    from isa.app import create_app
    from isa.model.openapi import docs, openapi_json

    with TestClient(create_app(settings, "all", database_url=db_url)) as client:
        spec = client.get("/v1/openapi.json")
        assert spec.status_code == 200 and "/v1/chat/completions" in spec.json()["paths"]
        assert client.get("/v1/docs").status_code == 200
        # /openapi.json stays the user service's in role "all"; /docs shows the gateway on every node.
        gateway_paths = [r.path for r in client.app.routes if getattr(r, "endpoint", None) in (docs, openapi_json)]  # type: ignore[attr-defined]
        assert sorted(gateway_paths) == ["/docs", "/v1/docs", "/v1/openapi.json"]
        assert "/api/v1/users/ensure" in client.get("/openapi.json").json()["paths"]
