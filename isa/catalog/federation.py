"""Live MCP servers in the catalog: added by URL, listed over MCP, kept in sync, called with their own credentials.

A server added with `isa catalog add` (or POST /catalog/servers) is listed with the SDK's client (tools, prompts,
resources and resource templates; every page), imported like a file import, and then watched: each serving
process holds one session per server and re-syncs on `notifications/*/list_changed`, and every
`federation_sync_seconds` in any case (a server that never notifies, or a dropped session). Tools gone upstream are
retired by the import itself (delete_missing). Credentials are sealed at rest (isa/catalog/sealing.py); the caller's
own token never leaves isa: an upstream sees the server's headers, or the calling user's own stored credential.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx2
import mcp_types as types
from mcp.client import Client
from mcp.client.session import MessageHandlerFnT
from mcp.client.streamable_http import streamable_http_client
from pydantic import ValidationError

from isa.catalog import federation_oauth_store as ostore
from isa.catalog import federation_store as fstore
from isa.catalog.federation_oauth import UpstreamOAuth
from isa.catalog.models import CatalogItem
from isa.catalog.schemas import ImportedServerSpec, ImportedTool
from isa.catalog.sealing import Sealer
from isa.catalog.service import CatalogService, Progress
from isa.catalog.settings import CatalogSettings
from isa.core.db import Database
from isa.core.errors import ApiError
from isa.core.http import invalid
from isa.core.logging import get_logger

log = get_logger(__name__)
CREDENTIAL = "{credential}"
_CHANGED = (
    types.ToolListChangedNotification,
    types.PromptListChangedNotification,
    types.ResourceListChangedNotification,
)


@dataclass(frozen=True)
class Listing:
    """What one upstream offers, as import input: its tools (spec) and its prompts and resources (items)."""

    spec: ImportedServerSpec
    extras: list[CatalogItem]


@dataclass
class _Watch:
    wake: anyio.Event = field(default_factory=anyio.Event)
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)


def parse_header(raw: str) -> tuple[str, str]:
    """'Name: value' -> (name, value); 422 `invalid_header` otherwise."""
    name, sep, value = raw.partition(":")
    if not sep or not name.strip() or not value.strip() or any(c in raw for c in "\r\n"):
        raise ApiError(422, "invalid_header", "a header is written 'Name: value'")
    return name.strip(), value.strip()


def _security(tool: types.Tool) -> str:
    """Only an explicit destructive hint raises the level (the spec's default is 'destructive', which would make every
    upstream tool need approval); it is a hint from the upstream, so it can only make a tool harder to run."""
    hints = tool.annotations
    return "HIGH" if hints is not None and hints.destructive_hint is True and not hints.read_only_hint else "LOW"


async def _pages(list_page: Callable[..., Awaitable[Any]], items: str, max_pages: int) -> list[Any]:
    """Every item of a paged MCP listing: `list_page(cursor=...)` answers a page with its items in `items`."""
    out: list[Any] = []
    cursor: str | None = None
    for _ in range(max_pages):
        page = await list_page(cursor=cursor)
        out.extend(getattr(page, items))
        cursor = page.next_cursor
        if not cursor:
            return out
    raise ApiError(502, "upstream_too_large", f"the upstream listing has more than {max_pages} pages")


async def list_upstream(client: Client, name: str, url: str, max_pages: int) -> Listing:
    """Every tool, prompt, resource and resource template of the server behind `client`, all pages."""
    caps = client.server_capabilities
    found_tools: list[types.Tool] = []
    found_prompts: list[types.Prompt] = []
    if caps is None or caps.tools:
        found_tools = await _pages(client.list_tools, "tools", max_pages)
    if caps is None or caps.prompts:
        found_prompts = await _pages(client.list_prompts, "prompts", max_pages)
    found_resources: list[types.Resource] = []
    found_templates: list[types.ResourceTemplate] = []
    if caps is None or caps.resources:
        found_resources = await _pages(client.list_resources, "resources", max_pages)
        found_templates = await _pages(client.list_resource_templates, "resource_templates", max_pages)
    spec = ImportedServerSpec(
        name=name,
        url=url,
        description=(client.server_info.name if client.server_info else "") or "",
        tools=[
            ImportedTool(
                name=t.name,
                description=t.description or "",
                inputSchema=t.input_schema or {"type": "object"},
                securityLevel=_security(t),
                title=t.title or (t.annotations.title if t.annotations else None),
            )
            for t in found_tools
        ],
    )
    extras = [
        CatalogItem(
            item_type="prompt",
            server=name,
            name=p.name,
            qualified_name="",
            description=p.description or "",
            input_schema={
                "arguments": [
                    {"name": a.name, "description": a.description or "", "required": bool(a.required)}
                    for a in p.arguments or []
                ]
            },
            metadata={"imported": True, "upstream": True},
        )
        for p in found_prompts
    ]
    for uri, title, description, mime in [
        *((r.uri, r.name, r.description, r.mime_type) for r in found_resources),
        *((t.uri_template, t.name, t.description, t.mime_type) for t in found_templates),
    ]:
        extras.append(
            CatalogItem(
                item_type="resource",
                server=name,
                name=str(uri),
                qualified_name="",
                description=description or title or "",
                metadata={"imported": True, "upstream": True, "title": title, "mime_type": mime},
            )
        )
    return Listing(spec, extras)


@asynccontextmanager
async def connect(
    url: str,
    headers: dict[str, str],
    timeout: float,  # noqa: ASYNC109 - the per-request read timeout of the session, not a bound on this call
    on_message: MessageHandlerFnT | None = None,
) -> AsyncIterator[Client]:
    """A session with the upstream over streamable HTTP, sending only `headers` (never a caller's token)."""
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(timeout, read=None)) as http:
        transport = streamable_http_client(url, http_client=http)
        async with Client(
            transport, mode="legacy", read_timeout_seconds=timeout, cache=None, message_handler=on_message
        ) as client:
            yield client


