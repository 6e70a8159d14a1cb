"""Settings of the MCP endpoint (`[default.mcp]` in config/settings.toml, `ISA_MCP__*` in the environment)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from isa.core.settings import ConfigError, Settings

LOOPBACK_ORIGINS = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]


class McpSettings(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    # Transport
    stateless: bool = False
    json_response: bool = False
    max_body_bytes: int = Field(default=4 * 1024 * 1024, gt=0)
    session_idle_timeout_seconds: float = Field(default=1800, gt=0)
    max_sessions: int = Field(default=10_000, gt=0)
    # Host headers /mcp answers to; empty: http.allowed_hosts. Exact names only (the SDK can't match wildcards).
    allowed_hosts: list[str] = Field(default_factory=list)
    # Browser origins allowed to call /mcp (plus http.cors_origins); requests without Origin always pass.
    allowed_origins: list[str] = Field(default_factory=lambda: list(LOOPBACK_ORIGINS))

    # OAuth protected-resource metadata (RFC 9728)
    public_url: str = ""  # e.g. https://mcp.example.com/mcp; empty: derived from the request
    authorization_servers: list[str] = Field(default_factory=list)  # empty: this node's own origin
    required_scope: str = "read"

    # Tools
    # What a fresh session's tools/list shows: "everything" the caller may use; "meta": the meta-tools plus
    # default_tools; "auto": "meta" when the caller would see more than auto_threshold tools, else everything.
    disclosure: Literal["everything", "meta", "auto"] = "everything"
    auto_threshold: int = Field(default=40, ge=0)
    # The older switch: true means disclosure "meta" (unless disclosure says "auto").
    search_then_call: bool = False
    default_tools: list[str] = Field(
        default_factory=lambda: ["get_current_time", "format_json", "ask_human", "request_authorization"]
    )
    discover_max: int = Field(default=20, gt=0)
    # Progressive disclosure: tools one session may add to its tools/list with select_tools.
    max_selected_tools: int = Field(default=64, ge=1, le=1000)
    default_rate_limit_per_minute: int = Field(default=120, ge=0)
    approval_ttl_seconds: int = Field(default=1800, gt=0)
    approval_valid_seconds: int = Field(default=3600, gt=0)

    # Audit rows are written in batches this often (a hard crash can lose at most this much).
    audit_flush_seconds: float = Field(default=0.2, gt=0, le=60)

    # Imported tools: forwarded upstream with these headers per server name (secrets: set them in the env)
    upstream_headers: dict[str, dict[str, str]] = Field(default_factory=dict)
    upstream_timeout_seconds: float = Field(default=30, gt=0)
    breaker_failure_threshold: int = Field(default=5, gt=0)
    breaker_cooldown_seconds: float = Field(default=30, gt=0)

    @property
    def fresh_session(self) -> Literal["everything", "meta", "auto"]:
        """The disclosure in force: search_then_call = true (the older switch) upgrades "everything" to "meta"."""
        if self.search_then_call and self.disclosure == "everything":
            return "meta"
        return self.disclosure


def load(settings: Settings) -> McpSettings:
    """The mcp section, checked; a bad value is a start-up error naming the setting."""
    mcp = settings.section("mcp", McpSettings)
    for host in effective_hosts(settings, mcp):
        if "*" in host:
            raise ConfigError(
                "mcp.allowed_hosts (or http.allowed_hosts) must name exact hosts for /mcp: "
                f"{host!r} would switch off DNS-rebinding protection"
            )
    return mcp


def effective_hosts(settings: Settings, mcp: McpSettings) -> list[str]:
    return list(mcp.allowed_hosts or settings.http.allowed_hosts)


def effective_origins(settings: Settings, mcp: McpSettings) -> list[str]:
    return list(dict.fromkeys([*mcp.allowed_origins, *settings.http.cors_origins]))
