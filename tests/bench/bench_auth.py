"""What identity costs per request: API key vs JWT (cached / uncached), with and without the shared rate limit.

    .venv/bin/python tests/bench/bench_auth.py [--requests 300] [--rounds 3]

Runs an embedded Postgres in a temporary data dir, migrates a fresh database, and times GET /whoami
(require_principal + a tiny JSON answer) through Starlette's TestClient for each variant, interleaved in
rounds so machine noise hits all of them alike. The baseline is the path that existed before JWTs and
rate limits: an API key with the per-principal limit off. Prints median and p95 per request and the ratio
of medians to the baseline.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    import os

    import psycopg
    from starlette.testclient import TestClient

    data_dir = Path(tempfile.mkdtemp(prefix="isa-bench-auth-"))
    os.environ.update({"ISA_DATA_DIR": str(data_dir), "ISA_ENV": "test"})
    from isa.core.embedded import embedded_url
    from isa.core.migrations import migrate
    from isa.core.settings import load_settings
    from tests.support.auth import create_key
    from tests.support.jwt_keys import (
        AUTH0_AUDIENCE,
        AUTH0_ISSUER,
        TOKEN_SECRET,
        JwksServer,
        SigningKey,
        app_with_whoami,
        claims,
        hs256,
        jwt_settings,
    )

    admin_url = embedded_url(data_dir).replace("/isa?", "/postgres?")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("CREATE DATABASE bench_auth")
    db_url = admin_url.replace("/postgres?", "/bench_auth?")
    migrate(db_url)
    settings = load_settings("all")
    key = create_key(db_url, settings, "bench-user", "write")
    isa_token = hs256(
        claims("isa", "isa", "bench-user", token_use="access", scope="write", exp=int(time.time()) + 3600), TOKEN_SECRET
    )
    tenant = SigningKey.generate("bench")
    auth0_token = tenant.sign(claims(AUTH0_ISSUER, AUTH0_AUDIENCE, "auth0|bench", exp=int(time.time()) + 3600))

    with JwksServer([tenant]) as jwks:
        off = {"principal_limit": 0}
        big = {"principal_limit": 10**9}
        variants: list[tuple[str, Any, dict[str, str]]] = [
            ("api key, no rate limit (baseline)", jwt_settings(settings, jwks.url, rate_limit=off), {"X-API-Key": key}),
            ("api key + rate limit", jwt_settings(settings, jwks.url, rate_limit=big), {"X-API-Key": key}),
            (
                "isa JWT, cache 30 s + rate limit",
                jwt_settings(settings, jwks.url, principal_cache_seconds=30, rate_limit=big),
                {"Authorization": f"Bearer {isa_token}"},
            ),
            (
                "isa JWT, cache 0 + rate limit",
                jwt_settings(settings, jwks.url, rate_limit=big),
                {"Authorization": f"Bearer {isa_token}"},
            ),
            (
                "auth0 RS256, cache 30 s + rate limit",
                jwt_settings(settings, jwks.url, principal_cache_seconds=30, rate_limit=big),
                {"Authorization": f"Bearer {auth0_token}"},
            ),
            (
                "isa JWT, cache 30 s, no rate limit",
                jwt_settings(settings, jwks.url, principal_cache_seconds=30, rate_limit=off),
                {"Authorization": f"Bearer {isa_token}"},
            ),
        ]
        clients = [TestClient(app_with_whoami(s, db_url)) for _, s, _ in variants]
        for c in clients:
            c.__enter__()
        samples: list[list[float]] = [[] for _ in variants]
        try:
            for _ in range(args.rounds):
                for i, (_, _, headers) in enumerate(variants):
                    c = clients[i]
                    assert c.get("/whoami", headers=headers).status_code == 200  # warm-up, and a check
                    for _ in range(args.requests):
                        t0 = time.perf_counter()
                        c.get("/whoami", headers=headers)
                        samples[i].append(time.perf_counter() - t0)
        finally:
            for c in clients:
                c.__exit__(None, None, None)

    base = statistics.median(samples[0])
    print(f"{'variant':<40} {'median µs':>10} {'p95 µs':>8} {'ratio':>6}")
    for (name, _, _), times in zip(variants, samples, strict=True):
        med = statistics.median(times)
        p95 = sorted(times)[int(len(times) * 0.95)]
        print(f"{name:<40} {med * 1e6:>10.0f} {p95 * 1e6:>8.0f} {med / base:>6.2f}")
    print(f"({args.rounds} rounds x {args.requests} requests per variant, TestClient in-process, embedded Postgres)")


if __name__ == "__main__":
    main()