class Federation:
    """Adds, syncs, watches and removes live upstream servers; answers which headers a call to one carries."""

    def __init__(self, catalog: CatalogService, db: Database, settings: CatalogSettings) -> None:
        self.catalog = catalog
        self.db = db
        self.settings = settings
        self.sealer = Sealer(settings.credentials_key_env)
        self.oauth = UpstreamOAuth(db, self.sealer, settings.federation_timeout_seconds)
        self._watches: dict[str, _Watch] = {}
        self._reconcile = anyio.Event()

    # --- adding and syncing -----------------------------------------------------------------------------------

    async def add(
        self,
        name: str,
        url: str,
        headers: dict[str, str],
        user_header: str | None = None,
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        """Connect, list everything, import it and remember how to reach the server (re-adding updates it)."""
        async with self.db.transaction() as conn:  # added again without --auth oauth: isa's registration goes
            await ostore.delete_client(conn, name)
        if user_header is not None and (": " not in user_header or CREDENTIAL not in user_header):
            raise ApiError(422, "invalid_user_header", f"the per-user header is written 'Name: ...{CREDENTIAL}...'")
        sealed = self.sealer.seal(json.dumps(headers)) if headers else None  # refuses without a key
        if user_header is not None:
            self.sealer.seal("")  # users' credentials will need the key too: say so now, not at their first call
        try:
            listing = await self._list(name, url, headers)
        except ApiError:
            raise
        except Exception as exc:
            raise ApiError(
                502, "upstream_unreachable", f"could not list the MCP server at {url}: {_reason(exc)}"
            ) from None
        return await self._remember(listing, sealed, user_header, progress)

    async def _remember(
        self, listing: Listing, sealed: str | None, user_header: str | None, progress: Progress | None = None
    ) -> dict[str, Any]:
        name, url = listing.spec.name, str(listing.spec.url)
        [report] = await self.catalog.import_servers([listing.spec], {name: listing.extras}, progress)
        async with self.db.transaction() as conn:
            await fstore.upsert_upstream(conn, name, url, sealed, user_header)
            await fstore.notify(conn)
        self._reconcile.set()
        prompts = sum(1 for i in listing.extras if i.item_type == "prompt")
        return {**report, "prompts": prompts, "resources": len(listing.extras) - prompts, "per_user": bool(user_header)}

    async def add_oauth(
        self, name: str, url: str, per_user: bool, redirect_uri: str, started_by: str
    ) -> dict[str, Any]:
        """Register isa as an OAuth client of the server; the tools come once an admin completes the server's grant
        at the authorization URL returned (the callback lists them)."""
        try:  # the name and URL rules of any server, before anything is written
            ImportedServerSpec(name=name, url=url)
        except ValidationError as exc:
            raise invalid(exc, "server") from None
        await self.oauth.register(name, url, per_user, redirect_uri)
        self._reconcile.set()  # a server added before without OAuth stops being watched with its old headers
        return {**await self.oauth.start(name, started_by, for_user=False), "per_user": per_user, "auth": "oauth"}

    async def oauth_callback(
        self, state: str, code: str | None, iss: str | None, error: str | None, caller: str | None
    ) -> dict[str, Any]:
        """Finish a grant; the server's own grant then lists the server (its first sync, or a new one)."""
        done = await self.oauth.complete(state, code, iss, error, caller)
        if done["grant"] == "server":
            reg = await self.oauth.registered(done["server"])
            listing = await self._list(reg.server, reg.url, await self._oauth_headers(reg.server, None))
            done["synced"] = await self._remember(listing, None, None)
            done["synced"]["per_user"] = reg.per_user
        return done

    async def _oauth_headers(self, server: str, user_id: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {await self.oauth.bearer(server, user_id)}"}

    async def _list(self, name: str, url: str, headers: dict[str, str], client: Client | None = None) -> Listing:
        with anyio.fail_after(self.settings.federation_timeout_seconds * 2):
            if client is not None:
                return await list_upstream(client, name, url, self.settings.federation_max_pages)
            async with connect(url, headers, self.settings.federation_timeout_seconds) as fresh:
                return await list_upstream(fresh, name, url, self.settings.federation_max_pages)

    async def sync(self, name: str, client: Client | None = None) -> dict[str, Any]:
        """List the server again and import the difference (its removed tools are retired); health is recorded."""
        config = await self._config(name)
        try:
            listing = await self._list(name, config["url"], config["headers"], client)
            [report] = await self.catalog.import_servers([listing.spec], {name: listing.extras})
        except Exception as exc:
            await self._mark_down(name, exc)
            if isinstance(exc, ApiError) or client is not None:
                raise
            raise ApiError(502, "upstream_unreachable", f"could not list {name!r}: {_reason(exc)}") from None
        async with self.db.transaction() as conn:
            await fstore.mark_health(conn, name, None)
        return report

    async def _mark_down(self, name: str, exc: BaseException) -> None:
        try:
            async with self.db.transaction() as conn:
                await fstore.mark_health(conn, name, _reason(exc))
        except Exception as db_exc:  # the database may be the thing that is down
            log.warning("upstream_health_not_recorded", server=name, error=type(db_exc).__name__)

    async def remove(self, name: str) -> int:
        async with self.db.transaction() as conn:  # isa's OAuth registration and grants for it (not in the catalog
            registered = await ostore.delete_client(conn, name)  # yet while its first grant is pending)
        try:
            removed = await self.catalog.remove_server(name)  # the upstream row and credentials go with it (cascade)
        except ApiError as exc:
            if not registered or exc.status != 404:
                raise
            removed = 0
        self._reconcile.set()
        return removed

    async def _config(self, name: str) -> dict[str, Any]:
        async with self.db.connection() as conn:
            row = await fstore.get_upstream(conn, name)
        if row is None:
            raise ApiError(404, "unknown_server", f"no server named {name!r} was added by URL")
        headers = json.loads(self.sealer.open(row["headers_sealed"])) if row["headers_sealed"] else {}
        if await self.oauth.registration(name) is not None:  # listed with the server's own grant, never a user's
            headers.update(await self._oauth_headers(name, None))
        return {**row, "headers": headers}

    async def list_servers(self) -> list[dict[str, Any]]:
        """Every server in the catalog; those added by URL with their health, last sync and error."""
        servers = await self.catalog.list_servers()
        async with self.db.connection() as conn:
            health = await fstore.health_of(conn)
            oauth = await ostore.clients(conn)
        for server in servers:
            h = health.get(server["name"])
            server["auth"] = "oauth" if server["name"] in oauth else None
            server["source"] = "url" if h else ("isa" if server["name"] == "isa" else "import")
            server["health"] = h["health"] if h else None
            server["last_sync_at"] = h["last_sync_at"].isoformat() if h and h["last_sync_at"] else None
            server["last_error"] = h["last_error"] if h else None
            server["per_user"] = bool(h and h["per_user"]) or bool(oauth.get(server["name"], {}).get("per_user"))
        return servers

    # --- credentials of a call ----------------------------------------------------------------------------------

    async def headers_for(self, server: str, user_id: str) -> dict[str, str]:
        """Headers a call to `server` on behalf of `user_id` carries; {} for a server not added by URL."""
        reg = await self.oauth.registration(server)
        if reg is not None:  # the user's own grant on a per-user server, else the server's
            return await self._oauth_headers(server, user_id if reg.per_user else None)
        async with self.db.connection() as conn:
            row = await fstore.get_upstream(conn, server)
            stored = await fstore.get_credential(conn, server, user_id) if row and row["user_header"] else None
        if row is None:
            return {}
        headers: dict[str, str] = json.loads(self.sealer.open(row["headers_sealed"])) if row["headers_sealed"] else {}
        if row["user_header"]:
            if stored is None:
                raise ApiError(
                    403,
                    "upstream_credential_required",
                    f"the server {server!r} acts as you and needs your own credential: store it with "
                    f'PUT /catalog/servers/{server}/credential {{"credential": "..."}} (or the '
                    "set_upstream_credential tool), then call again",
                )
            header, _, template = row["user_header"].partition(": ")
            headers[header] = template.replace(CREDENTIAL, self.sealer.open(stored["secret_sealed"]))
        return headers

    async def store_credential(self, server: str, user_id: str, credential: str) -> None:
        async with self.db.connection() as conn:
            row = await fstore.get_upstream(conn, server)
        if row is None or not row["user_header"]:
            raise ApiError(404, "unknown_server", f"no server named {server!r} takes per-user credentials")
        sealed = self.sealer.seal(credential)
        async with self.db.transaction() as conn:
            await fstore.set_credential(conn, server, user_id, sealed)
        log.info("upstream_credential_stored", server=server, user_id=user_id)

    async def revoke_credential(self, server: str, user_id: str) -> None:
        async with self.db.transaction() as conn:
            deleted = await fstore.delete_credential(conn, server, user_id)
        if not deleted:
            raise ApiError(404, "no_credential", f"you have no credential stored for {server!r}")
        log.info("upstream_credential_revoked", server=server, user_id=user_id)

    async def credential_status(self, server: str, user_id: str) -> dict[str, Any]:
        async with self.db.connection() as conn:
            row = await fstore.get_credential(conn, server, user_id)
        return {"server": server, "stored": row is not None, "stored_at": row["created_at"] if row else None}

    # --- watching -------------------------------------------------------------------------------------------------

    def wake(self) -> None:
        """The catalog changed somewhere: look for servers added or removed."""
        self._reconcile.set()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._supervise, tg)
            try:
                yield
            finally:
                tg.cancel_scope.cancel()

    async def _supervise(self, tg: anyio.abc.TaskGroup) -> None:
        while True:
            self._reconcile = anyio.Event()
            try:
                async with self.db.connection() as conn:
                    names = set(await fstore.upstream_names(conn))
                for gone in set(self._watches) - names:
                    self._watches.pop(gone).scope.cancel()
                for new in names - set(self._watches):
                    watch = self._watches[new] = _Watch()
                    tg.start_soon(self._watch, new, watch)
            except Exception as exc:  # the database may be down; the next round tries again
                log.warning("federation_reconcile_failed", error=type(exc).__name__)
            with anyio.move_on_after(self.settings.federation_sync_seconds):
                await self._reconcile.wait()

    async def _watch(self, name: str, watch: _Watch) -> None:
        """Hold a session with the server; re-sync on its list_changed notifications and on the schedule."""
        delay = 1.0
        with watch.scope:
            while True:
                try:
                    config = await self._config(name)

                    async def on_message(message: Any) -> None:
                        if isinstance(message, (*_CHANGED, Exception)):
                            watch.wake.set()

                    async with connect(
                        config["url"], config["headers"], self.settings.federation_timeout_seconds, on_message
                    ) as client:
                        while True:
                            watch.wake = anyio.Event()
                            await self.sync(name, client)
                            delay = 1.0
                            with anyio.move_on_after(self.settings.federation_sync_seconds):
                                await watch.wake.wait()
                except Exception as exc:  # down or misbehaving: health says so; retry with a bounded backoff
                    log.warning("upstream_sync_failed", server=name, error=_reason(exc))
                    await self._mark_down(name, exc)
                await anyio.sleep(min(delay, self.settings.federation_sync_seconds))
                delay = min(delay * 2, 60.0)


def _reason(exc: BaseException) -> str:
    """A short cause for health and errors: the exception's kind and, for an ApiError, its message."""
    if isinstance(exc, ApiError):
        return exc.message
    if isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        return _reason(exc.exceptions[0])
    return type(exc).__name__
