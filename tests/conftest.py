"""Shared fixtures: one embedded Postgres per test run, a migrated template, a fresh clone per module."""

from __future__ import annotations

import inspect
import os
import re
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from isa.core.embedded import PG_MAJOR, embedded_url
from isa.core.migrations import migrate
from isa.core.settings import Settings, load_settings

TEMPLATE = "isa_template"


def xdist_worker() -> str:
    """This process's pytest-xdist worker id (`gw0`, `gw1`, ...), or `main` without xdist."""
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """An isolated ISA_DATA_DIR for the whole run: nothing touches the developer's own data.

    Under pytest-xdist every worker has its own (the base temp is per worker, and the name says which), so each
    worker runs its own embedded Postgres on its own Unix socket and its own template: workers share no server,
    database name or port (moto and the fakes bind port 0).
    """
    path = tmp_path_factory.mktemp(f"isa-data-{xdist_worker()}")
    os.environ["ISA_DATA_DIR"] = str(path)
    os.environ["ISA_ENV"] = "test"
    yield path
    _stop_embedded_postgres(path / f"pg{PG_MAJOR}")


def _stop_embedded_postgres(pgdata: Path, timeout: float = 15.0) -> None:
    """Stop the run's Postgres when the run ends.

    pgserver stops it when its last user process exits, but a node a test killed never unregisters, so the
    server would outlive the run. A fast shutdown (SIGINT to the postmaster) by the run that started it.
    """
    pid_file = pgdata / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().split("\n", 1)[0])
        os.kill(pid, signal.SIGINT)
    except (OSError, ValueError):
        return  # not running (or already gone)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            return
        time.sleep(0.05)  # bounded wait for the process to end


@pytest.fixture(scope="session")
def pg_admin_url(data_dir: Path) -> str:
    """The embedded server's maintenance database (`postgres`)."""
    url = embedded_url(data_dir)
    return url.replace("/isa?", "/postgres?")


def db_url_for(admin_url: str, name: str) -> str:
    return admin_url.replace("/postgres?", f"/{name}?")


def create_database(admin_url: str, template: str | None = None) -> str:
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    return name


def drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def template_db(pg_admin_url: str) -> str:
    """Migrate once into a template database; every module clones it (a file copy, milliseconds)."""
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{TEMPLATE}"')
    migrate(db_url_for(pg_admin_url, TEMPLATE))
    return TEMPLATE


@pytest.fixture(scope="module")
def db_url(pg_admin_url: str, template_db: str) -> Iterator[str]:
    """A migrated database of this test module's own."""
    name = create_database(pg_admin_url, template_db)
    yield db_url_for(pg_admin_url, name)
    drop_database(pg_admin_url, name)


@pytest.fixture()
def empty_db_url(pg_admin_url: str) -> Iterator[str]:
    """An empty database (no migrations applied)."""
    name = create_database(pg_admin_url)
    yield db_url_for(pg_admin_url, name)
    drop_database(pg_admin_url, name)


@pytest.fixture(scope="session")
def settings(data_dir: Path) -> Settings:
    return load_settings("all")


@pytest.fixture()
def anyio_backend() -> str:
    return "asyncio"


# -- the fast subset ----------------------------------------------------------------------------
# A test is `slow` when it (or a fixture it uses) starts a process (`isa serve`, `isa worker`, any subprocess),
# drives a browser or nginx. Marked here from the source rather than by hand in 60 files, so a new test that
# starts a node is slow without anyone remembering to say so. `make test-fast` runs `-m "not slow"`.
_STARTS_PROCESSES = re.compile(
    r"\b(isa_serve|isa_worker|deploy_with_worker|subprocess|Popen|playwright|chromium|nginx|npx)\b"
)


def _starts_processes(obj: object, seen: dict[object, bool]) -> bool:
    if obj not in seen:
        try:
            seen[obj] = bool(_STARTS_PROCESSES.search(inspect.getsource(obj)))  # type: ignore[arg-type]
        except (OSError, TypeError):
            seen[obj] = False
    return seen[obj]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    seen: dict[object, bool] = {}
    for item in items:
        if item.get_closest_marker("slow") or not isinstance(item, pytest.Function):
            continue
        fixtures = [d.func for defs in item._fixtureinfo.name2fixturedefs.values() for d in defs]
        if any(_starts_processes(obj, seen) for obj in (item.module, *fixtures)):
            item.add_marker(pytest.mark.slow)
