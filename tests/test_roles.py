"""Role surfaces (checklist A5 item 50): each role serves its own routes and answers 404 for every other role's."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from isa.app import create_app
from isa.core.settings import Settings
from isa.roles import ROLE_DOMAINS
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
