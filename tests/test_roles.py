"""Role surfaces (checklist A5 item 50): each role serves its own routes and answers 404 for every other role's."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from isa.app import create_app
from isa.core.http import SCOPE_ATTRIBUTE
from isa.core.openapi import ATTRIBUTE, Operation
from isa.core.settings import Settings
from isa.roles import ROLE_DOMAINS
from tests.support.auth import create_key
from tests.support.deploy import route_templates, sample_path, serves

SINGLE = ("mcp", "model", "agent")


@pytest.fixture(scope="module")
def apps(settings: Settings, db_url: str) -> dict[str, Starlette]:
    return {role: create_app(settings, role, database_url=db_url) for role in (*SINGLE, "all")}


def _foreign_paths(apps: dict[str, Starlette], role: str) -> Iterator[str]:
    """Concrete paths that another single role serves and `role` does not."""
    for other in SINGLE:
        if other == role:
            continue
        for template in route_templates(list(apps[other].routes)):
            path = sample_path(template)
            if not serves(apps[role], path):
                yield path


def test_role_all_serves_every_domain_of_every_role() -> None:
    for role in SINGLE:
        assert set(ROLE_DOMAINS[role]) <= set(ROLE_DOMAINS["all"])


@pytest.mark.parametrize("role", SINGLE)
def test_a5_50_routes_of_other_roles_answer_404_in_the_error_shape(apps: dict[str, Starlette], role: str) -> None:
    foreign = sorted(set(_foreign_paths(apps, role)))
    assert foreign, f"role {role} shares every route with the others; the role split means nothing"
    with TestClient(apps[role]) as client:
        for path in foreign:
            for method in ("GET", "POST"):
                response = client.request(method, path)
                assert response.status_code == 404, (role, method, path, response.status_code)
                assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("role", SINGLE)
def test_role_all_serves_every_route_a_single_role_serves(apps: dict[str, Starlette], role: str) -> None:
    for template in route_templates(list(apps[role].routes)):
        assert serves(apps["all"], sample_path(template)), template


# What each role must never serve, whatever the others do (isa/roles.py, deploy/routing.json, the domains' routes).
# An entry is a path prefix; "/" alone means the root page only. Unlike the test above, nothing here is filtered by
# what the role happens to serve, so a route that leaks into a role makes these tests fail.
_MCP_ONLY = (
    "/mcp",
    "/.well-known/oauth-protected-resource",
    "/discover",
    "/search",
    "/capabilities",
    "/stats",
    "/security/",
    "/catalog/",
    "/openapi.json",
    "/process_background_feedback",
    "/event_callback",
    "/events/",
    "/api/v1/users",
    "/api/v1/admin",
    "/api/v1/tasks",
    "/api/v1/events",
    "/api/v1/authorizations",
    "/api/v1/billing",
    "/api/v1/webhooks",
    "/api/v1/storage",
    "/api/v1/subscriptions",
)
_MODEL_ONLY = ("/v1/", "/docs", "/api/v1/invoke", "/api/v1/models", "/api/v1/analytics")
_AGENT_ONLY = ("/api/chat", "/api/sessions", "/")
NEVER: dict[str, tuple[str, ...]] = {
    "mcp": (*_MODEL_ONLY, *_AGENT_ONLY),
    "model": (*_MCP_ONLY, *_AGENT_ONLY),
    "agent": (*_MCP_ONLY, *_MODEL_ONLY),
}

# A route of each role that needs a valid key: shows the admin key really authenticates there.
OWN_AUTHENTICATED = {"mcp": "/api/v1/users/me", "model": "/v1/models", "agent": "/api/sessions"}


def _under(path: str, entry: str) -> bool:
    return path == "/" if entry == "/" else path.startswith(entry)


def _probes(apps: dict[str, Starlette], entry: str) -> list[str]:
    """Concrete paths under `entry` that role all serves (the real shapes a leaked route would have)."""
    paths = {sample_path(t) for t in route_templates(list(apps["all"].routes)) if _under(t, entry)}
    return sorted(paths | ({entry} if entry != "/" else set()))


@pytest.fixture(scope="module")
def admin_key(settings: Settings, db_url: str) -> str:
    return create_key(db_url, settings, "roles-admin", "admin")


@pytest.mark.parametrize("role", SINGLE)
def test_a5_50_no_route_of_a_role_lies_under_a_prefix_it_must_never_serve(
    apps: dict[str, Starlette], role: str
) -> None:
    templates = set(route_templates(list(apps[role].routes)))
    leaked = sorted((entry, t) for entry in NEVER[role] for t in templates if _under(t, entry))
    assert leaked == [], f"role {role} serves routes that belong to another role: {leaked}"
    for entry in NEVER[role]:
        probes = _probes(apps, entry)
        # Each entry names something the platform really serves (no typo makes the check vacuous) ...
        assert any(serves(apps["all"], p) for p in probes), (role, entry)
        for path in probes:  # ... and the role's own router matches none of it
            assert not serves(apps[role], path), (role, path)


@pytest.mark.parametrize("role", SINGLE)
def test_a5_50_paths_a_role_must_never_serve_answer_404_even_to_an_admin(
    apps: dict[str, Starlette], role: str, admin_key: str, settings: Settings, db_url: str
) -> None:
    headers = {"Authorization": f"Bearer {admin_key}"}
    with TestClient(create_app(settings, role, database_url=db_url)) as client:
        own = client.get(OWN_AUTHENTICATED[role], headers=headers)
        assert own.status_code == 200, (role, own.status_code)  # the key authenticates on this role
        for entry in NEVER[role]:
            for path in _probes(apps, entry):
                for method in ("GET", "POST"):
                    response = client.request(method, path, headers=headers)
                    assert response.status_code == 404, (role, method, path, response.status_code)
                    assert response.json()["error"]["code"] == "not_found", (role, method, path)


def test_the_scope_openapi_shows_is_the_scope_the_route_checks(apps: dict[str, Starlette]) -> None:
    checked = 0
    for route in apps["all"].routes:
        endpoint = getattr(route, "endpoint", None)
        declared = getattr(endpoint, SCOPE_ATTRIBUTE, None)
        operation = getattr(endpoint, ATTRIBUTE, None)
        if declared is not None and isinstance(operation, Operation):
            assert operation.scope == declared, (getattr(route, "path", route), operation.scope, declared)
            checked += 1
    assert checked >= 40  # users, files, events, tasks, commerce
