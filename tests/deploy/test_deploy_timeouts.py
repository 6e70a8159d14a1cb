"""Timeouts that must agree across the app's settings, the Terraform ALB and the systemd units (B2 items 9-11)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from isa.agent.settings import AgentSettings
from isa.auth.settings import AuthSettings
from isa.core.settings import Settings, load_settings
from isa.core.storage import StorageSettings
from isa.mcp.settings import McpSettings
from isa.roles import DEFAULT_PORTS
from tests.support.deploy import (
    SAMPLE_PUBLIC_HOSTNAME,
    SINGLE_ROLES,
    SYSTEMD,
    env_file_values,
    parse_unit,
    seconds,
    template_values,
    tf_default,
)


@pytest.fixture()
def node_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Settings]:
    """The effective settings of each role on an EC2 node: packaged defaults, production, /etc/isa/settings.toml
    and /etc/isa/common.env as bootstrap.sh writes them, plus the common secret's values (docs/deploy.md step 5)."""
    out = {}
    for role in SINGLE_ROLES:
        values = template_values(role)
        settings_file = tmp_path / f"{role}-settings.toml"
        settings_file.write_text(str(values["node_settings"]))
        for key in [k for k in os.environ if k.startswith("ISA_")]:
            monkeypatch.delenv(key)
        for key, value in env_file_values(str(values["common_env"])).items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("ISA_SETTINGS_FILE", str(settings_file))
        monkeypatch.setenv("ISA_DATA_DIR", str(tmp_path / "data"))
        monkeypatch.setenv("ISA_DATABASE__URL", "postgresql://isa@db.example.test:5432/isa")
        monkeypatch.setenv("ISA_AUTH__TOKEN_SECRET", "stand-in-for-the-common-secret-0123456789")
        out[role] = load_settings(role)
    return out


def _heartbeat(settings: Settings) -> float:
    """The agent's SSE heartbeat as the node runs it; a renamed or dropped setting fails here, loudly."""
    # The agent reads exactly this field (isa/agent/routes.py); a rename there must rename it here too.
    assert "heartbeat_seconds" in AgentSettings.model_fields, "AgentSettings has no heartbeat_seconds any more"
    raw = settings.raw.get("agent", {})
    # Present in the effective settings (packaged defaults + node files), not just a model default.
    assert "heartbeat_seconds" in raw, f"agent.heartbeat_seconds is not set on the node; agent keys: {sorted(raw)}"
    heartbeat = settings.section("agent", AgentSettings).heartbeat_seconds
    assert heartbeat == float(raw["heartbeat_seconds"])  # the model parsed the configured value, not its default
    return heartbeat


def test_b2_11_keep_alive_exceeds_the_alb_idle_timeout_and_the_sse_heartbeat_stays_below_it(
    node_settings: dict[str, Settings],
) -> None:
    idle = tf_default("alb_idle_timeout")
    for role, settings in node_settings.items():
        # uvicorn must not close an idle connection the ALB still considers open (the ALB would get a reset: 502).
        assert settings.server.keep_alive_seconds > idle, role
    # An SSE stream with nothing to say must still send a byte before the ALB drops it as idle.
    assert _heartbeat(node_settings["agent"]) < idle


def test_the_node_settings_satisfy_every_roles_start_up_checks(node_settings: dict[str, Settings]) -> None:
    for role, settings in node_settings.items():
        assert settings.env == "production" and settings.role == role
        assert settings.server.host == "0.0.0.0"  # the packaged production value survives the node's file
        assert SAMPLE_PUBLIC_HOSTNAME in settings.http.allowed_hosts
        assert not settings.database.auto_migrate  # isa-migrate.service owns migrations in production
        for upstream in ("mcp", "model", "agent"):
            url = getattr(settings.services, f"{upstream}_url")
            assert url == f"http://{upstream}.isa.internal:{DEFAULT_PORTS[upstream]}"
            assert f"{upstream}.isa.internal" in settings.http.allowed_hosts  # the callee accepts that Host
        # Parsed with the domains' own models, so a misspelt key (silently ignored) fails here.
        assert settings.section("auth", AuthSettings).trusted_proxy_hops == 1  # the ALB's X-Forwarded-For entry
        storage = settings.section("storage", StorageSettings)
        assert (storage.backend, storage.bucket, storage.region) == ("s3", "isa-files-sample", "eu-west-1")
        mcp = settings.section("mcp", McpSettings)
        assert mcp.public_url == f"https://{SAMPLE_PUBLIC_HOSTNAME}/mcp"
        assert mcp.stateless is (tf_default("nodes")["mcp"]["count"] > 1)


def test_a_stopping_node_leaves_the_alb_before_it_stops_accepting(node_settings: dict[str, Settings]) -> None:
    check = tf_default("health_check")
    for settings in node_settings.values():
        # Readiness turns 503 at SIGTERM; the ALB needs `unhealthy_threshold` failed checks `interval` apart.
        assert settings.server.drain_seconds >= check["interval"] * check["unhealthy_threshold"]
        assert settings.server.drain_seconds == tf_default("drain_seconds")


def test_the_health_check_timeout_is_below_its_interval_and_above_the_nodes_own_ready_bound(
    node_settings: dict[str, Settings],
) -> None:
    check = tf_default("health_check")
    assert check["timeout"] < check["interval"]
    for settings in node_settings.values():
        assert settings.health.ready_timeout_seconds < check["timeout"]


def test_systemd_gives_the_drain_and_the_graceful_shutdown_time_before_it_kills(
    node_settings: dict[str, Settings],
) -> None:
    node_unit = parse_unit(SYSTEMD / "isa@.service")["Service"]
    worker_unit = parse_unit(SYSTEMD / "isa-worker.service")["Service"]
    for settings in node_settings.values():
        needed = settings.server.drain_seconds + settings.server.graceful_timeout_seconds
        assert seconds(node_unit["TimeoutStopSec"][-1]) > needed
        assert seconds(worker_unit["TimeoutStopSec"][-1]) > settings.server.graceful_timeout_seconds
        # Targets leaving the group (scale-in, deregistration) keep in-flight requests at least as long.
        assert tf_default("deregistration_delay") >= settings.server.graceful_timeout_seconds
    assert node_unit["KillMode"] == ["mixed"]  # SIGTERM to isa only; its children go at the end
