"""B2 items 2-4 against the fake provider: bounded retries in one layer, fallback, cooldown, timeouts, caps."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator

import anyio
import httpx
import pytest
from starlette.testclient import TestClient

from isa.app import create_app
from isa.core.settings import Settings
from tests.model.conftest import Headers, with_model
from tests.support.fake_openai import FakeOpenAI, Reply
from tests.support.procs import wait_for

NewUser = Callable[..., tuple[str, Headers]]
NUM_RETRIES = 2
COOLDOWN = 1.5
SLOW_TIMEOUT = 0.5
TOTAL_BUDGET = 4.0


@pytest.fixture(scope="module")
def model_settings(settings: Settings, fake_provider: FakeOpenAI) -> Settings:
    # Each scenario has its own model group, so one test's failures can't cool down another's deployment.
    return with_model(
        settings,
        fake_provider,
        num_retries=NUM_RETRIES,
        total_timeout_seconds=TOTAL_BUDGET,
        allowed_fails=1,
        cooldown_seconds=COOLDOWN,
        max_parallel={"gamma": 1},
        fallbacks={"fb": ["fb2"]},
        extra_deployments=[
            {"name": "retry", "model": "retry-model", "provider": "alpha"},
            {"name": "fb", "model": "fb-primary", "provider": "alpha"},
            {"name": "fb2", "model": "fb-secondary", "provider": "beta"},
            {"name": "pair", "model": "pair-one", "provider": "alpha", "id": "alpha/pair-1"},
            {"name": "pair", "model": "pair-two", "provider": "beta", "id": "beta/pair-2"},
            {"name": "slow", "model": "slow-model", "provider": "delta", "timeout_seconds": SLOW_TIMEOUT},
            {"name": "capA", "model": "cap-one", "provider": "gamma"},
            {"name": "capB", "model": "cap-two", "provider": "gamma"},
            {"name": "nokey", "model": "nokey-model", "provider": "alpha", "api_key_env": "ISA_TEST_UNSET_KEY"},
        ],
    )


@pytest.fixture(scope="module")
def gateway(model_settings: Settings, db_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(model_settings, "model", database_url=db_url)) as client:
        yield client


def chat(gateway: TestClient, headers: Headers, model: str) -> httpx.Response:
    return gateway.post(
        "/v1/chat/completions", headers=headers, json={"model": model, "messages": [{"role": "user", "content": "hi"}]}
    )


def test_b2_4_two_failures_are_retried_by_the_router_alone(
    gateway: TestClient, fake: FakeOpenAI, new_user: NewUser
) -> None:
    _, headers = new_user()
    fake.script("retry-model", Reply.error(500, times=2))
    response = chat(gateway, headers, "retry")
    assert response.status_code == 200
    assert response.headers["x-isa-deployment"] == "alpha/retry"
    calls = fake.requests_for("retry-model")
    # Exactly one retry layer: three provider calls for one request. The direct path sends no SDK headers;
    # a call through an SDK that had retried on its own would say so in x-stainless-retry-count.
    assert len(calls) == 3
    assert {c.headers.get("x-stainless-retry-count", "0") for c in calls} == {"0"}


def test_b2_2_retries_are_bounded_then_the_fallback_group_serves(
    gateway: TestClient, fake: FakeOpenAI, new_user: NewUser
) -> None:
    _, headers = new_user()
    fake.script("fb-primary", Reply.error(429, times=50))
    response = chat(gateway, headers, "fb")
    assert response.status_code == 200
    assert response.headers["x-isa-deployment"] == "beta/fb2"
    # At least one retry (two calls), at most NUM_RETRIES of them. With allowed_fails=1 the second failure cools
    # the deployment down, so the router stops there and falls back instead of spending its last retry.
    assert 2 <= fake.count("fb-primary") <= NUM_RETRIES + 1
    assert fake.count("fb-secondary") == 1


def test_b2_2_a_failing_deployment_gets_no_traffic_during_its_cooldown(
    gateway: TestClient, fake: FakeOpenAI, new_user: NewUser
) -> None:
    _, headers = new_user()
    fake.script("pair-one", Reply.error(500, times=1000))
    served = [chat(gateway, headers, "pair") for _ in range(8)]
    assert all(r.status_code == 200 for r in served)
    assert {r.headers["x-isa-deployment"] for r in served} == {"beta/pair-2"}
    failures = fake.requests_for("pair-one")
    assert 1 <= len(failures) <= 2  # the threshold, then nothing while cooling down
    cooled_at = failures[-1].at
    fake.reset()  # pair-one is healthy again

    def back_on_pair_one() -> bool:
        return chat(gateway, headers, "pair").headers.get("x-isa-deployment") == "alpha/pair-1"

    wait_for(back_on_pair_one, timeout=15, interval=0.1)
    first_back = fake.requests_for("pair-one")[0].at
    assert first_back - cooled_at >= COOLDOWN - 0.2


def test_b2_3_a_provider_past_its_timeout_gets_a_typed_error_within_the_budget(
    gateway: TestClient, fake: FakeOpenAI, new_user: NewUser
) -> None:
    _, headers = new_user()
    fake.script("slow-model", Reply(delay=3, times=10))
    started = time.monotonic()
    response = chat(gateway, headers, "slow")
    elapsed = time.monotonic() - started
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "upstream_timeout"
    assert 1 <= fake.count("slow-model") <= NUM_RETRIES + 1
    # Each attempt is cut at its timeout; retries and back-off together stay inside the request budget.
    assert SLOW_TIMEOUT <= elapsed <= TOTAL_BUDGET + 1.0


def test_a_provider_concurrency_cap_holds_across_its_deployments(
    gateway: TestClient, fake: FakeOpenAI, new_user: NewUser
) -> None:
    _, headers = new_user()
    fake.script("cap-one", Reply(delay=0.4))
    fake.script("cap-two", Reply(delay=0.4))
    statuses: list[int] = []

    async def both() -> None:
        async def one(model: str) -> None:
            response = await anyio.to_thread.run_sync(lambda: chat(gateway, headers, model))
            statuses.append(response.status_code)

        async with anyio.create_task_group() as tg:
            tg.start_soon(one, "capA")
            tg.start_soon(one, "capB")

    anyio.run(both)
    calls = sorted(fake.requests_for("cap-one") + fake.requests_for("cap-two"), key=lambda r: r.at)
    assert 200 in statuses
    # Provider gamma never had two calls in flight at once, although they were for different deployments.
    for earlier, later in itertools.pairwise(calls):
        assert earlier.finished_at is not None and later.at >= earlier.finished_at - 0.01


def test_a_deployment_without_its_key_in_the_environment_is_unavailable(
    gateway: TestClient, fake: FakeOpenAI, new_user: NewUser
) -> None:
    _, headers = new_user()
    response = chat(gateway, headers, "nokey")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "model_unavailable"
    assert response.json()["error"]["message"] == "no deployment of 'nokey' has its provider credentials configured"
    assert "ISA_TEST_UNSET_KEY" not in response.text  # the missing variable's name stays in the server's config
    assert fake.count() == 0
