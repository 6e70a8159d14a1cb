"""Settings: environment sections override single keys, environment variables win, secrets are masked."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from isa.core.settings import ConfigError, load_settings


def test_production_overrides_single_keys_and_keeps_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ISA_ENV", "production")
    monkeypatch.setenv("ISA_DATABASE__URL", "postgresql://isa@db.internal/isa")
    settings = load_settings("model")
    assert settings.server.host == "0.0.0.0" and settings.server.drain_seconds == 5
    assert settings.server.keep_alive_seconds == 75  # from [default.server]
    assert settings.logging.format == "json"
    assert settings.database.auto_migrate is False and settings.database.pool_max == 10


def test_a_list_from_the_environment_replaces_the_default_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ISA_HTTP__ALLOWED_HOSTS", '["api.example.com"]')
    assert load_settings().http.allowed_hosts == ["api.example.com"]


def test_an_unknown_role_or_environment_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="ROLE"):
        load_settings("gateway")
    monkeypatch.setenv("ISA_ENV", "staging")
    with pytest.raises(ConfigError, match="ISA_ENV"):
        load_settings()


def test_config_show_masks_secrets_and_url_passwords() -> None:
    env = {
        **os.environ,
        "ISA_DATABASE__URL": "postgresql://isa:hunter2@db.internal:5432/isa",
        "ISA_AUTH__TOKEN_SECRET": "s3cr3t-value-123",
    }
    result = subprocess.run(
        [sys.executable, "-m", "isa", "config", "show"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["database"]["url"] == "postgresql://isa:***@db.internal:5432/isa"
    assert shown["auth"]["token_secret"] == "***"
    assert "hunter2" not in result.stdout and "s3cr3t" not in result.stdout


def test_a_bad_section_value_is_a_config_error_that_names_the_key_but_never_echoes_the_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One translation for every domain's section (here catalog, which used to print a traceback)."""
    monkeypatch.setenv("ISA_CATALOG__QUERY_CACHE_SIZE", "hunter2-not-a-number")
    monkeypatch.setenv("ISA_MCP__MAX_BODY_BYTES", "-7777")
    settings = load_settings("mcp")
    from isa.catalog.settings import CatalogSettings
    from isa.mcp import settings as mcp_settings

    with pytest.raises(ConfigError, match=r"CATALOG\.QUERY_CACHE_SIZE") as caught:
        settings.section("catalog", CatalogSettings)
    assert "hunter2" not in str(caught.value)
    with pytest.raises(ConfigError, match=r"MCP\.MAX_BODY_BYTES") as caught:
        mcp_settings.load(settings)
    assert "7777" not in str(caught.value)


def test_isa_serve_exits_2_on_a_bad_section_value_without_a_traceback() -> None:
    env = {**os.environ, "ISA_EVENTS__POLL_INTERVAL_SECONDS": "soonish-xyz"}
    result = subprocess.run(
        [sys.executable, "-m", "isa", "serve", "--role", "mcp", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert "EVENTS.POLL_INTERVAL_SECONDS" in result.stderr and "Traceback" not in result.stderr
    assert "soonish" not in result.stderr
