"""Start-up checks of the mcp settings: DNS-rebinding protection can't be configured away by accident."""

from __future__ import annotations

import pytest

from isa.core.settings import ConfigError, Settings
from isa.mcp import settings as mcp_settings
from isa.mcp.transport import transport_security
from tests.support.mcp_servers import settings_with


@pytest.mark.parametrize("hosts", [["*"], ["api.example.com", "*.example.com"]])
def test_a_wildcard_host_for_mcp_is_a_start_up_error(settings: Settings, hosts: list[str]) -> None:
    with pytest.raises(ConfigError, match="allowed_hosts"):
        mcp_settings.load(settings_with(settings, http={"allowed_hosts": hosts}))


def test_mcp_hosts_can_be_narrower_than_the_nodes_and_any_port_is_allowed(settings: Settings) -> None:
    configured = settings_with(
        settings,
        http={"allowed_hosts": ["*"], "cors_origins": ["https://app.example.com"]},
        mcp={"allowed_hosts": ["mcp.example.com"], "allowed_origins": []},
    )
    security = transport_security(configured, mcp_settings.load(configured))
    assert security.enable_dns_rebinding_protection is True
    assert security.allowed_hosts == ["mcp.example.com", "mcp.example.com:*"]
    assert security.allowed_origins == ["https://app.example.com"]


def test_an_invalid_mcp_value_names_the_section(settings: Settings) -> None:
    with pytest.raises(ConfigError, match="mcp"):
        mcp_settings.load(settings_with(settings, mcp={"max_body_bytes": 0}))
