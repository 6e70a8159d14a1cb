"""How the agent reaches the model and MCP nodes: one interface, two transports, never the caller's token.

Over HTTP when `services.model_url` / `services.mcp_url` are set; in-process (the process's own app, through
the shared `isa.llm.transport.local_node`) when that role is served by this process and no URL is set.
Either way the request carries a short isa access token minted for the user (`sub` = the user, at most the
`write` scope, no API key id), so the upstream node verifies who it acts for, and the user's own bearer
never leaves this node.
"""

from __future__ import annotations

import httpx
import httpx2

from isa.agent.settings import AgentSettings
from isa.auth.principal import Principal, expand_scopes, minimal_scopes
from isa.auth.settings import AuthSettings
from isa.auth.tokens import mint_access_token
from isa.core.errors import ApiError
from isa.core.settings import Settings
from isa.llm.transport import InProcess, NodeTarget, StreamingASGITransport, StreamingASGITransport2, node_target

# The agent acts for the user on their own data, never as an administrator.
_AGENT_SCOPES = frozenset({"read", "write"})


class Upstreams:
    def __init__(
        self, settings: Settings, agent: AgentSettings, auth: AuthSettings, role: str, local: InProcess | None = None
    ) -> None:
        self.agent = agent
        self.auth = auth
        # The process's shared in-process transport (local_node); without one, in-process targets are unreachable.
        self.inproc = local or InProcess()
        self.model = node_target(settings, "model", role)
        self.mcp = node_target(settings, "mcp", role)

    @property
    def configured(self) -> bool:
        return self.auth.isa_tokens_enabled

    def token_for(self, principal: Principal) -> str:
        """A short isa access token for the principal's user, scoped to read/write."""
        if not self.configured:
            raise ApiError(
                503,
                "agent_not_configured",
                "the agent needs auth.token_secret (ISA_AUTH__TOKEN_SECRET) to act for users on the other nodes",
            )
        scopes = minimal_scopes(expand_scopes(principal.scopes) & _AGENT_SCOPES) or ["read"]
        token, _ = mint_access_token(self.auth, principal.user_id, scopes, None, self.agent.token_minutes)
        return token

    def _need(self, target: NodeTarget | None, name: str) -> NodeTarget:
        if target is None:
            raise ApiError(503, f"{name}_not_configured", f"no {name} node: set services.{name}_url")
        return target

    def _timeout(self, read: float) -> httpx.Timeout:
        return httpx.Timeout(connect=self.agent.connect_timeout_seconds, read=read, write=30.0, pool=30.0)

    def _headers(self, token: str, request_id: str) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {token}", "User-Agent": "isa-agent"}
        if request_id:
            headers["X-Request-ID"] = request_id
        return headers

    def client(self, name: str, token: str, request_id: str = "", *, read_timeout: float = 60.0) -> httpx.AsyncClient:
        """An httpx client for the model or mcp node (`name`), authenticated as the user."""
        target = self._need(self.model if name == "model" else self.mcp, name)
        transport = StreamingASGITransport(self.inproc) if target.local else None
        return httpx.AsyncClient(
            base_url=target.base_url,
            headers=self._headers(token, request_id),
            timeout=self._timeout(read_timeout),
            transport=transport,
            follow_redirects=False,
        )

    def mcp_client2(self, token: str, request_id: str = "") -> tuple[httpx2.AsyncClient, str]:
        """The httpx2 client the MCP SDK's transport takes, and the /mcp URL."""
        target = self._need(self.mcp, "mcp")
        transport = StreamingASGITransport2(self.inproc) if target.local else None
        client = httpx2.AsyncClient(
            headers=self._headers(token, request_id),
            timeout=httpx2.Timeout(
                connect=self.agent.connect_timeout_seconds,
                read=self.agent.tool_timeout_seconds + 5,
                write=30.0,
                pool=30.0,
            ),
            transport=transport,
            follow_redirects=False,
        )
        return client, target.base_url + "/mcp"
