"""The [auth] section as operators set it: from the shipped file plus ISA_AUTH__* environment variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from isa.auth.settings import auth_settings
from isa.core.settings import load_settings


def test_the_shipped_defaults_accept_only_api_keys_and_isa_tokens_with_a_30s_revocation_bound(data_dir: Path) -> None:
    auth = auth_settings(load_settings("all"))
    assert auth.issuers == ["isa"] and not auth.isa_tokens_enabled  # no secret shipped
    assert auth.principal_cache_seconds == 30 and auth.access_token_minutes == 15
    assert auth.dev_token_endpoint is False
    assert auth.rate_limit.auth_ip_limit < auth.rate_limit.principal_limit


def test_environment_variables_replace_issuer_and_scope_lists_instead_of_appending(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ISA_AUTH__ISSUERS", "supabase auth0")
    monkeypatch.setenv("ISA_AUTH__AUTH0__DOMAIN", "tenant.example")
    monkeypatch.setenv("ISA_AUTH__AUTH0__AUDIENCE", "https://api.example")
    monkeypatch.setenv("ISA_AUTH__AUTH0__DEFAULT_SCOPES", '["read"]')
    monkeypatch.setenv("ISA_AUTH__SUPABASE__SCOPES", "read")
    monkeypatch.setenv("ISA_AUTH__SUPABASE__ISSUER", "https://ref.supabase.co/auth/v1")
    monkeypatch.setenv("ISA_AUTH__SUPABASE_JWT_SECRET", "s" * 40)
    monkeypatch.setenv("ISA_AUTH__TOKEN_SECRET", "t" * 40)
    auth = auth_settings(load_settings("all"))
    assert auth.issuers == ["supabase", "auth0"]
    assert auth.auth0.default_scopes == ["read"] and auth.supabase.scopes == ["read"]
    assert auth.token_secret.get_secret_value() == "t" * 40 and "t" * 40 not in repr(auth)
